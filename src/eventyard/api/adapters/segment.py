"""The `/segment` adapter: Segment's HTTP Tracking API, so Segment SDKs need only a new host.

`POST /segment/v1/{track,identify,page,screen,group,alias}` take one message,
`/segment/v1/batch` (and its alias `/segment/v1/import`) take `{"batch": [...]}`. The write
key is an eventyard key with the write scope, sent as the Basic auth user name, as
`Authorization: Bearer`, or as `writeKey` in the body. Bodies may be gzip-compressed.
Success is `200 {"success": true}`; an error is JSON `{"success": false, "code", "message"}`
with a 4xx, which is what the Segment and RudderStack clients parse. Messages become native
events through the ingest service (see `segment_mapping` for the translation).
"""

from __future__ import annotations

import base64
import binascii
import logging
import zlib
from typing import Any

import orjson

from eventyard.api.adapters.segment_mapping import (
    BATCH_EVENTS_LIMIT,
    BATCH_LIMIT,
    CALL_TYPES,
    KB,
    REQUEST_LIMIT,
    InvalidMessage,
    MessageError,
    to_item,
)
from eventyard.api.context import Context
from eventyard.api.http import Request, Response
from eventyard.api.routing import Credentials, Handler, RouteTable
from eventyard.api.schemas import SECURITY_SCHEMES, json_body
from eventyard.domain.jsonbody import parse_json
from eventyard.domain.models import Scope
from eventyard.errors import (
    EventyardError,
    FieldError,
    InvalidRequest,
    PayloadTooLarge,
    ValidationFailed,
)
from eventyard.services.ingest import single_result_error

logger = logging.getLogger("eventyard.adapters.segment")

routes = RouteTable()
SOURCE = "segment"
PREFIX = "/segment/v1"
_SUCCESS = orjson.dumps({"success": True})
_KEY_LOOKUP_DEPTH = 64  # only to find `writeKey`; the handler applies the configured depth
_DUPLICATE_CODES = frozenset({"idempotency_key_reused"})  # a messageId seen: dropped, as Segment

SECURITY = "segment_write_key"
SECURITY_SCHEMES[SECURITY] = {
    "type": "http",
    "scheme": "basic",
    "description": "The write key (an eventyard key, sk_live_... or sk_test_..., with the write "
    "scope) as the Basic auth user name with an empty password. `Authorization: Bearer <key>` "
    "and a `writeKey` field in the body work too.",
}


# --- errors ------------------------------------------------------------------------------


def render_error(exc: EventyardError) -> Response:
    """`{"success": false, "code", "message"}`: what Segment's clients read from a refusal.

    Segment answers size and JSON errors with 400, so our 413 and 422 become 400 here; auth
    stays 401/403 and a database outage stays 503 (the clients retry those).
    """
    status = 400 if exc.status in (413, 422) else exc.status
    code = exc.segment_code if isinstance(exc, InvalidMessage) else exc.code
    body: dict[str, Any] = {"success": False, "code": code, "message": exc.message}
    if exc.errors:
        body["errors"] = [e.as_dict() for e in exc.errors]
    return Response(status, orjson.dumps(body), "application/json", dict(exc.headers))


# --- reading the body and the key --------------------------------------------------------


def gunzip(data: bytes, limit: int, what: str) -> bytes:
    """Decompress a gzip body, never producing more than `limit` bytes (a zip bomb stops)."""
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        out = inflater.decompress(data, limit + 1)
    except zlib.error as exc:
        raise InvalidRequest(
            f"The body says Content-Encoding: gzip but is not gzip: {exc}."
        ) from None
    if len(out) > limit:
        raise PayloadTooLarge(
            f"The request body is more than {limit:,} bytes once decompressed; the limit is "
            f"{limit // KB} KB ({limit:,} bytes) {what}.",
            extra={"limit": limit},
        )
    if not inflater.eof:
        raise InvalidRequest("The gzip body is cut short: its stream does not end.")
    if inflater.unused_data.strip(b"\x00"):
        raise InvalidRequest("The gzip body has data after its stream; send one gzip member.")
    return out


