"""SQL for removing what has expired: events past their TTL or their project's retention
(with the transactions, history and attempts that hang off them), and idempotency keys past
their window.

Reads already hide all of it (store/events.py); this only frees the disk. Every function
touches at most `limit` rows, so housekeeping (services/housekeeping.py) can find a batch on
a reader connection and delete it in a short write of its own: ingest's writes interleave
with the batches instead of waiting behind one long delete.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from eventyard.store.db import Db

# Every kind of row a pass removes, in the order its report lists them.
REMOVED_KINDS = (
    "events",
    "transactions",
    "transaction_history",
    "delivery_attempts",
    "idempotency_keys",
)
CHUNK = 500  # ids a statement: below PostgreSQL's 65,535 parameters and SQLite's 999 (old builds)


def expired_event_ids(db: Db, now: int, limit: int) -> list[str]:
    """Up to `limit` events whose TTL has passed (the partial index `events_expiring`)."""
    rows = db.all(
        "SELECT id FROM events WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?",
        (now, limit),
    )
    return [r["id"] for r in rows]


def event_ids_before(db: Db, project_id: str, kept_from_id: str, limit: int) -> list[str]:
    """Up to `limit` of the project's events received before its retention keeps (ids below
    `kept_from_id`; on PostgreSQL only the old partitions are read).

    On SQLite no index leads with (project_id, id), so the project's index is read whole,
    kept events included. To keep a pass with nothing to delete from doing that every time,
    the lowest id the project may still hold is remembered once a scan has come back short
    (`_clear_below`), and later scans read only the primary key from there up to the bound:
    the events that aged past it since. Event ids are made at receipt, so none appears below
    that id later (unless this machine's clock went back by more than the retention)."""
    key = _scan_key(db, project_id)
    floor = _clear_below.get(key) if key is not None else None
    if floor is None:
        rows = db.all(
            "SELECT id FROM events WHERE project_id = ? AND id < ? LIMIT ?",
            (project_id, kept_from_id, limit),
        )
    elif kept_from_id <= floor:
        return []  # the retention was lengthened: nothing of the project lies below it
    else:  # `+project_id`: the primary key's range, not the project's whole index
        rows = db.all(
            "SELECT id FROM events WHERE id >= ? AND id < ? AND +project_id = ? LIMIT ?",
            (floor, kept_from_id, project_id, limit),
        )
    found = [r["id"] for r in rows]
    if key is not None and len(found) < limit:  # the scan saw all there is below the bound
        _clear_below[key] = min(found) if found else kept_from_id
    return found


# SQLite only: (database file, project id) -> an id below which the project holds no event.
# Ids the batch just found stay at or above it, so a batch whose delete failed is found again.
_clear_below: dict[tuple[str, str], str] = {}


def _scan_key(db: Db, project_id: str) -> tuple[str, str] | None:
    if db.backend != "sqlite":
        return None
    files = {r["name"]: r["file"] for r in db.all("PRAGMA database_list")}
    main = files.get("main")
    return (main, project_id) if main else None  # an in-memory database: no memory of it


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


def _chunks(values: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]


def delete_events(db: Db, event_ids: Sequence[str]) -> dict[str, int]:
    """Delete these events with their transactions, the transactions' history and delivery
    attempts, and the idempotency keys naming them; rows removed by kind. Retention
    (housekeeping) and erasure (store/erasures.py) both delete through this.

    Ids go `CHUNK` to a statement, events' and transactions' alike, so no statement nears
    either backend's limit on parameters however many transactions an event has.
    Transactions go first with `RETURNING id`: on PostgreSQL that takes their row locks, so
    a worker recording an attempt at that moment either committed before (and its attempt
    is deleted below: each statement sees what was committed before it began) or finds the
    transaction gone and records nothing. Deleting history and attempts first would leave
    such an attempt behind."""
    counts = dict.fromkeys(REMOVED_KINDS, 0)
    txn_ids: list[str] = []
    for chunk in _chunks(event_ids):
        txn_ids += [
            r["id"]
            for r in db.all(
                f"DELETE FROM transactions WHERE event_id IN ({_marks(chunk)}) RETURNING id",
                chunk,
            )
        ]
    counts["transactions"] = len(txn_ids)
    for chunk in _chunks(txn_ids):
        for table in ("transaction_history", "delivery_attempts"):
            sql = f"DELETE FROM {table} WHERE transaction_id IN ({_marks(chunk)})"
            counts[table] += db.execute(sql, chunk).rowcount
    for chunk in _chunks(event_ids):
        marks = _marks(chunk)
        counts["idempotency_keys"] += db.execute(
            f"DELETE FROM idempotency_keys WHERE event_id IN ({marks})", chunk
        ).rowcount
        counts["events"] += db.execute(f"DELETE FROM events WHERE id IN ({marks})", chunk).rowcount
    return counts


def delete_expired_keys(db: Db, now: int, limit: int) -> int:
    """Delete up to `limit` idempotency keys past their window (index
    `idempotency_keys_expiry`); a key reused after its window is free again either way."""
    return db.execute(
        "DELETE FROM idempotency_keys WHERE (project_id, environment, key) IN"
        " (SELECT project_id, environment, key FROM idempotency_keys"
        " WHERE expires_at <= ? LIMIT ?)",
        (now, limit),
    ).rowcount
