"""The `/cdp` adapter: a Customer Data Platform's per-event inbound webhook.

Every trigger has an inbound webhook URL, `/cdp/webhooks/{hook_id}`, where `hook_id` is the
trigger's 32-hex `inbound_token` (shown as `cdp_webhook_path` in the trigger's JSON). A
client POSTs the event's attributes as one flat JSON object with HTTP Basic auth: the API key
as the password (any user name), or as the user name with an empty password.

The body maps onto a native event: `event_name` must name the hook's trigger (its id or its
name); `external_event_id` (mandatory) is the idempotency key; `customer_id` is the user;
`eventDateTime` (`YYYY-MM-DD HH:MM:SS`, UTC) is the event time. Every other attribute, and
`customer_id` too, is the payload, checked against the trigger's typed attributes. A numeric
string sent for a number, integer or numeric enum attribute (the document sends
`"room_nights": "12"`) is read as that number first.

Success is `200 {"status": {"code": 1100, "message": ...}, "requestId": <uuid>}`; every error
keeps that envelope with its own code (see `CODES` and docs/adapters/cdp.md).
"""

from __future__ import annotations

import base64
import binascii
import re
import uuid
from typing import Any

import orjson

from eventyard.api.context import Context
from eventyard.api.http import Request, Response
from eventyard.api.routing import RouteTable
from eventyard.api.schemas import SECURITY_SCHEMES, json_body
from eventyard.domain.jsonbody import parse_json
from eventyard.domain.models import Scope, Trigger
from eventyard.domain.schema import AttributeType
from eventyard.domain.timeparse import TimeParseError, parse_event_time, type_name
from eventyard.errors import (
    EventyardError,
    FieldError,
    InvalidRequest,
    NotFound,
    ValidationFailed,
)
from eventyard.services.ingest import ItemResult, single_result_error

routes = RouteTable()
SOURCE = "cdp"
SECURITY = "cdp_basic"
SECURITY_SCHEMES[SECURITY] = {
    "type": "http",
    "scheme": "basic",
    "description": "HTTP Basic: the API key (sk_live_... or sk_test_..., with the write scope) "
    "as the password with any user name, or as the user name with an empty password.",
}

OK_CODE = 1100
OK_MESSAGE = "Event is pushed to transformation state"
_HOOK_ID = re.compile(r"[0-9a-f]{32}")
# The body's envelope fields, mapped to the native event's own fields.
_ENVELOPE = {
    "event_name": "trigger",
    "external_event_id": "idempotency_key",
    "customer_id": "user_id",
    "eventDateTime": "timestamp",
}
_NATIVE_TO_CDP = {f"$.{native}": f"$.{cdp}" for cdp, native in _ENVELOPE.items()}
_NUMERIC = re.compile(r"-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,17})?")

# error code → (HTTP status, code, message); see docs/adapters/cdp.md.
CODES: dict[str, tuple[int, int, str]] = {
    "invalid_request": (400, 1101, "Invalid request"),
    "malformed_json": (400, 1101, "Invalid request"),
    "validation_failed": (422, 1101, "Event validation failed"),
    "unauthenticated": (401, 1102, "Invalid credentials"),
    "forbidden": (403, 1102, "The key is not allowed to post events"),
    "not_found": (404, 1103, "Unknown webhook"),
    "method_not_allowed": (405, 1101, "Invalid request"),
    "payload_too_large": (413, 1104, "Request body too large"),
    "idempotency_key_reused": (409, 1105, "external_event_id was already used for another event"),
    "trigger_archived": (409, 1106, "The event is archived"),
    "unsupported_media_type": (415, 1101, "Invalid request"),
    "unavailable": (503, 1107, "Service unavailable, retry later"),
    "internal_error": (500, 1108, "Internal error"),
}


def _envelope(status: int, code: int, message: str, **extra: Any) -> Response:
    body = {"status": {"code": code, "message": message}, "requestId": str(uuid.uuid4()), **extra}
    return Response(status, orjson.dumps(body), "application/json")


def render_error(exc: EventyardError) -> Response:
    """The document's envelope, with the error's code, and `errors` naming the fields."""
    status, code, title = CODES.get(exc.code, (exc.status, 1101, "Invalid request"))
    if exc.code not in CODES and isinstance(exc, NotFound):
        status, code, title = CODES["not_found"]
    extra: dict[str, Any] = {"detail": exc.message}
    if exc.errors:
        extra["errors"] = [e.as_dict() for e in exc.errors]
    response = _envelope(status, code, title, **extra)
    response.headers.update(exc.headers)
    return response


def basic_key(req: Request) -> str | None:
    """The key from `Authorization: Basic`: the password, or the user name if none."""
    scheme, _, value = (req.header("authorization") or "").strip().partition(" ")
    if scheme.lower() != "basic" or not value.strip():
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, _, password = decoded.partition(":")
    return password.strip() or user.strip() or None


def _as_number(value: Any) -> Any:
    """`"12"` → 12, `"4.5"` → 4.5; anything else unchanged."""
    if isinstance(value, str) and _NUMERIC.fullmatch(value.strip()):
        text = value.strip()
        return float(text) if "." in text else int(text)
    return value


def _coerce(payload: dict[str, Any], trigger: Trigger) -> None:
    """Read numeric strings as numbers where the trigger's attribute wants a number."""
    for attr in (trigger.schema or {}).get("attributes") or ():
        name = attr["name"]
        value = payload.get(name)
        if not isinstance(value, str):
            continue
        kind = attr["type"]
        if kind in (AttributeType.NUMBER, AttributeType.INTEGER):
            payload[name] = _as_number(value)
        elif kind == AttributeType.ENUM:
            values = attr.get("values") or ()
            number = _as_number(value)
            if value not in values and number is not value and number in values:
                payload[name] = number


