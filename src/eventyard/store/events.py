"""SQL for events and idempotency keys.

`insert_events` is the body of the ingest transaction: it claims each idempotency key with
`INSERT ... ON CONFLICT DO NOTHING` (so two processes racing on one key resolve inside the
database), and inserts the accepted events in one `executemany`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import orjson

from eventyard.domain.models import Environment, Event, EventDraft, Trigger
from eventyard.ids import new_id
from eventyard.store.consumers import consumers_taking_events
from eventyard.store.db import Db
from eventyard.store.event_rows import EVENT_COLUMNS, event_from_row
from eventyard.store.transactions import create_for_events
from eventyard.store.triggers import insert_trigger

NO_TRANSACTION = "none"
# As `consumer_state`: events the consumer has not taken up, i.e. no transaction or one still
# `pending` (a new event makes a pending transaction for every consumer at once).
NOT_TAKEN_UP = "not-taken-up"


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Stored:
    outcome: Outcome
    event: Event | None  # None only for a conflict whose original has since been erased
    original_id: str | None = None


@dataclass(frozen=True)
class Written:
    results: list[Stored]
    transactions_created: int


@dataclass(frozen=True)
class NewEvent:
    """A validated draft with its receipt time; `insert_events` gives it its final id."""

    id: str
    draft: EventDraft
    received_at: int

    def as_event(self, project_id: str, environment: Environment) -> Event:
        d = self.draft
        return Event(
            id=self.id,
            project_id=project_id,
            environment=environment,
            trigger=d.trigger,
            user_id=d.user_id,
            payload=orjson.loads(d.payload_json),
            timestamp=d.timestamp if d.timestamp is not None else self.received_at,
            received_at=self.received_at,
            idempotency_key=d.idempotency_key,
            source=d.source,
            expires_at=d.expires_at,
        )


def insert_events(
    db: Db,
    project_id: str,
    environment: Environment,
    items: Sequence[NewEvent],
    *,
    new_triggers: Sequence[Trigger],
    idempotency_window_us: int,
    by: str,
    first_delay_us: int = 0,
) -> Written:
    """Store `items` in order, honouring idempotency keys; one result per item.

    Every consumer taking events gets a pending transaction for each new event that matches
    its filter, in this same database transaction: a committed event never lacks one.
    """
    for trigger in new_triggers:
        insert_trigger(db, trigger)
    results: list[Stored] = []
    rows: list[tuple[Any, ...]] = []
    accepted: dict[str, Event] = {}  # not yet inserted: a repeat in the same group finds it here
    env = environment.value
    for drafted in items:
        # The id is made here, in the writer, just before the commit that makes it visible:
        # the live feed follows ids (their milliseconds), so an id made when the request
        # arrived could, behind a long queue, commit after the feed had moved past it.
        item = replace(drafted, id=new_id("evt"))
        d = item.draft
        if d.idempotency_key is not None:
            claim = _claim_idempotency_key(db, project_id, env, item, idempotency_window_us)
            if claim is not None:
                outcome, original_id = claim
                original = accepted.get(original_id) or get_event(
                    db, project_id, environment, original_id
                )
                results.append(Stored(outcome, original, original_id))
                continue
        timestamp = d.timestamp if d.timestamp is not None else item.received_at
        rows.append(
            (
                item.id,
                project_id,
                env,
                d.trigger,
                d.user_id,
                d.payload_json.decode(),
                timestamp,
                item.received_at,
                d.idempotency_key,
                d.source,
                d.expires_at,
            )
        )
        event = item.as_event(project_id, environment)
        accepted[event.id] = event
        results.append(Stored(Outcome.ACCEPTED, event))
    created = 0
    if rows:
        db.executemany(
            f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        consumers = consumers_taking_events(db, project_id, environment)
        if consumers:
            now = items[0].received_at
            created = create_for_events(
                db,
                project_id,
                environment,
                [(r[0], r[3]) for r in rows],
                consumers,
                now,
                by,
                default_first_delay_us=first_delay_us,
            )
            if created and db.backend == "postgres":
                db.execute("NOTIFY eventyard_transactions")  # delivered at commit
    return Written(results, created)


def _claim_idempotency_key(
    db: Db, project_id: str, env: str, item: NewEvent, window_us: int
) -> tuple[Outcome, str] | None:
    """Claim the item's key: None when claimed, else (duplicate or conflict, original id)."""
    d = item.draft
    expires = item.received_at + window_us
    cursor = db.execute(
        "INSERT INTO idempotency_keys (project_id, environment, key, event_id, body_hash,"
        " expires_at) VALUES (?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (project_id, environment, key) DO NOTHING",
        (project_id, env, d.idempotency_key, item.id, d.body_hash, expires),
    )
    if cursor.rowcount == 1:
        return None
    row = db.one(
        "SELECT event_id, body_hash, expires_at FROM idempotency_keys"
        " WHERE project_id = ? AND environment = ? AND key = ?",
        (project_id, env, d.idempotency_key),
    )
    assert row is not None  # the conflicting row exists: we just collided with it
    if row["expires_at"] <= item.received_at:
        # The earlier use is outside the window: the key is free again.
        db.execute(
            "UPDATE idempotency_keys SET event_id = ?, body_hash = ?, expires_at = ?"
            " WHERE project_id = ? AND environment = ? AND key = ?",
            (item.id, d.body_hash, expires, project_id, env, d.idempotency_key),
        )
        return None
    if row["body_hash"] == d.body_hash or _same_event_retimed(db, d, row):
        return Outcome.DUPLICATE, row["event_id"]
    return Outcome.CONFLICT, row["event_id"]


