"""SQL for storing events: the body of the ingest transaction, set-based.

`store_event_writes` stores the events of many requests at once — the writer merges the
concurrent ingest requests of a commit group into one call (`GroupCommitWriter.write_merged`)
— with a fixed number of statements per group rather than per request:

1. one multi-row `INSERT ... ON CONFLICT DO NOTHING RETURNING` claims every new idempotency
   key (two processes racing on one key still resolve inside the database); a key that was
   taken already, or repeats within the group, is settled one by one against its owner;
2. one multi-row insert stores the accepted events;
3. one insert per table makes every consumer's pending transactions and their history, in
   this same database transaction: a committed event never lacks one.

The answer is per request and per item, in order, as if the requests had run one by one.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import orjson

from eventyard.domain.models import Consumer, Environment, Event, EventDraft, Trigger
from eventyard.ids import new_id
from eventyard.store.commit_notices import EVENTS_CHANNEL, TRANSACTIONS_CHANNEL, notify
from eventyard.store.consumers import consumers_taking_events
from eventyard.store.db import Cursor, Db
from eventyard.store.event_rows import EVENT_COLUMNS
from eventyard.store.events import get_event
from eventyard.store.transactions import create_for_events
from eventyard.store.triggers import insert_trigger

# SQLite: rows per multi-row statement, far below its limit of 32,766 bound values.
_CHUNK = 500
_EVENT_MARKS = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_KEY_MARKS = "(?, ?, ?, ?, ?, ?)"
# PostgreSQL: any number of rows as one array a column, `SELECT * FROM unnest(...)`: the
# statement's text never changes, so it is parsed and planned once (a multi-row VALUES list
# is new text for every size of group, and costs the driver a scan of every placeholder).
_EVENT_TYPES = ("text",) * 6 + ("bigint", "bigint", "text", "text", "bigint")
_KEY_TYPES = ("text",) * 5 + ("bigint",)


def _unnest(types: Sequence[str]) -> str:
    return "SELECT * FROM unnest(" + ", ".join(f"?::{t}[]" for t in types) + ")"


def _columns(rows: Sequence[Sequence[Any]], width: int) -> list[list[Any]]:
    """Rows turned into one list a column, for `_unnest`."""
    return [[row[i] for row in rows] for i in range(width)]


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    CONFLICT = "conflict"


# The write path's own records are plain slotted dataclasses, not frozen ones: a frozen
# dataclass sets each field through `object.__setattr__`, several times slower, and these are
# made for every event.
@dataclass(slots=True)
class Stored:
    outcome: Outcome
    event: Event | None  # None only for a conflict whose original has since been erased
    original_id: str | None = None


@dataclass(slots=True)
class Written:
    results: list[Stored]
    transactions_created: int


@dataclass(slots=True)
class NewEvent:
    """A validated draft with its receipt time; the writer gives it its id.

    `payload` is the draft's payload already parsed, when the caller has it, so the stored
    event need not parse `payload_json` again.
    """

    draft: EventDraft
    received_at: int
    payload: dict[str, Any] | None = None


@dataclass(slots=True)
class EventWrite:
    """One request's events, as one argument of `store_event_writes`."""

    project_id: str
    environment: Environment
    items: Sequence[NewEvent]
    new_triggers: Sequence[Trigger] = ()
    idempotency_window_us: int = 0
    by: str = ""  # the actor named in the transactions' history (the key's id)
    first_delay_us: int = 0  # a webhook consumer's first attempt, without its own schedule