def _cdp_path(path: str) -> str:
    """A native field path as the CDP body names it: `$.payload.age` → `$.age`."""
    if path.startswith("$.payload"):
        return "$" + path[len("$.payload") :]
    return _NATIVE_TO_CDP.get(path, path)


def _rename(errors: list[FieldError]) -> list[FieldError]:
    return [FieldError(_cdp_path(e.path), e.message) for e in errors]


def _to_item(body: dict[str, Any], trigger: Trigger) -> dict[str, Any]:
    errors: list[FieldError] = []
    name = body.get("event_name")
    if name is None:
        errors.append(FieldError("$.event_name", f"is required: {trigger.id!r} for this webhook"))
    elif name not in (trigger.id, trigger.name):
        errors.append(
            FieldError(
                "$.event_name",
                f"{name!r} does not match this webhook's event {trigger.id!r}; each event has "
                "its own webhook URL",
            )
        )
    external_id = body.get("external_event_id")
    if external_id is None or external_id == "":
        errors.append(FieldError("$.external_event_id", "is required: your id for this event"))
    elif isinstance(external_id, bool) or not isinstance(external_id, str | int):
        errors.append(
            FieldError("$.external_event_id", f"must be a string, got {type_name(external_id)}")
        )
    if body.get("customer_id") is None:
        errors.append(FieldError("$.customer_id", "is required: the customer's id"))
    when = body.get("eventDateTime")
    if when is not None:
        try:
            parse_event_time(when)
        except TimeParseError as exc:
            errors.append(
                FieldError("$.eventDateTime", f"must be 'YYYY-MM-DD HH:MM:SS' (UTC): {exc}")
            )
    if errors:
        raise ValidationFailed(
            f"The event is not valid: {errors[0].path} {errors[0].message}.", errors=errors
        )
    declared = {a["name"] for a in (trigger.schema or {}).get("attributes") or ()}
    payload = {
        k: v
        for k, v in body.items()
        if k not in ("event_name", "external_event_id", "eventDateTime") or k in declared
    }
    _coerce(payload, trigger)
    return {
        "trigger": trigger.id,
        "user_id": body["customer_id"],
        "payload": payload,
        "timestamp": when,
        "idempotency_key": str(external_id),
    }


def _refusal(result: ItemResult) -> EventyardError:
    error = single_result_error(result)
    errors = _rename(error.errors)
    first = errors[0]
    message = f"{error.message.split(' $', 1)[0]} {first.path} {first.message}"
    return type(error)(message, errors=errors, extra=error.extra)


_STATUS = {
    "type": "object",
    "required": ["status", "requestId"],
    "properties": {
        "status": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}},
        },
        "requestId": {"type": "string", "format": "uuid"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


@routes.add(
    "POST",
    "/cdp/webhooks/{hook_id}",
    scope=Scope.WRITE,
    summary="CDP: post one behavioral event to its trigger's inbound webhook",
    tags=("cdp",),
    body={
        "type": "object",
        "required": ["event_name", "external_event_id", "customer_id"],
        "additionalProperties": True,
        "properties": {
            "event_name": {"type": "string", "description": "the trigger's id or name"},
            "external_event_id": {"type": "string", "description": "deduplicates"},
            "customer_id": {"type": "string", "description": "the user"},
            "eventDateTime": {"type": "string", "examples": ["2024-04-11 12:00:00"]},
        },
    },
    responses={
        200: json_body("Accepted (code 1100), or an exact repeat of an event.", _STATUS),
        400: json_body("Not JSON, or not an object (code 1101).", _STATUS),
        401: json_body("No key, or an unknown or revoked one (code 1102).", _STATUS),
        403: json_body("The key lacks the write scope (code 1102).", _STATUS),
        404: json_body("No such webhook in the key's project (code 1103).", _STATUS),
        409: json_body("external_event_id reused (1105), or the event archived (1106).", _STATUS),
        413: json_body("The body is too large (code 1104).", _STATUS),
        422: json_body("An attribute is missing or of the wrong type (code 1101).", _STATUS),
    },
    credentials=basic_key,
    key_hint="as HTTP Basic credentials: the key as the password (or as the user name)",
    render_error=render_error,
    security=SECURITY,
)
async def cdp_webhook(req: Request, ctx: Context) -> Response:
    hook_id = req.path_params["hook_id"].lower()
    trigger = None
    if _HOOK_ID.fullmatch(hook_id):
        trigger = await ctx.services.triggers.get_by_inbound_token(
            ctx.principal.project_id, hook_id
        )
    if trigger is None:
        raise NotFound(
            f"There is no webhook {hook_id!r} in this project; copy the URL from the "
            "trigger's cdp_webhook_path."
        )
    s = ctx.services.settings
    body = parse_json(await req.body(s.max_request_bytes), s.max_json_depth)
    if not isinstance(body, dict):
        raise InvalidRequest(
            "The request body must be a JSON object of the event's attributes.",
            errors=[FieldError("$", f"must be an object, got {type_name(body)}")],
        )
    item = _to_item(body, trigger)
    (result,) = await ctx.services.ingest.ingest(ctx.principal, [item], source=SOURCE)
    if result.errors:
        raise _refusal(result)
    assert result.stored is not None
    return _envelope(200, OK_CODE, OK_MESSAGE)