async def read_body(req: Request, limit: int, what: str, max_depth: int) -> Any:
    """The parsed JSON body, gunzipped if need be; both forms within `limit` bytes."""
    try:
        raw = await req.body(limit)
    except PayloadTooLarge as exc:
        raise PayloadTooLarge(
            f"{exc.message.rstrip('.').rsplit(';', 1)[0]}; the limit is {limit // KB} KB "
            f"({limit:,} bytes) {what}.",
            extra=exc.extra,
        ) from None
    encoding = (req.header("content-encoding") or "").strip().lower()
    if encoding == "gzip":
        raw = gunzip(raw, limit, what)
    elif encoding not in ("", "identity"):
        raise InvalidRequest(
            f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding."
        )
    return parse_json(raw, max_depth)


def header_key(req: Request) -> str | None:
    """The key from `Authorization`: Basic (user name, or password if no user) or Bearer."""
    header = (req.header("authorization") or "").strip()
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        return value or None
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, _, password = decoded.partition(":")
    return user.strip() or password.strip() or None


def _credentials(limit: int, what: str) -> Credentials:
    async def credentials(req: Request) -> str | None:
        key = header_key(req)
        if key is not None:
            return key
        body = await read_body(req, limit, what, _KEY_LOOKUP_DEPTH)
        found = body.get("writeKey") if isinstance(body, dict) else None
        return found if isinstance(found, str) and found else None

    return credentials


async def _read_object(req: Request, ctx: Context, limit: int, what: str) -> dict[str, Any]:
    body = await read_body(req, limit, what, ctx.services.settings.max_json_depth)
    if not isinstance(body, dict):
        raise ValidationFailed(
            "The request body must be a JSON object.",
            errors=[FieldError("$", "must be an object")],
        )
    return body


# --- routes ------------------------------------------------------------------------------

