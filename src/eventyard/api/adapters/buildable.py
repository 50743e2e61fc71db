"""The `/buildable` adapter: Buildable's Event API, so its clients need only a new base URL.

`POST /buildable/{emit,query,update,init,transact,get-full-event-name}` with the key (an
eventyard key) in `X-Buildable-Secret`. `/emit` stores a native event (source `buildable`);
`/query` pages events with Buildable's filters; a `txKey` names a pull consumer of the key's
project and environment, made on first use by `/init`, `/update` or `/transact`, whose
transaction of an event is what those three act on. Errors are
`{"status": "error", "message": ...}` with a 4xx. The shapes are built in
`buildable_shapes`; docs/adapters/buildable.md states every choice.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import orjson

from eventyard.api.adapters import buildable_shapes as shapes
from eventyard.api.adapters.buildable_schemas import ERRORS
from eventyard.api.context import Context
from eventyard.api.http import Request, Response, json_response
from eventyard.api.routing import Handler, RouteTable
from eventyard.api.schemas import api_key_header, json_body, ref
from eventyard.domain.jsonbody import parse_json
from eventyard.domain.models import (
    TERMINAL_STATES,
    Consumer,
    ConsumerKind,
    Event,
    Scope,
    Transaction,
    TxState,
)
from eventyard.domain.timeparse import TimeParseError, parse_event_time, type_name
from eventyard.errors import (
    Conflict,
    EventNotFound,
    EventyardError,
    FieldError,
    InvalidRequest,
    PayloadTooLarge,
    ValidationFailed,
)
from eventyard.services.consumers import MAX_LEASE_SECONDS, MAX_NAME
from eventyard.services.ingest import single_result_error
from eventyard.services.transactions import STATE_NAME
from eventyard.store.events import NOT_TAKEN_UP, EventQuery

routes = RouteTable()
SOURCE = "buildable"
PREFIX = "/buildable"
HEADER = "x-buildable-secret"
DEFAULT_USER = "buildable"  # the user of an event whose payload names none
MAX_PAGE_SIZE = 100
DEFAULT_PAGE_SIZE = 10

SECURITY = api_key_header(
    "X-Buildable-Secret",
    "An eventyard key (sk_live_... or sk_test_...) as Buildable's secret key: the write scope "
    "for /emit, /update, /init and /transact, the read scope for /query and "
    "/get-full-event-name.",
)


# --- errors and bodies -------------------------------------------------------------------


def render_error(exc: EventyardError) -> Response:
    """`{"status": "error", "message": ...}` with the error's status (and field errors)."""
    message = exc.message
    if exc.errors and exc.errors[0].message not in message:
        first = exc.errors[0]
        message = f"{message} {first.path} {first.message}"
    body: dict[str, Any] = {"status": "error", "message": message}
    if exc.errors:
        body["errors"] = [e.as_dict() for e in exc.errors]
    return Response(exc.status, orjson.dumps(body), "application/json", dict(exc.headers))


def secret_of(req: Request) -> str | None:
    value = req.header(HEADER)
    return value.strip() or None if value else None


async def _body(req: Request, ctx: Context, fields: set[str]) -> dict[str, Any]:
    s = ctx.services.settings
    body = parse_json(await req.body(s.max_request_bytes), s.max_json_depth)
    if not isinstance(body, dict):
        raise InvalidRequest(f"The request body must be a JSON object, got {type_name(body)}.")
    unknown = sorted(set(body) - fields)
    if unknown:
        known = ", ".join(sorted(fields))
        raise InvalidRequest(
            f"Unknown field {unknown[0]!r}; this request takes: {known}.",
            errors=[FieldError(f"$.{name}", "is not a known field") for name in unknown],
        )
    return body


def _text(body: dict[str, Any], name: str, *, required: bool = False) -> str:
    """A string field; absent or null reads as "" (the document's "no value")."""
    if name not in body or body[name] is None:
        if required:
            raise InvalidRequest(
                f"{name} is required.", errors=[FieldError(f"$.{name}", "is required")]
            )
        return ""
    value = body[name]
    if not isinstance(value, str):
        raise InvalidRequest(
            f"{name} must be a string, got {type_name(value)}.",
            errors=[FieldError(f"$.{name}", f"must be a string, got {type_name(value)}")],
        )
    if "\x00" in value:
        raise InvalidRequest(f"{name} holds a NUL character.")
    return value


