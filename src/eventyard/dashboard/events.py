"""Events: the filtered list (with a Live mode), an event's page, and retrying a delivery.

The list reads pages with the same keyset cursor as `GET /v1/events`. Live mode is a
server-sent event stream of the same feed as `GET /v1/events/stream` (services/live.py),
carrying each new row's cells as plain strings: `live.js` puts them in the page with
`textContent` only, so a payload is always shown as text, never run.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import orjson

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, StreamResponse, redirect
from eventyard.api.v1.stream import SSE_HEADERS, event_stream, resume_id, sse_message
from eventyard.dashboard.web import (
    Pages,
    current_session,
    form_of,
    parse_utc,
    project_base,
    render,
)
from eventyard.domain.models import (
    TERMINAL_STATES,
    Consumer,
    ConsumerState,
    Event,
    Principal,
    Transaction,
    TxState,
)
from eventyard.errors import Conflict, InvalidCursor, NotFound
from eventyard.services.events import decode_cursor
from eventyard.services.live import FeedFilter
from eventyard.store.events import NO_TRANSACTION, EventQuery

routes = Pages()

PAGE_SIZE = 50
EXCERPT_CHARS = 140
FILTERS = ("trigger", "user_id", "since", "until", "source", "consumer", "state")
LIVE_FILTERS = {"trigger", "user_id", "source"}  # what the live feed can follow
STATES = [s.value for s in TxState] + [NO_TRANSACTION]
_NOTICES = {
    "retried": "The transaction is pending again: it is delivered at once.",
    "busy": "The transaction is already pending or processing; nothing was changed.",
}


def excerpt(payload: Any) -> str:
    text = orjson.dumps(payload).decode()
    return text if len(text) <= EXCERPT_CHARS else text[: EXCERPT_CHARS - 1] + "…"


def _time_filter(raw: str, name: str, errors: list[str]) -> int | None:
    """A `datetime-local` value (no zone: UTC) as epoch microseconds."""
    if not raw:
        return None
    try:
        return parse_utc(raw)
    except ValueError:
        errors.append(f"{name}: {raw[:40]!r} is not a date and time; use 2026-01-31T13:45.")
        return None


@dataclass
class Filters:
    values: dict[str, str]
    query: EventQuery
    errors: list[str] = field(default_factory=list)

    @property
    def live_ok(self) -> bool:
        """Whether Live can follow these filters: trigger, user and source only."""
        return not any(v for k, v in self.values.items() if k not in LIVE_FILTERS)

    def link(self, **changes: str | None) -> str:
        merged = {**self.values, **changes}
        return "?" + urlencode({k: v for k, v in merged.items() if v})


def read_filters(req: Request) -> tuple[Filters, str | None]:
    query = dict(req.query)
    values = {name: query.get(name, "").strip() for name in FILTERS}
    errors: list[str] = []
    since = _time_filter(values["since"], "From", errors)
    until = _time_filter(values["until"], "To", errors)
    cursor = query.get("cursor") or None
    before = None
    if cursor:
        try:
            before = decode_cursor(cursor)
        except InvalidCursor as exc:
            errors.append(exc.message)
            cursor = None
    state = values["state"]
    if state and state not in STATES:
        errors.append(f"State: {state[:40]!r} is not one of {', '.join(STATES)}.")
        state = ""
    event_query = EventQuery(
        trigger=values["trigger"] or None,
        user_id=values["user_id"] or None,
        since=since,
        until=until,
        source=values["source"] or None,
        before=before,
        limit=PAGE_SIZE,
        consumer=values["consumer"] or None,
        consumer_state=state or None,
    )
    return Filters(values, event_query, errors), cursor


def _states(
    transactions: list[Transaction], consumers: dict[str, Consumer]
) -> list[dict[str, str]]:
    return [
        {
            "consumer": consumers[t.consumer_id].name if t.consumer_id in consumers else "",
            "consumer_id": t.consumer_id,
            "state": t.state,
        }
        for t in transactions
    ]


async def _consumers(ctx: Context, principal: Principal) -> dict[str, Consumer]:
    return {c.id: c for c in await ctx.services.consumers.list_consumers(principal)}


@routes.page("GET", "/p/{project}/{env}/events", summary="The events list")
async def event_list(req: Request, ctx: Context) -> Response:
    principal = ctx.principal
    filters, cursor = read_filters(req)
    if filters.query.consumer is not None:
        await ctx.services.consumers.get(principal, filters.query.consumer)  # 404 if not ours
    page = await ctx.services.events.list(principal, filters.query)
    txns = await ctx.services.transactions.of_events([e.id for e in page.events])
    consumers = await _consumers(ctx, principal)
    rows = [
        {"event": e, "excerpt": excerpt(e.payload), "states": _states(txns[e.id], consumers)}
        for e in page.events
    ]
    base = project_base(principal.project_id, principal.environment)
    live_query = {k: v for k, v in filters.values.items() if k in LIVE_FILTERS and v}
    return await render(
        req,
        ctx,
        "events.html",
        section="events",
        rows=rows,
        filters=filters.values,
        errors=filters.errors,
        triggers=await ctx.services.triggers.list(principal.project_id, include_archived=True),
        consumers=sorted(consumers.values(), key=lambda c: c.name),
        states=STATES,
        first_page=cursor is None,
        newest_link=filters.link(),
        older_link=filters.link(cursor=page.next_cursor) if page.next_cursor else None,
        live_ok=filters.live_ok and cursor is None,
        stream_url=f"{base}/events/stream" + ("?" + urlencode(live_query) if live_query else ""),
    )


def live_row(
    event: Event, base: str, transactions: list[Transaction], consumers: dict[str, Consumer]
) -> dict[str, Any]:
    """One row of the list, as the strings `live.js` writes into its cells."""
    moment = dt.datetime.fromtimestamp(event.timestamp / 1_000_000, tz=dt.UTC)
    return {
        "id": event.id,
        "url": f"{base}/events/{event.id}",
        "time": moment.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "iso": moment.isoformat(timespec="seconds"),
        "trigger": event.trigger,
        "trigger_url": f"{base}/triggers/{event.trigger}",
        "user_id": event.user_id,
        "source": event.source,
        "excerpt": excerpt(event.payload),
        "test": event.environment.value == "test",
        "states": _states(transactions, consumers),
    }


@routes.page("GET", "/p/{project}/{env}/events/stream", summary="New events, live (SSE)")
async def event_list_stream(req: Request, ctx: Context) -> Response:
    principal = ctx.principal
    query = dict(req.query)
    feed = FeedFilter(
        trigger=query.get("trigger") or None,
        user_id=query.get("user_id") or None,
        source=query.get("source") or None,
    )
    since_id = resume_id(req, None)
    base = project_base(principal.project_id, principal.environment)

    async def render_rows(batch: list[Event]) -> list[bytes]:
        txns = await ctx.services.transactions.of_events([e.id for e in batch])
        consumers = await _consumers(ctx, principal)
        return [sse_message(e.id, live_row(e, base, txns[e.id], consumers), "row") for e in batch]

    found = await current_session(req, ctx)
    token = found[0] if found else None

    async def still_allowed() -> bool:
        return await ctx.services.accounts.session(token) is not None

    return StreamResponse(
        200,
        media_type="text/event-stream",
        headers=dict(SSE_HEADERS),
        chunks=event_stream(ctx, principal, feed, since_id, render_rows, still_allowed),
        receive=req.receive,
    )


@routes.page("GET", "/p/{project}/{env}/events/{event_id}", summary="An event's page")
async def event_page(req: Request, ctx: Context) -> Response:
    principal = ctx.principal
    event = await ctx.services.events.get(principal, req.path_params["event_id"])
    transactions = await ctx.services.transactions.of_event(event.id)
    consumers = await _consumers(ctx, principal)
    # History names its actor by key id; the page shows whose key that is.
    keys = await ctx.services.keys.list(principal.project_id)
    actors = {k.id: f"key “{k.name}” ({k.prefix}…)" for k in keys}
    query = dict(req.query)
    return await render(
        req,
        ctx,
        "event.html",
        actors=actors,
        section="events",
        event=event,
        transactions=transactions,
        consumers=consumers,
        terminal=TERMINAL_STATES,
        disabled=ConsumerState.DISABLED.value,
        retryable=lambda t: t.state not in (TxState.PENDING, TxState.PROCESSING),
        notice=_NOTICES.get(query.get("notice", "")),
    )


@routes.page("POST", "/p/{project}/{env}/events/{event_id}/retry", summary="Retry a delivery")
async def retry_transaction(req: Request, ctx: Context) -> Response:
    principal = ctx.principal
    event_id = req.path_params["event_id"]
    form = await form_of(req)
    txn = await ctx.services.transactions.get(principal, form.get("transaction"))
    if txn.event_id != event_id:
        raise NotFound(f"The event {event_id!r} has no transaction {txn.id!r}.")
    assert ctx.session is not None
    notice = "retried"
    try:
        await ctx.services.transactions.retry(principal, txn.id, by=ctx.session.user.email)
    except Conflict:
        notice = "busy"
    base = project_base(principal.project_id, principal.environment)
    return redirect(f"{base}/events/{event_id}?notice={notice}#txn-{txn.id}")
