"""SQL for removing what has expired: events past their TTL or their project's retention
(with the transactions, history and attempts that hang off them), and idempotency keys past
their window.

Reads already hide all of it (store/events.py); this only frees the disk. Every function
touches at most `limit` rows, so housekeeping (services/housekeeping.py) can find a batch on
a reader connection and delete it in a short write of its own: ingest's writes interleave
with the batches instead of waiting behind one long delete.
"""

from __future__ import annotations

from collections.abc import Sequence

from eventyard.store.db import Db

# Every kind of row a pass removes, in the order its report lists them.
REMOVED_KINDS = (
    "events",
    "transactions",
    "transaction_history",
    "delivery_attempts",
    "idempotency_keys",
)


def expired_event_ids(db: Db, now: int, limit: int) -> list[str]:
    """Up to `limit` events whose TTL has passed (the partial index `events_expiring`)."""
    rows = db.all(
        "SELECT id FROM events WHERE expires_at IS NOT NULL AND expires_at <= ? LIMIT ?",
        (now, limit),
    )
    return [r["id"] for r in rows]


def event_ids_before(db: Db, project_id: str, kept_from_id: str, limit: int) -> list[str]:
    """Up to `limit` of the project's events received before its retention keeps (ids below
    `kept_from_id`; on PostgreSQL only the old partitions are read)."""
    rows = db.all(
        "SELECT id FROM events WHERE project_id = ? AND id < ? LIMIT ?",
        (project_id, kept_from_id, limit),
    )
    return [r["id"] for r in rows]


def _marks(values: Sequence[object]) -> str:
    return ", ".join("?" for _ in values)


def delete_events(db: Db, event_ids: Sequence[str]) -> dict[str, int]:
    """Delete these events with their transactions, the transactions' history and delivery
    attempts, and the idempotency keys naming them; rows removed by kind. Transactions go
    first with `RETURNING id`, so an attempt a worker records meanwhile is either deleted
    here or finds its transaction gone (see store/erasures.py). At most a few hundred ids."""
    counts = dict.fromkeys(REMOVED_KINDS, 0)
    if not event_ids:
        return counts
    marks = _marks(event_ids)
    txn_ids = [
        r["id"]
        for r in db.all(
            f"DELETE FROM transactions WHERE event_id IN ({marks}) RETURNING id", event_ids
        )
    ]
    counts["transactions"] = len(txn_ids)
    if txn_ids:
        for table in ("transaction_history", "delivery_attempts"):
            counts[table] = db.execute(
                f"DELETE FROM {table} WHERE transaction_id IN ({_marks(txn_ids)})", txn_ids
            ).rowcount
    counts["idempotency_keys"] = db.execute(
        f"DELETE FROM idempotency_keys WHERE event_id IN ({marks})", event_ids
    ).rowcount
    counts["events"] = db.execute(f"DELETE FROM events WHERE id IN ({marks})", event_ids).rowcount
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


def delete_keys_of_events_before(db: Db, kept_from_id: str, limit: int) -> int:
    """Delete up to `limit` idempotency keys naming events below `kept_from_id`: before the
    partitions holding those events are dropped, so no key outlives its event (index
    `idempotency_keys_event`)."""
    return db.execute(
        "DELETE FROM idempotency_keys WHERE (project_id, environment, key) IN"
        " (SELECT project_id, environment, key FROM idempotency_keys"
        " WHERE event_id < ? LIMIT ?)",
        (kept_from_id, limit),
    ).rowcount
