"""`GET /v1/events/stream`: new events as server-sent events, as they are stored.

Each event is one SSE message: `id:` the event id, `event: event`, and `data:` the JSON that
`GET /v1/events/{id}` answers for it. A client that reconnects sends the last id it got as
`Last-Event-ID` (browsers' EventSource does so by itself) and misses nothing in between. A
comment line is sent every 15 seconds when nothing else is, so proxies keep the connection.
The feed itself, which works across processes sharing one database, is `services/live.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, StreamResponse
from eventyard.api.routing import RouteTable, bearer_token
from eventyard.api.schemas import AUTH_ERRORS, problem
from eventyard.domain.models import Event, Principal, Scope
from eventyard.errors import InvalidRequest, Unauthenticated
from eventyard.services.live import FeedFilter, is_event_id
from eventyard.views import event_detail_json

routes = RouteTable()

SSE_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
HEARTBEAT = b": keep-alive\n\n"
OPENED = b"retry: 2000\n: connected\n\n"  # EventSource reconnects after 2 s, not its default 3
MAX_SECONDS = 86400.0

_PARAMS = (
    {"name": "trigger", "in": "query", "schema": {"type": "string"}},
    {"name": "user_id", "in": "query", "schema": {"type": "string"}},
    {
        "name": "since_id",
        "in": "query",
        "schema": {"type": "string"},
        "description": "start just after this event id instead of now (the Last-Event-ID "
        "header does the same, and wins)",
    },
    {
        "name": "max_seconds",
        "in": "query",
        "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_SECONDS},
        "description": "end the stream after this many seconds (default: it stays open)",
    },
)


def sse_message(event_id: str, data: dict[str, Any], event: str = "event") -> bytes:
    """One server-sent event; orjson writes no newlines, so the JSON is one `data:` line."""
    head = b"id: " + event_id.encode() + b"\nevent: " + event.encode() + b"\ndata: "
    return head + orjson.dumps(data) + b"\n\n"


def resume_id(req: Request, since_id: str | None) -> str | None:
    """Where to resume: the `Last-Event-ID` header, else `since_id`; checked to be an event id."""
    header = req.header("last-event-id")
    value = header if header else since_id
    if not value:
        return None
    if not is_event_id(value):
        where = "The Last-Event-ID header" if header else "since_id"
        raise InvalidRequest(f"{where} must be an event id (evt_...), not {value[:64]!r}.")
    return value


def max_seconds_param(raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not 0 < value <= MAX_SECONDS:
        raise InvalidRequest(
            f"max_seconds must be a number of seconds above 0, at most {MAX_SECONDS:.0f}; "
            f"got {raw[:32]!r}."
        )
    return value


Render = Callable[[list[Event]], Awaitable[list[bytes]]]
# Whether the caller may still read the stream (its key not revoked, its session not over).
StillAllowed = Callable[[], Awaitable[bool]]
RECHECK_SECONDS = 5.0  # at most this often; a heartbeat (every 15 s) always checks


def event_stream(
    ctx: Context,
    principal: Principal,
    feed: FeedFilter,
    since_id: str | None,
    render: Render,
    still_allowed: StillAllowed,
    max_seconds: float | None = None,
) -> Callable[[], AsyncIterator[bytes]]:
    """The SSE body: `render` turns each batch of new events into messages.

    Refused up front (503) when the process already has its limit of open streams.

    The stream ends when `still_allowed` says no: a key revoked or a session signed out
    while the stream is open stops receiving events within seconds, not never.
    """

    ctx.services.live.check_room()

    async def chunks() -> AsyncIterator[bytes]:
        yield OPENED
        follow = ctx.services.live.follow(principal, feed, since_id)
        ends = time.monotonic() + max_seconds if max_seconds is not None else None
        checked = time.monotonic()
        try:
            while True:
                left = ends - time.monotonic() if ends is not None else None
                if left is not None and left <= 0:
                    return
                try:
                    batch = await asyncio.wait_for(anext(follow), left)
                except TimeoutError:
                    return
                if not batch or time.monotonic() - checked >= RECHECK_SECONDS:
                    if not await still_allowed():
                        return
                    checked = time.monotonic()
                if not batch:
                    yield HEARTBEAT
                    continue
                yield b"".join(await render(batch))
        finally:
            await follow.aclose()

    return chunks


@routes.add(
    "GET",
    "/v1/events/stream",
    scope=Scope.READ,
    summary="Follow new events as server-sent events",
    tags=("events",),
    query=_PARAMS,
    responses={
        200: {
            "description": "A stream of server-sent events that stays open. Each message is "
            "`id: <event id>`, `event: event` and `data:` the event as GET /v1/events/{id} "
            "shows it; a `: keep-alive` comment comes every 15 seconds. Reconnect with the "
            "Last-Event-ID header to resume where the stream stopped.",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        },
        400: problem("A bad since_id, Last-Event-ID or max_seconds."),
        **AUTH_ERRORS,
    },
)
async def stream_events(req: Request, ctx: Context) -> Response:
    params = req.query_params({str(p["name"]) for p in _PARAMS})
    feed = FeedFilter(trigger=params.get("trigger") or None, user_id=params.get("user_id") or None)
    since_id = resume_id(req, params.get("since_id"))
    max_seconds = max_seconds_param(params.get("max_seconds"))

    async def render(batch: list[Event]) -> list[bytes]:
        txns = await ctx.services.transactions.of_events([e.id for e in batch])
        return [sse_message(e.id, event_detail_json(e, txns[e.id])) for e in batch]

    key = bearer_token(req)

    async def still_allowed() -> bool:
        try:
            await ctx.services.keys.authenticate(key)
        except Unauthenticated:
            return False
        return True

    return StreamResponse(
        200,
        media_type="text/event-stream",
        headers=dict(SSE_HEADERS),
        chunks=event_stream(ctx, ctx.principal, feed, since_id, render, still_allowed, max_seconds),
        receive=req.receive,
    )
