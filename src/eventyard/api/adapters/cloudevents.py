"""The `/cloudevents` adapter: CloudEvents 1.0 over its HTTP protocol binding.

`POST /cloudevents` takes one event in structured mode (`application/cloudevents+json`), a
batch (`application/cloudevents-batch+json`, a JSON array of structured events) or one event
in binary mode (`ce-*` headers, the data as the body, with or without a Content-Type). The
key is `Authorization: Bearer`.

Each event becomes a native event: `type` is the trigger (kept when it is a valid trigger id,
slugged otherwise), `subject` the user (the `source` when there is no subject), `time` the
event time, `data` the payload (non-object data wrapped as `{"data": ...}`), and `source` +
`id` the idempotency key, since the spec lets a consumer treat two events with the same
source and id as duplicates. Success is `202` with the stored event's id; errors are the
native problem+json. See docs/adapters/cloudevents.md.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any
from urllib.parse import unquote

import orjson

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, json_response
from eventyard.api.routing import RouteTable
from eventyard.api.schemas import AUTH_ERRORS, problem
from eventyard.domain.jsonbody import parse_json
from eventyard.domain.models import Scope
from eventyard.domain.slugs import trigger_id_for_name, trigger_id_problem
from eventyard.domain.timeparse import type_name
from eventyard.errors import (
    BatchTooLarge,
    EventyardError,
    FieldError,
    InvalidRequest,
    UnsupportedMediaType,
)
from eventyard.services.ingest import ItemResult, single_result_error
from eventyard.store.event_writes import Outcome

routes = RouteTable()
SOURCE = "cloudevents"
SPECVERSION = "1.0"
STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
_REQUIRED = ("id", "source", "type")
# A source+id seen before is a duplicate by the spec, even if the rest differs: dropped.
_DUPLICATE_CODES = frozenset({"idempotency_key_reused"})


# --- one event's context attributes → a native item ----------------------------------------


def _attribute_errors(event: dict[str, Any], where: Any) -> list[FieldError]:
    """Problems with the context attributes; `where(name)` names the attribute's location."""
    errors: list[FieldError] = []
    version = event.get("specversion")
    if version is None:
        errors.append(FieldError(where("specversion"), "is required: '1.0'"))
    elif version != SPECVERSION:
        errors.append(
            FieldError(where("specversion"), f"must be '1.0'; got {version!r}, not supported")
        )
    for name in _REQUIRED:
        value = event.get(name)
        if value is None:
            errors.append(FieldError(where(name), "is required by CloudEvents 1.0"))
        elif not isinstance(value, str) or not value:
            errors.append(
                FieldError(where(name), f"must be a non-empty string, got {type_name(value)}")
            )
    for name in ("subject", "time", "datacontenttype"):
        value = event.get(name)
        if value is not None and not isinstance(value, str):
            errors.append(FieldError(where(name), f"must be a string, got {type_name(value)}"))
    trigger = event.get("type")
    if isinstance(trigger, str) and trigger and not _trigger_id(trigger):
        errors.append(FieldError(where("type"), "holds nothing a trigger id can be made from"))
    return errors


def _trigger_id(event_type: str) -> str:
    """The type itself when it is a valid trigger id, else its slug (`Order Created` → ...)."""
    return event_type if trigger_id_problem(event_type) is None else trigger_id_for_name(event_type)


def idempotency_key(source: str, event_id: str) -> str:
    """One key for the pair: the spec makes source + id unique, not either alone."""
    digest = hashlib.sha256(orjson.dumps([source, event_id])).hexdigest()
    return f"ce:{digest}"


def _payload(data: Any) -> dict[str, Any]:
    if data is None:
        return {}
    if isinstance(data, dict):
        return data
    return {"data": data}


def _item(event: dict[str, Any], data: Any) -> dict[str, Any]:
    subject = event.get("subject")
    return {
        "trigger": _trigger_id(event["type"]),
        "user_id": subject if subject else event["source"],
        "payload": _payload(data),
        "timestamp": event.get("time"),
        "idempotency_key": idempotency_key(event["source"], event["id"]),
    }


def _is_base64(text: str) -> bool:
    if not text.isascii():  # b64decode raises ValueError, not binascii.Error, on those
        return False
    try:
        base64.b64decode(text, validate=True)
    except binascii.Error:
        return False
    return True


def _structured_data(event: dict[str, Any], where: Any) -> tuple[Any, list[FieldError]]:
    if "data_base64" in event:
        encoded = event["data_base64"]
        if "data" in event:
            return None, [FieldError(where("data_base64"), "give data or data_base64, not both")]
        if not isinstance(encoded, str) or not _is_base64(encoded):
            return None, [FieldError(where("data_base64"), "must be a base64 string")]
        return {"data_base64": encoded}, []
    return event.get("data"), []


# --- the three modes ---------------------------------------------------------------------