@dataclass(slots=True)
class _Item:
    """One event on its way in: its id, and once decided, its result."""

    write: EventWrite
    new: NewEvent
    id: str
    result: Stored | None = None

    def key_row(self) -> tuple[Any, ...]:
        d = self.new.draft
        expires = self.new.received_at + self.write.idempotency_window_us
        env = self.write.environment.value
        return (self.write.project_id, env, d.idempotency_key, self.id, d.body_hash, expires)

    def event_row(self) -> tuple[Any, ...]:
        d, received = self.new.draft, self.new.received_at
        return (
            self.id,
            self.write.project_id,
            self.write.environment.value,
            d.trigger,
            d.user_id,
            d.payload_json.decode(),
            d.timestamp if d.timestamp is not None else received,
            received,
            d.idempotency_key,
            d.source,
            d.expires_at,
        )

    def event(self) -> Event:
        d, received = self.new.draft, self.new.received_at
        payload = self.new.payload if self.new.payload is not None else orjson.loads(d.payload_json)
        return Event(
            id=self.id,
            project_id=self.write.project_id,
            environment=self.write.environment,
            trigger=d.trigger,
            user_id=d.user_id,
            payload=payload,
            timestamp=d.timestamp if d.timestamp is not None else received,
            received_at=received,
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
    """Store one request's `items` in order, honouring idempotency keys."""
    write = EventWrite(
        project_id, environment, items, new_triggers, idempotency_window_us, by, first_delay_us
    )
    return store_event_writes(db, [write])[0]


def store_event_writes(db: Db, writes: list[EventWrite]) -> list[Written]:
    """Store the events of every write, in order; one `Written` per write."""
    for write in writes:
        for trigger in write.new_triggers:
            insert_trigger(db, trigger)
    # The ids are made here, in the writer, just before the commit that makes them visible:
    # the live feed follows ids (their milliseconds), so an id made when the request arrived
    # could, behind a long queue, commit after the feed had moved past it.
    items = [_Item(w, new, new_id("evt")) for w in writes for new in w.items]
    # On PostgreSQL: the key claims and the consumer lists in one round trip...
    with db.pipeline():
        claims = _claim_keys(db, items)
        consumers = {
            (w.project_id, w.environment): consumers_taking_events(db, w.project_id, w.environment)
            for w in writes
        }
        claimed = {r["event_id"] for cursor in claims for r in cursor.fetchall()}
    _settle_held_keys(db, items, claimed)
    accepted: list[_Item] = []
    by_id: dict[str, Event] = {}
    for item in items:  # in order: a repeat's owner is decided before the repeat
        if item.result is _REPEAT:
            item.result = _claim_one(db, item, by_id)
        if item.result is None:
            event = item.event()
            by_id[item.id] = event
            item.result = Stored(Outcome.ACCEPTED, event)
            accepted.append(item)
    # ...and the events and their transactions in another (the wake-ups go with a commit).
    with db.pipeline():
        if db.backend == "sqlite":
            # One prepared statement for any number of rows: no round trips to save.
            db.executemany(
                f"INSERT INTO events ({EVENT_COLUMNS}) VALUES {_EVENT_MARKS}",
                [item.event_row() for item in accepted],
            )
        elif accepted:
            rows = [item.event_row() for item in accepted]
            db.execute(
                f"INSERT INTO events ({EVENT_COLUMNS}) {_unnest(_EVENT_TYPES)}",
                _columns(rows, len(_EVENT_TYPES)),
            )
        created = _create_transactions(db, accepted, consumers)
        if accepted and db.backend == "postgres":
            # Other processes' workers, and their live feeds (the lowest id this commit
            # makes visible); the writer sends them for many commits at once.
            if created:
                notify(db, TRANSACTIONS_CHANNEL)
            notify(db, EVENTS_CHANNEL, accepted[0].id)
    out: list[Written] = []
    start = 0
    for write in writes:
        mine = items[start : start + len(write.items)]
        start += len(write.items)
        results = [item.result for item in mine if item.result is not None]
        out.append(Written(results, sum(created.get(item.id, 0) for item in mine)))
    return out


def _claim_keys(db: Db, items: list[_Item]) -> list[Cursor]:
    """Claim each new key, in one statement per chunk; their cursors return the event ids
    that got their key. A later item with a key an earlier one of the group claims is
    marked a repeat, settled in order once the first is decided."""
    first: set[tuple[str, str, str]] = set()
    claiming: list[_Item] = []
    for item in items:
        key = item.new.draft.idempotency_key
        if key is None:
            continue
        owner = (item.write.project_id, item.write.environment.value, key)
        if owner in first:
            item.result = _REPEAT
        else:
            first.add(owner)
            claiming.append(item)
    head = (
        "INSERT INTO idempotency_keys (project_id, environment, key, event_id, body_hash,"
        " expires_at)"
    )
    tail = " ON CONFLICT (project_id, environment, key) DO NOTHING RETURNING event_id"
    if not claiming:
        return []
    if db.backend == "postgres":
        rows = [item.key_row() for item in claiming]
        return [db.execute(f"{head} {_unnest(_KEY_TYPES)}{tail}", _columns(rows, len(_KEY_TYPES)))]
    cursors = []
    for chunk in _chunks(claiming):
        marks = ", ".join([_KEY_MARKS] * len(chunk))
        values = [v for item in chunk for v in item.key_row()]
        cursors.append(db.execute(f"{head} VALUES {marks}{tail}", values))
    return cursors


def _settle_held_keys(db: Db, items: list[_Item], claimed: set[str]) -> None:
    """Settle, one by one, the items whose key the database held already."""
    for item in items:
        if (
            item.result is None
            and item.new.draft.idempotency_key is not None
            and item.id not in claimed
        ):
            item.result = _claim_one(db, item, {})


# A marker result: this item repeats a key claimed earlier in the same group.
_REPEAT = Stored(Outcome.DUPLICATE, None, "repeat-in-group")


def _claim_one(db: Db, item: _Item, by_id: dict[str, Event]) -> Stored | None:
    """Settle one item against the key's current owner: None when it claims the key (the
    earlier use has expired), else a duplicate or conflict naming the original."""
    write, d = item.write, item.new.draft
    env = write.environment.value
    row = db.one(
        "SELECT event_id, body_hash, expires_at FROM idempotency_keys"
        " WHERE project_id = ? AND environment = ? AND key = ?",
        (write.project_id, env, d.idempotency_key),
    )
    assert row is not None  # the key is held: by the database or by this group
    if row["expires_at"] <= item.new.received_at:
        # The earlier use is outside the window: the key is free again — unless another
        # process reclaimed it since we read it (the update names the owner we read, and
        # finds no row if it changed): then settle against the new owner.
        cursor = db.execute(
            "UPDATE idempotency_keys SET event_id = ?, body_hash = ?, expires_at = ?"
            " WHERE project_id = ? AND environment = ? AND key = ? AND event_id = ?",
            (
                item.id,
                d.body_hash,
                item.new.received_at + write.idempotency_window_us,
                write.project_id,
                env,
                d.idempotency_key,
                row["event_id"],
            ),
        )
        if cursor.rowcount == 1:
            return None
        return _claim_one(db, item, by_id)
    original_id: str = row["event_id"]
    same = row["body_hash"] == d.body_hash or _same_event_retimed(db, d, row, by_id)
    original = by_id.get(original_id) or get_event(
        db, write.project_id, write.environment, original_id
    )
    return Stored(Outcome.DUPLICATE if same else Outcome.CONFLICT, original, original_id)


def _same_event_retimed(db: Db, d: EventDraft, row: Any, by_id: dict[str, Event]) -> bool:
    """The first request gave no timestamp and this one gives the time the server stored for
    it (an exported event sent back): the same event, not a reuse of its key."""
    if d.untimed_hash is None or d.untimed_hash != row["body_hash"]:
        return False
    first = by_id.get(row["event_id"])
    if first is not None:
        return first.timestamp == d.timestamp
    stored = db.one("SELECT timestamp FROM events WHERE id = ?", (row["event_id"],))
    return stored is not None and stored["timestamp"] == d.timestamp


def _create_transactions(
    db: Db,
    accepted: list[_Item],
    consumers_of: dict[tuple[str, Environment], list[Consumer]],
) -> dict[str, int]:
    """Every consumer's pending transactions for the accepted events; how many each event
    got, by event id (events that got none are left out)."""
    counts: dict[str, int] = {}
    groups: dict[tuple[str, Environment, str, int], list[_Item]] = {}
    for item in accepted:
        w = item.write
        groups.setdefault((w.project_id, w.environment, w.by, w.first_delay_us), []).append(item)
    for (project_id, environment, by, first_delay), group in groups.items():
        consumers = consumers_of[(project_id, environment)]
        if not consumers:
            continue
        pairs = [(item.id, item.new.draft.trigger) for item in group]
        create_for_events(
            db,
            project_id,
            environment,
            pairs,
            consumers,
            group[0].new.received_at,
            by,
            default_first_delay_us=first_delay,
            received=[item.new.received_at for item in group],  # each request's own time
        )
        for event_id, trigger in pairs:
            n = sum(1 for c in consumers if c.wants(trigger))
            if n:
                counts[event_id] = n
    return counts


def _chunks(items: list[_Item]) -> Iterator[list[_Item]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]
