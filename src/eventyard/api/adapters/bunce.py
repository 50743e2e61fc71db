"""The `/bunce` adapter: Bunce's "Trigger an event", so its users need only a new base URL.

`POST /bunce/v1/events/trigger` with the key in `X-Authorization` and the body
`{"event_id": <trigger uuid>, "payload": {...}}`. The payload is checked against that
trigger's schema and the customer (the event's user) is the payload's `email`. Success is
`200 {"success": true, "data": true, "message": "Event successfully triggered"}`; a parameter
error is `422 {"success": false, "data": null, "message", "error": {<field>: [<message>]}}`
and the other refusals keep that shape with their own status. See docs/adapters/bunce.md.
"""

from __future__ import annotations

import re
import uuid as uuid_lib
from typing import Any

import orjson

from eventyard.api.context import Context
from eventyard.api.http import Request, Response
from eventyard.api.routing import RouteTable
from eventyard.api.schemas import api_key_header, json_body
from eventyard.domain.jsonbody import parse_json
from eventyard.domain.models import Scope
from eventyard.domain.timeparse import type_name
from eventyard.errors import (
    EventyardError,
    FieldError,
    Forbidden,
    TriggerNotFound,
    Unauthenticated,
    ValidationFailed,
    unknown_fields,
)

routes = RouteTable()
SOURCE = "bunce"
HEADER = "X-Authorization"
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_SUCCESS = orjson.dumps({"success": True, "data": True, "message": "Event successfully triggered"})
_PARAMETER_STATUSES = frozenset({400, 404, 409, 422})  # all parameter errors: 422, as Bunce

SECURITY = api_key_header(
    HEADER,
    "An eventyard key with the write scope (sk_live_... or sk_test_...), as the header's whole "
    "value, as Bunce sends it.",
)


def _credentials(req: Request) -> str | None:
    value = (req.header("x-authorization") or "").strip()
    if value[:7].lower() == "bearer ":  # tolerated: a key pasted with its scheme
        value = value[7:].strip()
    return value or None


def _field(path: str) -> str:
    """A JSON path as Bunce's error object names it: `$.payload.amount` → `payload.amount`."""
    if path in ("$", ""):
        return "body"
    if path == "$.trigger":
        return "event_id"
    if path == "$.user_id":
        return "payload.email"
    return path[2:] if path.startswith("$.") else path


def render_error(exc: EventyardError) -> Response:
    status = 422 if exc.status in _PARAMETER_STATUSES else exc.status
    message = exc.message
    error: dict[str, list[str]] = {}
    if isinstance(exc, Unauthenticated):
        if message.startswith("No API key"):
            message = f"No API key: send it in the {HEADER} header."
        error[HEADER] = [message]
    elif isinstance(exc, Forbidden):
        error[HEADER] = [message]
    elif exc.errors:
        for e in exc.errors:
            error.setdefault(_field(e.path), []).append(e.message)
        message = "The given data was invalid."
    elif status == 422:
        error["body"] = [message]
    body = {"success": False, "data": None, "message": message, "error": error}
    return Response(status, orjson.dumps(body), "application/json", dict(exc.headers))


def _check(body: Any) -> tuple[str, dict[str, Any]]:
    """The trigger uuid and the payload, or a 422 naming every bad parameter."""
    if not isinstance(body, dict):
        raise ValidationFailed(
            "The body must be a JSON object.", errors=[FieldError("$", "must be a JSON object")]
        )
    errors = unknown_fields(body, {"event_id", "payload"})
    event_id = body.get("event_id")
    if event_id is None:
        errors.append(FieldError("$.event_id", "is required: the trigger's UUID"))
    elif not isinstance(event_id, str):
        errors.append(FieldError("$.event_id", f"must be a UUID string, got {type_name(event_id)}"))
    else:
        try:
            event_id = str(uuid_lib.UUID(event_id))  # any case or braces: the canonical form
        except ValueError:
            errors.append(FieldError("$.event_id", f"must be a UUID, got {event_id!r}"))
    payload = body.get("payload")
    if payload is None:
        errors.append(FieldError("$.payload", "is required: an object with the customer's email"))
    elif not isinstance(payload, dict):
        errors.append(FieldError("$.payload", f"must be an object, got {type_name(payload)}"))
    else:
        email = payload.get("email")
        if email is None:
            errors.append(FieldError("$.payload.email", "is required: the customer's email"))
        elif not isinstance(email, str) or not _EMAIL.fullmatch(email):
            errors.append(FieldError("$.payload.email", f"must be an email address, got {email!r}"))
    if errors:
        raise ValidationFailed("The given data was invalid.", errors=errors)
    assert isinstance(event_id, str)
    assert isinstance(payload, dict)
    return event_id, payload


@routes.add(
    "POST",
    "/bunce/v1/events/trigger",
    scope=Scope.WRITE,
    summary="Bunce: trigger an event for a customer",
    tags=("adapters: bunce",),
    body={
        "type": "object",
        "required": ["event_id", "payload"],
        "properties": {
            "event_id": {"type": "string", "format": "uuid", "description": "The trigger's uuid"},
            "payload": {
                "type": "object",
                "required": ["email"],
                "properties": {"email": {"type": "string", "format": "email"}},
            },
        },
    },
    responses={
        200: json_body(
            "The event was stored.",
            {
                "type": "object",
                "properties": {
                    "success": {"const": True},
                    "data": {"const": True},
                    "message": {"const": "Event successfully triggered"},
                },
            },
        ),
        **{
            status: json_body(
                description,
                {
                    "type": "object",
                    "properties": {
                        "success": {"const": False},
                        "data": {"type": "null"},
                        "message": {"type": "string"},
                        "error": {
                            "type": "object",
                            "additionalProperties": {"type": "array", "items": {"type": "string"}},
                        },
                    },
                },
            )
            for status, description in (
                (401, "No key, an unknown key or a revoked key."),
                (403, "The key lacks the write scope."),
                (413, "The body is larger than the request limit."),
                (422, "A parameter is missing or invalid; `error` names each one."),
            )
        },
    },
    credentials=_credentials,
    key_hint="in the X-Authorization header",
    render_error=render_error,
    security=SECURITY,
)
async def bunce_trigger_event(req: Request, ctx: Context) -> Response:
    s = ctx.services.settings
    event_id, payload = _check(parse_json(await req.body(s.max_request_bytes), s.max_json_depth))
    try:
        trigger = await ctx.services.triggers.get_by_uuid(ctx.principal.project_id, event_id)
    except TriggerNotFound:
        raise ValidationFailed(
            "The given data was invalid.",
            errors=[FieldError("$.event_id", f"no trigger has the UUID {event_id!r}")],
        ) from None
    item = {"trigger": trigger.id, "user_id": payload["email"], "payload": payload}
    [result] = await ctx.services.ingest.ingest(ctx.principal, [item], source=SOURCE)
    if result.errors:
        raise ValidationFailed("The given data was invalid.", errors=result.errors)
    return Response(200, _SUCCESS, "application/json")