def _media_type(req: Request) -> str:
    return (req.header("content-type") or "").split(";", 1)[0].strip().lower()


def _binary_event(req: Request) -> dict[str, Any]:
    """The context attributes of a binary-mode message, from its `ce-*` headers."""
    event: dict[str, Any] = {}
    for name, raw in req.headers.items():
        if name.startswith("ce-") and len(name) > 3:
            try:
                text = raw.encode("latin-1").decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidRequest(f"The {name} header is not valid UTF-8.") from None
            try:
                event[name[3:]] = unquote(text, errors="strict")
            except UnicodeDecodeError:
                raise InvalidRequest(
                    f"The {name} header is not valid UTF-8 once percent-decoded."
                ) from None
    media = req.header("content-type")
    if media is not None:
        event["datacontenttype"] = media
    return event


def _binary_data(raw: bytes, media: str, max_depth: int) -> Any:
    """The body of a binary-mode message as the payload's data."""
    if not raw:
        return None
    if media == "application/json" or media.endswith("+json") or not media:
        try:
            return parse_json(raw, max_depth)
        except EventyardError:
            if media:
                raise
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return {"data_base64": base64.b64encode(raw).decode("ascii")}


def _refuse(errors: list[FieldError], what: str) -> InvalidRequest:
    first = errors[0]
    return InvalidRequest(
        f"{what} is not a valid CloudEvent: {first.path} {first.message}.", errors=errors
    )


def _native_path(path: str, base: str) -> str:
    """Ingest's paths (`$.payload.x`, `$.timestamp`) as the CloudEvent names them."""
    for native, ours in (
        ("payload", "data"),
        ("timestamp", "time"),
        ("user_id", "subject"),
        ("trigger", "type"),
        ("idempotency_key", "id"),
    ):
        prefix = f"{base}.{native}"
        if path == prefix or path.startswith((prefix + ".", prefix + "[")):
            return f"{base}.{ours}{path[len(prefix) :]}"
    return path


def _single_refusal(result: ItemResult, headers: bool) -> EventyardError:
    error = single_result_error(result)
    if headers:
        renamed = [
            FieldError(_native_path(e.path, "$").replace("$.", "ce-", 1), e.message)
            if not e.path.startswith("$.payload")
            else FieldError(_native_path(e.path, "$"), e.message)
            for e in result.errors
        ]
    else:
        renamed = [FieldError(_native_path(e.path, "$"), e.message) for e in result.errors]
    first = renamed[0]
    message = f"{error.message.split(' $', 1)[0]} {first.path} {first.message}"
    return type(error)(message, errors=renamed, extra=error.extra)


def _result_json(index: int | None, result: ItemResult) -> dict[str, Any]:
    out: dict[str, Any] = {} if index is None else {"index": index}
    stored = result.stored
    duplicate = result.code in _DUPLICATE_CODES or (
        stored is not None and stored.outcome is Outcome.DUPLICATE
    )
    if result.errors and not duplicate:
        base = "$" if index is None else f"$[{index}]"
        paths = [e.path if index is None else "$" + e.path for e in result.errors]
        out.update(
            status="rejected",
            code=result.code,
            errors=[
                {"path": _native_path(path, base), "message": e.message}
                for path, e in zip(paths, result.errors, strict=True)
            ],
        )
        return out
    assert stored is not None
    event_id = stored.original_id if duplicate else (stored.event.id if stored.event else None)
    out.update(status="duplicate" if duplicate else "accepted", id=event_id)
    return out


_ACCEPTED = {
    "type": "object",
    "required": ["id", "status"],
    "properties": {
        "id": {"type": "string", "description": "the eventyard event id"},
        "status": {"type": "string", "enum": ["accepted", "duplicate"]},
    },
}
_BATCH_RESULT = {"$ref": "#/components/schemas/BatchResult"}
_EVENT_SCHEMA = {
    "type": "object",
    "required": ["specversion", "id", "source", "type"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string"},
        "source": {"type": "string", "format": "uri-reference"},
        "type": {"type": "string", "description": "the trigger"},
        "subject": {"type": "string", "description": "the user; the source when absent"},
        "time": {"type": "string", "format": "date-time"},
        "datacontenttype": {"type": "string"},
        "dataschema": {"type": "string"},
        "data": {"description": "the payload; not an object: wrapped as {data: ...}"},
        "data_base64": {"type": "string"},
    },
}


