"""The `/reward` adapter: Reward's custom-trigger API, so its users need only a new base URL.

`POST /reward/v1/triggers/{triggerId}/users/{userId}/events` with `Authorization: Bearer
sk_test_...|sk_live_...`; the whole body is the event's payload (`{}` when empty, absent or
`null`). The user id arrives percent-encoded and round-trips exactly; Python's
`urllib.parse.quote` leaves `/` unencoded, so the user id may span several path segments.
Success is `201` with the stored event as JSON (`200` with the original for a repeated
`Idempotency-Key`); errors are JSON `{"error": {"code", "message", "status", "errors"}}`
with eventyard's status codes. See docs/adapters/reward.md.
"""

from __future__ import annotations

from typing import Any

import orjson

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, json_response
from eventyard.api.routing import RouteTable, bearer_token
from eventyard.api.schemas import json_body, ref
from eventyard.domain.jsonbody import parse_json
from eventyard.domain.models import Scope
from eventyard.errors import EventyardError, FieldError, ValidationFailed
from eventyard.services.ingest import single_result_error
from eventyard.store.event_writes import Outcome
from eventyard.views import event_json

routes = RouteTable()
SOURCE = "reward"

_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "status", "errors"],
            "properties": {
                "code": {"type": "string", "examples": ["validation_failed"]},
                "message": {"type": "string"},
                "status": {"type": "integer"},
                "errors": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"path": {"type": "string"}, "message": {"type": "string"}},
                    },
                },
            },
        }
    },
}


def _error(description: str) -> dict[str, Any]:
    return json_body(description, _ERROR_SCHEMA)


def _where(path: str) -> str:
    """Name a field the way this door's caller sent it: the body is the payload."""
    if path == "$.trigger" or path.startswith("$.trigger."):
        return "triggerId"
    if path == "$.user_id":
        return "userId"
    if path == "$.idempotency_key" or path == "Idempotency-Key header":
        return "Idempotency-Key header"
    if path.startswith("$.payload"):
        return "$" + path[len("$.payload") :]
    return path


def render_error(exc: EventyardError) -> Response:
    errors = [{"path": _where(e.path), "message": e.message} for e in exc.errors]
    message = exc.message
    if exc.errors:
        first = errors[0]
        message = f"{first['path']} {first['message']}"
    body = {"error": {"code": exc.code, "message": message, "status": exc.status, "errors": errors}}
    return Response(exc.status, orjson.dumps(body), "application/json", dict(exc.headers))


async def _payload(req: Request, ctx: Context) -> dict[str, Any]:
    s = ctx.services.settings
    raw = await req.body(s.max_request_bytes)
    if not raw.strip():
        return {}
    body = parse_json(raw, s.max_json_depth)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise ValidationFailed(
            "The body is the event's payload and must be a JSON object.",
            errors=[FieldError("$", "must be a JSON object (the event's payload)")],
        )
    return body


@routes.add(
    "POST",
    "/reward/v1/triggers/{triggerId}/users/{userId}/events",
    scope=Scope.WRITE,
    summary="Reward: trigger a custom event for a user",
    tags=("adapters: reward",),
    body={"type": "object", "description": "The event's payload; `{}` when empty."},
    responses={
        201: json_body("The event, stored.", ref("Event")),
        200: json_body(
            "A repeated Idempotency-Key with the same body: the original.", ref("Event")
        ),
        400: _error("The body is not JSON, or not valid UTF-8; or a bad path parameter."),
        401: _error("No key, an unknown key or a revoked key."),
        403: _error("The key lacks the write scope."),
        404: _error("The trigger does not exist and the project is strict."),
        409: _error("The trigger is archived, or the Idempotency-Key was used for another body."),
        413: _error("The body or the event is larger than the limit."),
        422: _error("The payload is not an object or fails the trigger's schema."),
    },
    credentials=bearer_token,
    render_error=render_error,
    greedy="userId",
)
async def reward_trigger_event(req: Request, ctx: Context) -> Response:
    payload = await _payload(req, ctx)
    item = {
        "trigger": req.path_params["triggerId"],
        "user_id": req.path_params["userId"],
        "payload": payload,
    }
    [result] = await ctx.services.ingest.ingest(
        ctx.principal, [item], source=SOURCE, header_key=req.utf8_header("idempotency-key")
    )
    if result.errors:
        raise single_result_error(result)
    assert result.stored is not None
    assert result.stored.event is not None
    status = 200 if result.stored.outcome is Outcome.DUPLICATE else 201
    return json_response(event_json(result.stored.event), status)