def _same_event_retimed(db: Db, d: EventDraft, row: Any) -> bool:
    """The first request gave no timestamp and this one gives the time the server stored for
    it (an exported event sent back): the same event, not a reuse of its key."""
    if d.untimed_hash is None or d.untimed_hash != row["body_hash"]:
        return False
    first = db.one("SELECT timestamp FROM events WHERE id = ?", (row["event_id"],))
    return first is not None and first["timestamp"] == d.timestamp


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


def _where(
    project_id: str, environment: Environment, q: EventQuery, now: int
) -> tuple[str, list[Any]]:
    where = ["project_id = ?", "environment = ?", "(expires_at IS NULL OR expires_at > ?)"]
    params: list[Any] = [project_id, environment.value, now]
    if q.trigger is not None:
        where.append("trigger_id = ?")
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


def query_events(
    db: Db, project_id: str, environment: Environment, q: EventQuery, now: int
) -> list[Event]:
    """Events newest first by event time (then id), `limit` of them, after the cursor."""
    where, params = _where(project_id, environment, q, now)
    sql = (
        f"SELECT {EVENT_COLUMNS} FROM events WHERE {where} ORDER BY timestamp DESC, id DESC LIMIT ?"
    )
    params.append(q.limit)
    if q.offset:
        sql += " OFFSET ?"
        params.append(q.offset)
    return [event_from_row(r) for r in db.all(sql, params)]


def count_matching(
    db: Db, project_id: str, environment: Environment, q: EventQuery, now: int
) -> int:
    """How many events match the filters of `q` (its paging aside)."""
    where, params = _where(project_id, environment, q, now)
    return int(db.scalar(f"SELECT COUNT(*) AS n FROM events WHERE {where}", params))


def delete_user_events(db: Db, project_id: str, environment: Environment, user_id: str) -> int:
    """Erase a user's events, their transactions (with history and attempts) and the
    idempotency keys that point at them; return the number of events."""
    env = environment.value
    of_user = "SELECT id FROM events WHERE project_id = ? AND environment = ? AND user_id = ?"
    txns = f"SELECT id FROM transactions WHERE event_id IN ({of_user})"
    for table in ("transaction_history", "delivery_attempts"):
        db.execute(
            f"DELETE FROM {table} WHERE transaction_id IN ({txns})", (project_id, env, user_id)
        )
    db.execute(
        f"DELETE FROM transactions WHERE event_id IN ({of_user})", (project_id, env, user_id)
    )
    db.execute(
        "DELETE FROM idempotency_keys WHERE event_id IN"
        " (SELECT id FROM events WHERE project_id = ? AND environment = ? AND user_id = ?)",
        (project_id, env, user_id),
    )
    cursor = db.execute(
        "DELETE FROM events WHERE project_id = ? AND environment = ? AND user_id = ?",
        (project_id, env, user_id),
    )
    return cursor.rowcount


def count_events(db: Db, project_id: str, environment: Environment, trigger_id: str) -> int:
    return int(
        db.scalar(
            "SELECT COUNT(*) AS n FROM events"
            " WHERE project_id = ? AND environment = ? AND trigger_id = ?",
            (project_id, environment.value, trigger_id),
        )
    )


def trigger_activity(
    db: Db, project_id: str, environment: Environment
) -> dict[str, tuple[int, int]]:
    """Per trigger id: how many events it has and the time of the latest (event time)."""
    rows = db.all(
        "SELECT trigger_id, COUNT(*) AS n, MAX(timestamp) AS last FROM events"
        " WHERE project_id = ? AND environment = ? GROUP BY trigger_id",
        (project_id, environment.value),
    )
    return {r["trigger_id"]: (int(r["n"]), int(r["last"])) for r in rows}
