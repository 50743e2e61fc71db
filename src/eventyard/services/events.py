"""Reading events: one by id, or pages of them with an opaque cursor.

The cursor is the (event time, id) of the last event on a page, base64url-encoded JSON; the
next page continues strictly below it, so pages never repeat or skip an event even as new
events arrive at the top.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from eventyard.clock import Clock
from eventyard.domain.models import Event, Principal, Project
from eventyard.domain.retention import kept_from_us
from eventyard.domain.timeparse import MAX_US, MIN_US
from eventyard.errors import EventNotFound, InvalidCursor
from eventyard.ids import first_id_at
from eventyard.store import Store
from eventyard.store import events as event_sql
from eventyard.store.event_rows import EVENT_COLUMNS
from eventyard.store.events import EventQuery

MAX_PAGE = 1000
DEFAULT_PAGE = 50
_CURSOR_ID = re.compile(r"^[A-Za-z0-9_]{1,64}\Z")  # an event id: no NUL for the database


def encode_cursor(event: Event) -> str:
    return cursor_at(event.timestamp, event.id)


def cursor_at(timestamp: int, event_id: str) -> str:
    """The cursor of the page that continues below the event at (timestamp, event_id)."""
    raw = orjson.dumps([timestamp, event_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value = orjson.loads(raw)
    except (binascii.Error, ValueError, orjson.JSONDecodeError):
        value = None
    if (
        isinstance(value, list)
        and len(value) == 2
        and isinstance(value[0], int)
        and not isinstance(value[0], bool)
        and MIN_US <= value[0] <= MAX_US
        and isinstance(value[1], str)
        and _CURSOR_ID.match(value[1])
    ):
        return value[0], value[1]
    raise InvalidCursor(
        f"The cursor {cursor[:64]!r} is not one this server gave out; "
        "pass the next_cursor of a previous page unchanged."
    )


@dataclass(frozen=True)
class Page:
    events: list[Event]
    next_cursor: str | None


@dataclass(frozen=True)
class RowPage:
    """A page of events as stored (sequences in `EVENT_COLUMNS` order), to answer as JSON."""

    rows: list[Sequence[Any]]
    next_cursor: str | None


_COLUMNS = [c.strip() for c in EVENT_COLUMNS.split(",")]
_TIMESTAMP, _ID = _COLUMNS.index("timestamp"), _COLUMNS.index("id")


def kept_from_id(project: Project, now_us: int) -> str | None:
    """The lowest event id the project's retention still shows (None: it keeps everything).
    Ids carry their receipt time, so retention is one bound on the id (domain/retention.py)."""
    kept = kept_from_us(project.retention_days, now_us)
    return None if kept is None else first_id_at(kept // 1000)


def visible(principal: Principal, query: EventQuery, now_us: int) -> EventQuery:
    """`query`, bounded to the events the project's retention still shows."""
    kept = kept_from_id(principal.project, now_us)
    return query if kept is None else replace(query, kept_from_id=kept)


class EventService:
    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock

    async def get(self, principal: Principal, event_id: str) -> Event:
        project_id, env = principal.project_id, principal.environment
        event = await self._store.read(
            lambda db: event_sql.get_event(db, project_id, env, event_id)
        )
        now = self._clock.now_us()
        kept = kept_from_id(principal.project, now)
        if (
            event is None
            or (event.expires_at is not None and event.expires_at <= now)
            or (kept is not None and event.id < kept)
        ):
            raise EventNotFound(f"No event {event_id!r} in this project and environment.")
        return event

    async def list(self, principal: Principal, query: EventQuery) -> Page:
        project_id, env = principal.project_id, principal.environment
        now = self._clock.now_us()
        # One more than asked tells whether another page exists.
        probe = replace(visible(principal, query, now), limit=query.limit + 1)
        events = await self._store.read(
            lambda db: event_sql.query_events(db, project_id, env, probe, now)
        )
        if len(events) <= query.limit:
            return Page(events, None)
        del events[query.limit :]
        return Page(events, encode_cursor(events[-1]))

    async def list_rows(self, principal: Principal, query: EventQuery) -> RowPage:
        """As `list`, the rows as stored: `GET /v1/events` writes them out without
        making `Event` objects first."""
        project_id, env = principal.project_id, principal.environment
        now = self._clock.now_us()
        # One more than asked tells whether another page exists.
        probe = replace(visible(principal, query, now), limit=query.limit + 1)
        rows = await self._store.read(
            lambda db: event_sql.query_event_rows(db, project_id, env, probe, now)
        )
        if len(rows) <= query.limit:
            return RowPage(rows, None)
        del rows[query.limit :]
        last = rows[-1]
        return RowPage(rows, cursor_at(last[_TIMESTAMP], last[_ID]))

    async def page(self, principal: Principal, query: EventQuery) -> tuple[Sequence[Event], int]:
        """A numbered page (`query.offset`, `query.limit`) and how many events match in all."""
        project_id, env = principal.project_id, principal.environment
        now = self._clock.now_us()
        query = visible(principal, query, now)
        return await self._store.read(
            lambda db: (
                event_sql.query_events(db, project_id, env, query, now),
                event_sql.count_matching(db, project_id, env, query, now),
            )
        )

    async def trigger_activity(self, principal: Principal) -> dict[str, tuple[int, int]]:
        """Per trigger id: its event count and latest event time, in this environment."""
        project_id, env = principal.project_id, principal.environment
        now = self._clock.now_us()
        kept = kept_from_id(principal.project, now)
        return await self._store.read(
            lambda db: event_sql.trigger_activity(db, project_id, env, now, kept)
        )

    async def count_for_trigger(self, principal: Principal, trigger_id: str) -> int:
        project_id, env = principal.project_id, principal.environment
        now = self._clock.now_us()
        kept = kept_from_id(principal.project, now)
        return await self._store.read(
            lambda db: event_sql.count_events(db, project_id, env, trigger_id, now, kept)
        )