_OK = json_body("Accepted.", {"type": "object", "properties": {"success": {"const": True}}})
_ERROR_SCHEMA = {
    "type": "object",
    "required": ["code", "message"],
    "properties": {
        "success": {"const": False},
        "code": {"type": "string"},
        "message": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
_RESPONSES = {
    200: _OK,
    400: json_body("Malformed JSON or gzip, too large, or an invalid message.", _ERROR_SCHEMA),
    401: json_body("No write key, or an unknown or revoked one.", _ERROR_SCHEMA),
    403: json_body("The key lacks the write scope.", _ERROR_SCHEMA),
}
_MESSAGE = {
    "type": "object",
    "properties": {
        "userId": {"type": "string"},
        "anonymousId": {"type": "string"},
        "messageId": {"type": "string"},
        "event": {"type": "string", "description": "track only: the event's name"},
        "properties": {"type": "object"},
        "traits": {"type": "object"},
        "context": {"type": "object"},
        "integrations": {"type": "object"},
        "timestamp": {"type": "string", "format": "date-time"},
        "originalTimestamp": {"type": "string", "format": "date-time"},
        "sentAt": {"type": "string", "format": "date-time"},
        "writeKey": {"type": "string"},
    },
}
_ONE = "a single-call request"
_MANY = "a batch request"


def _single(call: str) -> Handler:
    async def handler(req: Request, ctx: Context) -> Response:
        message = await _read_object(req, ctx, REQUEST_LIMIT, _ONE)
        received = ctx.services.clock.now_us()
        try:
            item = to_item(message, call, "$", received)
        except MessageError as exc:
            raise exc.as_error() from None
        (result,) = await ctx.services.ingest.ingest(ctx.principal, [item], source=SOURCE)
        if result.errors and result.code not in _DUPLICATE_CODES:
            raise single_result_error(result)
        return Response(200, _SUCCESS)

    handler.__name__ = f"segment_{call}"
    return handler


for _call in CALL_TYPES:
    routes.add(
        "POST",
        f"{PREFIX}/{_call}",
        scope=Scope.WRITE,
        summary=f"Segment {_call} call",
        tags=("segment",),
        body=_MESSAGE,
        responses=_RESPONSES,
        credentials=_credentials(REQUEST_LIMIT, _ONE),
        key_hint="as the write key: Basic auth user name, a Bearer token, or writeKey in the body",
        render_error=render_error,
        security=SECURITY,
    )(_single(_call))


async def _batch(req: Request, ctx: Context) -> Response:
    body = await _read_object(req, ctx, BATCH_LIMIT, _MANY)
    batch = body.get("batch")
    if not isinstance(batch, list):
        raise ValidationFailed(
            'A batch is {"batch": [...]}.',
            errors=[FieldError("$.batch", "is required: an array of messages")],
        )
    if len(batch) > BATCH_EVENTS_LIMIT:
        raise ValidationFailed(
            f"The batch has {len(batch):,} messages; the limit is {BATCH_EVENTS_LIMIT:,} a batch.",
            errors=[FieldError("$.batch", f"has more than {BATCH_EVENTS_LIMIT:,} items")],
        )
    received = ctx.services.clock.now_us()
    defaults = {name: body.get(name) for name in ("context", "integrations")}
    items: list[dict[str, Any]] = []
    where: list[int] = []
    for index, message in enumerate(batch):
        try:
            items.append(
                to_item(
                    message,
                    None,
                    f"$.batch[{index}]",
                    received,
                    batch_sent_at=body.get("sentAt"),
                    defaults=defaults,
                )
            )
            where.append(index)
        except MessageError as exc:
            _log_dropped(index, exc.code, [FieldError(exc.path, exc.message)])
    results = await ctx.services.ingest.ingest(ctx.principal, items, source=SOURCE, base="$.batch")
    for position, (index, result) in enumerate(zip(where, results, strict=True)):
        if result.errors and result.code not in _DUPLICATE_CODES:
            # ingest numbers the items it was given; name them by their place in the batch
            moved = [
                FieldError(
                    e.path.replace(f"$.batch[{position}]", f"$.batch[{index}]", 1), e.message
                )
                for e in result.errors
            ]
            _log_dropped(index, result.code, moved)
    # As Segment: a batch that could be read is accepted; bad messages in it are dropped.
    return Response(200, _SUCCESS)


def _named(handler: Handler, name: str) -> Handler:
    """The same handler under its own name: each route needs its own OpenAPI operationId."""

    async def named(req: Request, ctx: Context) -> Response:
        return await handler(req, ctx)

    named.__name__ = name
    return named


def _log_dropped(index: int, code: str, errors: list[FieldError]) -> None:
    detail = "; ".join(f"{e.path} {e.message}" for e in errors)
    logger.warning("segment batch: message %d dropped (%s): %s", index, code, detail)


for _path in ("batch", "import"):
    routes.add(
        "POST",
        f"{PREFIX}/{_path}",
        scope=Scope.WRITE,
        summary=f"Segment {_path}: up to {BATCH_EVENTS_LIMIT:,} messages, 500 KB",
        tags=("segment",),
        body={
            "type": "object",
            "required": ["batch"],
            "properties": {
                "batch": {"type": "array", "items": _MESSAGE},
                "context": {"type": "object"},
                "integrations": {"type": "object"},
                "sentAt": {"type": "string", "format": "date-time"},
                "writeKey": {"type": "string"},
            },
        },
        responses=_RESPONSES,
        credentials=_credentials(BATCH_LIMIT, _MANY),
        key_hint="as the write key: Basic auth user name, a Bearer token, or writeKey in the body",
        render_error=render_error,
        security=SECURITY,
    )(_named(_batch, f"segment_{_path}"))
