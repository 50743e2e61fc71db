"""SQL for reading events: listing with filters, counts.

Writing events is `event_writes.py`; erasing a user's, `erasures.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from psycopg.rows import tuple_row

from eventyard.domain.models import Environment, Event
from eventyard.store.db import Backend, Db, _to_pyformat
from eventyard.store.event_rows import EVENT_COLUMNS, event_from_row

NO_TRANSACTION = "none"
# As `consumer_state`: events the consumer has not taken up, i.e. no transaction or one still
# `pending` (a new event makes a pending transaction for every consumer at once).
NOT_TAKEN_UP = "not-taken-up"


def get_event(db: Db, project_id: str, environment: Environment, event_id: str) -> Event | None:
    row = db.one(
        f"SELECT {EVENT_COLUMNS} FROM events WHERE id = ? AND project_id = ? AND environment = ?",
        (event_id, project_id, environment.value),
    )
    return event_from_row(row) if row else None


@dataclass(frozen=True)
class EventQuery:
    """Filters for listing events. `NO_TRANSACTION` as `consumer_state` finds events the
    consumer has no transaction for yet; `NOT_TAKEN_UP` also those whose one is pending.
    A `consumer_state` without a `consumer` filters on any consumer's transactions."""

    trigger: str | None = None
    trigger_prefix: str | None = None  # trigger ids starting with this text
    user_id: str | None = None
    since: int | None = None  # inclusive, event time
    until: int | None = None  # exclusive, event time
    source: str | None = None
    before: tuple[int, str] | None = None  # keyset cursor: (timestamp, id) of the last row
    limit: int = 50
    offset: int = 0  # rows to skip (page-numbered APIs); keyset `before` is cheaper
    consumer: str | None = None  # with consumer_state: filter on that consumer's transaction
    consumer_state: str | None = None  # a state, NO_TRANSACTION or NOT_TAKEN_UP
    # The project's retention: events with lower ids (received before it) are gone.
    kept_from_id: str | None = None


def _where(
    project_id: str, environment: Environment, q: EventQuery, now: int, backend: Backend
) -> tuple[str, list[Any]]:
    where = ["project_id = ?", "environment = ?", "(expires_at IS NULL OR expires_at > ?)"]
    params: list[Any] = [project_id, environment.value, now]
    if q.kept_from_id is not None:
        # The id is the last column of every events index: checked in the index entry.
        where.append("id >= ?")
        params.append(q.kept_from_id)
    if q.trigger is not None:
        # With a user too, read the user's events (events_by_user) and check the trigger on
        # them: a user has few events next to a trigger's. PostgreSQL's statistics tell it
        # so; SQLite has none unless ANALYZE was run, and without them it would walk every
        # event of the trigger (300 ms on 1 M events). `+` keeps SQLite off that index.
        sqlite_user = backend == "sqlite" and q.user_id is not None
        where.append("+trigger_id = ?" if sqlite_user else "trigger_id = ?")
        params.append(q.trigger)
    if q.trigger_prefix is not None:
        where.append("substr(trigger_id, 1, ?) = ?")
        params.extend([len(q.trigger_prefix), q.trigger_prefix])
    if q.user_id is not None:
        where.append("user_id = ?")
        params.append(q.user_id)
    if q.source is not None:
        where.append("source = ?")
        params.append(q.source)
    if q.since is not None:
        where.append("timestamp >= ?")
        params.append(q.since)
    if q.until is not None:
        where.append("timestamp < ?")
        params.append(q.until)
    if q.before is not None:
        where.append("(timestamp, id) < (?, ?)")
        params.extend(q.before)
    if q.consumer is not None or q.consumer_state is not None:
        txn = "SELECT 1 FROM transactions t WHERE t.event_id = events.id"
        if q.consumer is not None:
            txn += " AND t.consumer_id = ?"
            params.append(q.consumer)
        if q.consumer_state == NO_TRANSACTION:
            where.append(f"NOT EXISTS ({txn})")
        elif q.consumer_state == NOT_TAKEN_UP:
            where.append(f"NOT EXISTS ({txn} AND t.state <> 'pending')")
        elif q.consumer_state is not None:
            where.append(f"EXISTS ({txn} AND t.state = ?)")
            params.append(q.consumer_state)
        else:
            where.append(f"EXISTS ({txn})")
    return " AND ".join(where), params