@routes.add(
    "POST",
    "/cloudevents",
    scope=Scope.WRITE,
    summary="CloudEvents 1.0 HTTP binding: structured, batch or binary mode",
    tags=("cloudevents",),
    body=_EVENT_SCHEMA,
    responses={
        202: {
            "description": "Stored (or a duplicate source + id). A batch answers per event.",
            "content": {
                "application/json": {"schema": {"oneOf": [_ACCEPTED, _BATCH_RESULT]}},
            },
        },
        400: problem("Not JSON, or not a CloudEvent: a required attribute missing or wrong."),
        404: problem("The trigger does not exist and the project is strict."),
        409: problem("The trigger is archived."),
        413: problem("The body or the batch is larger than the limit."),
        415: problem("A structured-mode format other than JSON."),
        422: {
            "description": "The data does not fit the trigger's schema: one event answers "
            "problem details, a batch its per-event results.",
            "content": {
                "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}},
                "application/json": {"schema": _BATCH_RESULT},
            },
        },
        **AUTH_ERRORS,
    },
)
async def cloudevents_receive(req: Request, ctx: Context) -> Response:
    s = ctx.services.settings
    raw = await req.body(s.max_request_bytes)
    media = _media_type(req)
    if media == BATCH:
        return await _receive_batch(req, ctx, parse_json(raw, s.max_json_depth))
    if media.startswith("application/cloudevents"):
        if media != STRUCTURED:
            raise UnsupportedMediaType(
                f"{media!r} is not supported: send {STRUCTURED}, {BATCH}, or binary mode."
            )
        return await _receive_one(ctx, parse_json(raw, s.max_json_depth), headers=False)
    if "ce-specversion" not in req.headers and media in ("application/json", "") and raw.strip():
        # No ce-* headers: a structured event or a batch sent as plain JSON, leniently.
        try:
            body = parse_json(raw, s.max_json_depth)
        except EventyardError:
            if media:
                raise
            body = None
        if isinstance(body, dict) and "specversion" in body:
            return await _receive_one(ctx, body, headers=False)  # structured, plain JSON type
        if isinstance(body, list):
            return await _receive_batch(req, ctx, body)
    event = _binary_event(req)
    errors = _attribute_errors(event, lambda name: f"ce-{name}")
    if errors:
        raise _refuse(errors, "The binary-mode message")
    item = _item(event, _binary_data(raw, media, s.max_json_depth))
    return await _ingest_one(ctx, item, headers=True)


async def _receive_one(ctx: Context, event: Any, *, headers: bool) -> Response:
    if not isinstance(event, dict):
        raise InvalidRequest(
            "A structured-mode CloudEvent is a JSON object.",
            errors=[FieldError("$", f"must be an object, got {type_name(event)}")],
        )
    errors = _attribute_errors(event, lambda name: f"$.{name}")
    data, data_errors = _structured_data(event, lambda name: f"$.{name}")
    errors.extend(data_errors)
    if errors:
        raise _refuse(errors, "The body")
    return await _ingest_one(ctx, _item(event, data), headers=headers)


async def _ingest_one(ctx: Context, item: dict[str, Any], *, headers: bool) -> Response:
    (result,) = await ctx.services.ingest.ingest(ctx.principal, [item], source=SOURCE)
    if result.errors and result.code not in _DUPLICATE_CODES:
        raise _single_refusal(result, headers)
    return json_response(_result_json(None, result), 202)


async def _receive_batch(req: Request, ctx: Context, batch: Any) -> Response:
    if not isinstance(batch, list):
        raise InvalidRequest(
            "A batch is a JSON array of structured CloudEvents.",
            errors=[FieldError("$", f"must be an array, got {type_name(batch)}")],
        )
    limit = ctx.services.settings.max_batch_events
    if len(batch) > limit:
        raise BatchTooLarge(
            f"The batch has {len(batch):,} events; the limit is {limit:,} a batch.",
            errors=[FieldError("$", f"has {len(batch):,} items; the limit is {limit:,}")],
            extra={"limit": limit, "size": len(batch)},
        )
    # A batch whose envelope is wrong anywhere is refused whole: nothing is stored.
    errors: list[FieldError] = []
    items: list[dict[str, Any]] = []
    for index, event in enumerate(batch):
        if not isinstance(event, dict):
            errors.append(FieldError(f"$[{index}]", f"must be an object, got {type_name(event)}"))
            continue

        def where(name: str, index: int = index) -> str:
            return f"$[{index}].{name}"

        found = _attribute_errors(event, where)
        data, data_errors = _structured_data(event, where)
        found.extend(data_errors)
        errors.extend(found)
        if not found:
            items.append(_item(event, data))
    if errors:
        raise _refuse(errors, "The batch holds an event that")
    # base "" gives paths "[3].payload.x"; `_result_json` puts the "$" in front.
    results = await ctx.services.ingest.ingest(ctx.principal, items, source=SOURCE, base="")
    out = [_result_json(i, r) for i, r in enumerate(results)]
    counts = {
        "accepted": sum(o["status"] == "accepted" for o in out),
        "duplicates": sum(o["status"] == "duplicate" for o in out),
        "rejected": sum(o["status"] == "rejected" for o in out),
    }
    return json_response({"results": out, **counts}, 422 if counts["rejected"] else 202)
