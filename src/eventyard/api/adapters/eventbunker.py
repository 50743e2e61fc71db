"""The `/eventbunker` adapter: EventBunker's Track Event API, so its users need a new host only.

`POST /eventbunker/post` with the key in `x-eventbunker-write-key`. `event_name` is the
trigger, `timestamp` (optional; no zone means UTC) the event time, `customer_identifier`
(optional; `anonymous` when absent) the user, and every other top-level field the payload.
Success is `{"unique_req_id": <the event id's 128 bits as 32 hex>, "time_recorded": <epoch
ms>}`. Errors follow the document's table: `{"message": <its exact message>, "details",
"errors"}` with 401, 400 or 500. See docs/adapters/eventbunker.md.
"""

from __future__ import annotations

from typing import Any

import orjson

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, json_response
from eventyard.api.routing import RouteTable
from eventyard.api.schemas import api_key_header, json_body
from eventyard.domain.jsonbody import parse_json
from eventyard.domain.models import Scope
from eventyard.errors import (
    EventyardError,
    FieldError,
    Forbidden,
    Unauthenticated,
    ValidationFailed,
)
from eventyard.services.ingest import single_result_error

routes = RouteTable()
SOURCE = "eventbunker"
HEADER = "x-eventbunker-write-key"
ANONYMOUS = "anonymous"  # the user of an event sent without customer_identifier
RESERVED = ("event_name", "timestamp", "customer_identifier")

INVALID_KEY = "Invalid x-eventbunker-write-key"
NOT_A_WRITE_KEY = "Please use a write key for write requests. Invalid x-eventbunker-write-key"
VALIDATION_FAILED = "Body JSON validation failed."
INTERNAL = "Error..."

_CROCKFORD = {c: i for i, c in enumerate("0123456789ABCDEFGHJKMNPQRSTVWXYZ")}

SECURITY = api_key_header(
    HEADER, "An eventyard key with the write scope (sk_live_... or sk_test_...): the write key."
)


def unique_req_id(event_id: str) -> str:
    """`evt_<ULID>` → the ULID's 128 bits as 32 lowercase hex digits (and back is possible)."""
    value = 0
    for char in event_id.partition("_")[2]:
        value = value * 32 + _CROCKFORD[char]
    return f"{value:032x}"


def _field(path: str) -> str:
    if path == "$":
        return "body"
    if path == "$.trigger":
        return "event_name"
    if path == "$.user_id":
        return "customer_identifier"
    if path.startswith("$.payload"):
        return path[len("$.payload") :].lstrip(".") or "body"
    return path[2:] if path.startswith("$.") else path


def render_error(exc: EventyardError) -> Response:
    errors = [{"path": _field(e.path), "message": e.message} for e in exc.errors]
    details = "; ".join(f"{e['path']} {e['message']}" for e in errors) or exc.message
    if isinstance(exc, Unauthenticated):
        status, message = 401, INVALID_KEY
    elif isinstance(exc, Forbidden):
        status, message = 401, NOT_A_WRITE_KEY
    elif exc.status >= 500:
        status, message = exc.status, INTERNAL
    elif exc.status in (405, 429):  # not about the body: a wrong method, or slow down
        status, message = exc.status, exc.message
    else:  # malformed JSON, too large, invalid fields, strict or archived trigger
        status, message = 400, VALIDATION_FAILED
    body = {"message": message, "details": details, "errors": errors}
    return Response(status, orjson.dumps(body), "application/json", dict(exc.headers))


def _item(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ValidationFailed(
            "The body must be a JSON object.", errors=[FieldError("$", "must be a JSON object")]
        )
    if "event_name" not in body:
        raise ValidationFailed(
            "event_name is required.",
            errors=[FieldError("$.trigger", "is required: the event's name")],
        )
    customer = body.get("customer_identifier")
    item: dict[str, Any] = {
        "trigger": body["event_name"],
        "user_id": ANONYMOUS if customer is None else customer,
        "payload": {k: v for k, v in body.items() if k not in RESERVED},
    }
    if body.get("timestamp") is not None:
        item["timestamp"] = body["timestamp"]
    return item


_ERROR_SCHEMA = {
    "type": "object",
    "required": ["message"],
    "properties": {
        "message": {"type": "string"},
        "details": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}


@routes.add(
    "POST",
    "/eventbunker/post",
    scope=Scope.WRITE,
    summary="EventBunker: track an event",
    tags=("adapters: eventbunker",),
    body={
        "type": "object",
        "required": ["event_name"],
        "properties": {
            "event_name": {"type": "string"},
            "timestamp": {"type": "string", "description": "ISO 8601; no zone means UTC"},
            "customer_identifier": {"type": "string"},
        },
        "additionalProperties": True,
    },
    responses={
        200: json_body(
            "The event was recorded.",
            {
                "type": "object",
                "properties": {
                    "unique_req_id": {"type": "string", "pattern": "^[0-9a-f]{32}$"},
                    "time_recorded": {"type": "integer", "description": "epoch milliseconds"},
                },
            },
        ),
        400: json_body(f"{VALIDATION_FAILED} `details` says why.", _ERROR_SCHEMA),
        401: json_body(f"{INVALID_KEY}, or: {NOT_A_WRITE_KEY}", _ERROR_SCHEMA),
        403: json_body(
            "Never sent: as EventBunker does, a key without the write scope gets 401.",
            _ERROR_SCHEMA,
        ),
        500: json_body(INTERNAL, _ERROR_SCHEMA),
    },
    credentials=lambda req: (req.header(HEADER) or "").strip() or None,
    key_hint="in the x-eventbunker-write-key header",
    render_error=render_error,
    security=SECURITY,
)
async def eventbunker_post(req: Request, ctx: Context) -> Response:
    s = ctx.services.settings
    item = _item(parse_json(await req.body(s.max_request_bytes), s.max_json_depth))
    [result] = await ctx.services.ingest.ingest(ctx.principal, [item], source=SOURCE)
    if result.errors:
        raise single_result_error(result)
    assert result.stored is not None
    assert result.stored.event is not None
    event = result.stored.event
    return json_response(
        {"unique_req_id": unique_req_id(event.id), "time_recorded": event.timestamp // 1000}
    )