def _whole(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidRequest(
            f"{name} must be a whole number from {low} to {high}, got {value!r}.",
            errors=[FieldError(f"$.{name}", f"must be a whole number from {low} to {high}")],
        )
    return value


def _route(
    path: str, scope: Scope, summary: str, body: str, answer: str
) -> Callable[[Handler], Handler]:
    return routes.add(
        "POST",
        PREFIX + path,
        scope=scope,
        summary=summary,
        tags=("buildable",),
        body=ref(body),
        responses={200: json_body("Success.", ref(answer)), **ERRORS},
        credentials=secret_of,
        key_hint="in the X-Buildable-Secret header",
        render_error=render_error,
        security=SECURITY,
    )


# --- events and transactions by key and txKey --------------------------------------------


async def _event(ctx: Context, key: str) -> Event:
    event_id = shapes.event_id_from_key(key)
    if event_id is None:
        raise InvalidRequest(
            "key must be the 32 lowercase hex digits /emit answered with.",
            errors=[FieldError("$.key", "must be 32 lowercase hex digits")],
        )
    try:
        return await ctx.services.events.get(ctx.principal, event_id)
    except EventNotFound:
        raise EventNotFound(f"No event with key {key!r} in this environment.") from None


def _tx_key(body: dict[str, Any]) -> str:
    tx_key = _text(body, "txKey", required=True).strip()
    if not tx_key or len(tx_key) > MAX_NAME:
        raise InvalidRequest(
            f"txKey must be 1 to {MAX_NAME} characters: the name of your consumer.",
            errors=[FieldError("$.txKey", f"must be 1 to {MAX_NAME} characters")],
        )
    return tx_key


async def _transaction(ctx: Context, event: Event, tx_key: str) -> tuple[Consumer, Transaction]:
    """The txKey's consumer (made on first use) and its transaction of the event."""
    consumer = await ctx.services.consumers.pull_consumer_named(ctx.principal, tx_key)
    if consumer.kind is not ConsumerKind.PULL:
        raise Conflict(f"txKey {tx_key!r} names a webhook consumer; use a pull consumer's name.")
    txn = await ctx.services.transactions.ensure(ctx.principal, consumer, event)
    if txn is None:
        raise Conflict(
            f"The consumer {tx_key!r} does not take {event.trigger!r} events (its trigger "
            "filter leaves them out)."
        )
    return consumer, txn


async def _report(
    ctx: Context, txn: Transaction, state: str, output: dict[str, Any] | None = None
) -> Transaction:
    body: dict[str, Any] = {"state": state, **(output or {})}
    if state == TxState.PROCESSING:
        body["lease_seconds"] = MAX_LEASE_SECONDS
    by = ctx.principal.key.id
    return await ctx.services.transactions.report(ctx.principal, txn.id, body, by)


# --- routes ------------------------------------------------------------------------------


@_route("/emit", Scope.WRITE, "Emit an event", "BuildableEmit", "BuildableEmitted")
async def buildable_emit(req: Request, ctx: Context) -> Response:
    body = await _body(req, ctx, {"event", "payload", "ttl"})
    name = _text(body, "event", required=True)
    payload = body.get("payload")
    if payload is None:
        payload = {}
    if not isinstance(payload, dict):
        raise InvalidRequest(
            f"payload must be a JSON object, got {type_name(payload)}.",
            errors=[FieldError("$.payload", "must be an object")],
        )
    if shapes.RESERVED in payload:
        raise InvalidRequest(
            f"payload.{shapes.RESERVED} is reserved for what eventyard keeps with the event.",
            errors=[FieldError(f"$.payload.{shapes.RESERVED}", "is reserved")],
        )
    now = ctx.services.clock.now_us()
    ttl = body.get("ttl")
    expires_at = None
    if ttl is not None:
        ttl_ms = _whole(body, "ttl", 0, 1, 100 * 365 * 86_400_000)
        expires_at = now + ttl_ms * 1000
    secret = secret_of(req) or ""
    user = payload.get("userId", payload.get("user_id"))
    meta = {
        "eventName": name,
        "query": shapes.kept_query(req.query, secret),
        "headers": shapes.kept_headers(req.headers, secret),
        "clientId": ctx.principal.key.id,
    }
    item = {
        "trigger": shapes.trigger_of(name),
        "user_id": user if isinstance(user, str | int) and user != "" else DEFAULT_USER,
        "payload": {**payload, shapes.RESERVED: meta},
    }
    ingest = ctx.services.ingest
    draft, errors, code = ingest.check_item(item, "$", SOURCE)
    if draft is None:
        cls = PayloadTooLarge if code == "payload_too_large" else ValidationFailed
        raise cls("The event is not valid.", errors=errors)
    draft = replace(draft, timestamp=now, expires_at=expires_at)  # ttl counts from now
    result = (await ingest.ingest(ctx.principal, [item], source=SOURCE, drafts=[draft]))[0]
    if result.errors or result.stored is None or result.stored.event is None:
        raise single_result_error(result)
    return json_response({"status": "success", "key": shapes.event_key(result.stored.event.id)})


_QUERY_FIELDS = {"eventName", "txKey", "since", "platform", "label", "txState", "page", "pageSize"}


@_route("/query", Scope.READ, "Query events, a page at a time", "BuildableQuery", "BuildablePage")
async def buildable_query(req: Request, ctx: Context) -> Response:
    body = await _body(req, ctx, _QUERY_FIELDS)
    name, platform, label = (_text(body, f) for f in ("eventName", "platform", "label"))
    tx_key, tx_state = _text(body, "txKey").strip(), _text(body, "txState").strip()
    page = _whole(body, "page", 1, 1, 1_000_000)
    size = _whole(body, "pageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    since = None
    if body.get("since") not in (None, ""):
        try:
            since = parse_event_time(body["since"])
        except TimeParseError as exc:
            raise InvalidRequest(
                f"since: {exc}.", errors=[FieldError("$.since", str(exc))]
            ) from None
    if tx_state and tx_state != shapes.DOES_NOT_EXIST and not STATE_NAME.fullmatch(tx_state):
        raise InvalidRequest(
            f"txState {tx_state[:64]!r} is not a state name.",
            errors=[FieldError("$.txState", "must be does-not-exist or a lowercase state name")],
        )
    trigger = prefix = None
    if name.strip():
        trigger = shapes.full_name(name, platform, label) or shapes.UNNAMED
    elif platform.strip() or label.strip():
        prefix = shapes.full_name("", platform, label) + "."
    consumer_id = None
    state = None
    if tx_state:
        state = NOT_TAKEN_UP if tx_state == shapes.DOES_NOT_EXIST else tx_state
    if tx_key:
        consumer = await ctx.services.consumers.get_by_name(ctx.principal, tx_key)
        consumer_id = consumer.id if consumer is not None else ""
        if consumer is None and state is not None and state != NOT_TAKEN_UP:
            return json_response(_envelope([], 0, page, size))
        if consumer is None:
            state = None  # no consumer yet: it has taken up nothing
    query = EventQuery(
        trigger=trigger,
        trigger_prefix=prefix,
        since=since,
        limit=size,
        offset=(page - 1) * size,
        consumer=consumer_id or None,
        consumer_state=state,
    )
    events, total = await ctx.services.events.page(ctx.principal, query)
    txns = await ctx.services.transactions.of_events([e.id for e in events])
    rows = [shapes.event_object(e, txns[e.id], consumer_id) for e in events]
    return json_response(_envelope(rows, total, page, size))


def _envelope(rows: list[dict[str, Any]], total: int, page: int, size: int) -> dict[str, Any]:
    return {
        "rows": rows,
        "total": total,
        "page": page,
        "pageSize": size,
        "totalPages": math.ceil(total / size),
    }


@_route(
    "/update",
    Scope.WRITE,
    "Set the state of a txKey's transaction",
    "BuildableUpdate",
    "BuildableEvent",
)
async def buildable_update(req: Request, ctx: Context) -> Response:
    body = await _body(req, ctx, {"key", "eventName", "txKey", "txState"})
    key, name = _text(body, "key", required=True), _text(body, "eventName")
    tx_key = _tx_key(body)
    target = _text(body, "txState", required=True).strip()
    if target == shapes.DOES_NOT_EXIST:
        target = TxState.PENDING  # handed back: no longer taken up
    event = await _event(ctx, key)
    if (
        name.strip()
        and name != shapes.event_name(event)
        and shapes.trigger_of(name) != event.trigger
    ):
        raise EventNotFound(f"The event with key {key!r} is not a {name!r} event.")
    consumer, txn = await _transaction(ctx, event, tx_key)
    if txn.state in TERMINAL_STATES and target == TxState.PENDING:
        await ctx.services.transactions.retry(ctx.principal, txn.id, ctx.principal.key.id)
    elif target != txn.state or target == TxState.PROCESSING:
        await _report(ctx, txn, target)
    txns = await ctx.services.transactions.of_event(event.id)
    return json_response(shapes.event_object(event, txns, consumer.id))


@_route(
    "/init",
    Scope.WRITE,
    "Start a txKey's transaction of an event",
    "BuildableInit",
    "BuildableTransaction",
)
async def buildable_init(req: Request, ctx: Context) -> Response:
    body = await _body(req, ctx, {"key", "txKey"})
    key, tx_key = _text(body, "key", required=True), _tx_key(body)
    event = await _event(ctx, key)
    _, txn = await _transaction(ctx, event, tx_key)
    if txn.state != TxState.PENDING:
        raise Conflict(
            f"The transaction of txKey {tx_key!r} for this event is {txn.state} already."
        )
    txn = await _report(ctx, txn, TxState.PROCESSING)
    return json_response(shapes.transaction_object(txn, event, tx_key))


@_route(
    "/transact",
    Scope.WRITE,
    "Report a txKey's transaction: state and output",
    "BuildableTransact",
    "BuildableTransaction",
)
async def buildable_transact(req: Request, ctx: Context) -> Response:
    body = await _body(req, ctx, {"key", "txKey", "output", "state"})
    key, tx_key = _text(body, "key", required=True), _tx_key(body)
    state = _text(body, "state").strip() or TxState.FINISHED
    event = await _event(ctx, key)
    _, txn = await _transaction(ctx, event, tx_key)
    output = {"output": body["output"]} if "output" in body else None
    txn = await _report(ctx, txn, state, output)
    return json_response(shapes.transaction_object(txn, event, tx_key))


@_route(
    "/get-full-event-name",
    Scope.READ,
    "The full name of a platform's event",
    "BuildableFullName",
    "BuildableFullNameAnswer",
)
async def buildable_get_full_event_name(req: Request, ctx: Context) -> Response:
    body = await _body(req, ctx, {"eventName", "platform", "label"})
    parts = (_text(body, f) for f in ("eventName", "platform", "label"))
    return json_response({"fullName": shapes.full_name(*parts)})
