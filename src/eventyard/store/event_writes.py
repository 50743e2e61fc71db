"""SQL for storing events: the body of the ingest transaction.

`insert_events` claims each idempotency key with `INSERT ... ON CONFLICT DO NOTHING` (so two
processes racing on one key resolve inside the database), inserts the accepted events, and
creates every consumer's pending transactions in the same database transaction.
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
from eventyard.store.event_rows import EVENT_COLUMNS
from eventyard.store.events import get_event
from eventyard.store.transactions import create_for_events
from eventyard.store.triggers import insert_trigger


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