def event_query_sql(
    project_id: str, environment: Environment, q: EventQuery, now: int, backend: Backend
) -> tuple[str, list[Any]]:
    """The SELECT `query_events` runs, with `?` placeholders, and its parameters (the
    benchmark's direct-SQL ceiling runs exactly this)."""
    where, params = _where(project_id, environment, q, now, backend)
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY timestamp DESC, id DESC LIMIT ?"
    )
    params.append(q.limit)
    if q.offset:
        sql += " OFFSET ?"
        params.append(q.offset)
    return sql, params


def query_event_rows(
    db: Db, project_id: str, environment: Environment, q: EventQuery, now: int
) -> list[Sequence[Any]]:
    """As `query_events`, the rows as stored, each a sequence in `EVENT_COLUMNS` order: a
    page answered as JSON needs no `Event` objects, and building them was most of a page's
    cost. On PostgreSQL they are plain tuples; psycopg's dict rows cost a quarter of it."""
    sql, params = event_query_sql(project_id, environment, q, now, db.backend)
    if db.backend == "postgres":
        with db.conn.cursor(row_factory=tuple_row) as cursor:
            rows: list[Sequence[Any]] = cursor.execute(_to_pyformat(sql), params).fetchall()
            return rows
    rows = db.conn.execute(sql, params).fetchall()  # sqlite3.Row: a sequence, too
    return rows


def query_events(
    db: Db, project_id: str, environment: Environment, q: EventQuery, now: int
) -> list[Event]:
    """Events newest first by event time (then id), `limit` of them, after the cursor."""
    sql, params = event_query_sql(project_id, environment, q, now, db.backend)
    return [event_from_row(r) for r in db.all(sql, params)]


def count_matching(
    db: Db, project_id: str, environment: Environment, q: EventQuery, now: int
) -> int:
    """How many events match the filters of `q` (its paging aside)."""
    where, params = _where(project_id, environment, q, now, db.backend)
    return int(db.scalar(f"SELECT COUNT(*) AS n FROM events WHERE {where}", params))


def count_events(
    db: Db,
    project_id: str,
    environment: Environment,
    trigger_id: str,
    now: int,
    kept_from_id: str | None = None,
) -> int:
    """How many events the trigger has that are neither expired nor past retention."""
    kept = kept_from_id or ""
    n = int(
        db.scalar(
            "SELECT COUNT(*) AS n FROM events"
            " WHERE project_id = ? AND environment = ? AND trigger_id = ? AND id >= ?",
            (project_id, environment.value, trigger_id, kept),
        )
    )
    return n - _expired_counts(db, project_id, environment, now, kept).get(trigger_id, 0)


def trigger_activity(
    db: Db, project_id: str, environment: Environment, now: int, kept_from_id: str | None = None
) -> dict[str, tuple[int, int]]:
    """Per trigger id: how many events it has and the time of the latest (event time),
    leaving out events past retention and (in the counts) expired ones."""
    kept = kept_from_id or ""
    rows = db.all(
        "SELECT trigger_id, COUNT(*) AS n, MAX(timestamp) AS last FROM events"
        " WHERE project_id = ? AND environment = ? AND id >= ? GROUP BY trigger_id",
        (project_id, environment.value, kept),
    )
    expired = _expired_counts(db, project_id, environment, now, kept)
    activity = {
        r["trigger_id"]: (int(r["n"]) - expired.get(r["trigger_id"], 0), int(r["last"]))
        for r in rows
    }
    return {trigger: counted for trigger, counted in activity.items() if counted[0] > 0}


def _expired_counts(
    db: Db, project_id: str, environment: Environment, now: int, kept_from_id: str
) -> dict[str, int]:
    """Per trigger id: its events past their TTL that housekeeping has not removed yet.
    Counting them apart keeps the counts above on their covering indexes (an expiry check in
    the count would read every event's row); these are few and found by `events_expiring`."""
    rows = db.all(
        "SELECT trigger_id, COUNT(*) AS n FROM events"
        " WHERE expires_at IS NOT NULL AND expires_at <= ?"
        " AND project_id = ? AND environment = ? AND id >= ? GROUP BY trigger_id",
        (now, project_id, environment.value, kept_from_id),
    )
    return {r["trigger_id"]: int(r["n"]) for r in rows}
