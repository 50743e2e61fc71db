"""SQL for erasing an end user, a batch of events at a time, and for the `erasures` record.

A batch takes up to `limit` of the user's events (hidden ones too: expired by a TTL or past
retention but not yet removed from disk) and deletes, in one transaction, everything that
holds their data: the events' transactions (with a pull consumer's stored `output`), those
transactions' history and delivery attempts (a receiver may echo the payload in its response
excerpt), the idempotency keys that point at the events, and the events themselves. The
caller (services/users.py) runs batches until one comes back short, so the single writer is
never held for long, and ingest goes on between batches.

Transactions are deleted first, with `RETURNING id`: on PostgreSQL that takes their row
locks, so a worker recording an attempt at that moment either committed before (and its
attempt is deleted below: each statement sees what was committed before it began) or finds
the transaction gone and records nothing. Deleting history and attempts first would leave
such an attempt behind.

The `erasures` row holds counts and times, never the user id or any erased value: see the
migration `0010_erasures.sql`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from eventyard.domain.models import Environment
from eventyard.store.db import Db, Row

# Every kind of row an erasure removes, in the order the receipt lists them.
ERASED_KINDS = (
    "events",
    "transactions",
    "transaction_history",
    "delivery_attempts",
    "idempotency_keys",
)
_CHUNK = 500  # ids per statement: well under either backend's limit on parameters


@dataclass(frozen=True)
class ErasureRecord:
    id: str
    project_id: str
    environment: Environment
    requested_by: str  # the API key's id
    started_at: int
    finished_at: int | None  # None: still running, or stopped half-way
    counts: dict[str, int]


def no_counts() -> dict[str, int]:
    return dict.fromkeys(ERASED_KINDS, 0)


def _marks(values: Sequence[Any]) -> str:
    return ", ".join("?" for _ in values)


def _chunks(values: Sequence[str]) -> Iterable[Sequence[str]]:
    for start in range(0, len(values), _CHUNK):
        yield values[start : start + _CHUNK]


def erase_user_batch(
    db: Db, project_id: str, environment: Environment, user_id: str, limit: int
) -> dict[str, int]:
    """Erase up to `limit` of the user's events and every row that hangs off them; return
    how many rows of each kind went. Fewer than `limit` events means none are left."""
    counts = no_counts()
    event_ids = [
        r["id"]
        for r in db.all(
            "SELECT id FROM events WHERE project_id = ? AND environment = ? AND user_id = ?"
            " ORDER BY id LIMIT ?",
            (project_id, environment.value, user_id, limit),
        )
    ]
    if not event_ids:
        return counts
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
            cursor = db.execute(
                f"DELETE FROM {table} WHERE transaction_id IN ({_marks(chunk)})", chunk
            )
            counts[table] += cursor.rowcount
    for chunk in _chunks(event_ids):
        cursor = db.execute(
            f"DELETE FROM idempotency_keys WHERE event_id IN ({_marks(chunk)})", chunk
        )
        counts["idempotency_keys"] += cursor.rowcount
        cursor = db.execute(f"DELETE FROM events WHERE id IN ({_marks(chunk)})", chunk)
        counts["events"] += cursor.rowcount
    return counts


def insert_erasure(db: Db, record: ErasureRecord) -> None:
    db.execute(
        "INSERT INTO erasures (id, project_id, environment, requested_by, started_at,"
        " finished_at, counts) VALUES (?, ?, ?, ?, ?, ?, ?)",
        (
            record.id,
            record.project_id,
            record.environment.value,
            record.requested_by,
            record.started_at,
            record.finished_at,
            orjson.dumps(record.counts).decode(),
        ),
    )


def update_erasure(
    db: Db, erasure_id: str, counts: dict[str, int], finished_at: int | None
) -> None:
    """Set the running totals (and, at the end, the finishing time) of an erasure."""
    db.execute(
        "UPDATE erasures SET counts = ?, finished_at = ? WHERE id = ?",
        (orjson.dumps(counts).decode(), finished_at, erasure_id),
    )


def _record(row: Row) -> ErasureRecord:
    return ErasureRecord(
        id=row["id"],
        project_id=row["project_id"],
        environment=Environment(row["environment"]),
        requested_by=row["requested_by"],
        started_at=int(row["started_at"]),
        finished_at=None if row["finished_at"] is None else int(row["finished_at"]),
        counts={**no_counts(), **orjson.loads(row["counts"])},
    )


def list_erasures(
    db: Db, project_id: str, environment: Environment, before_id: str | None, limit: int
) -> list[ErasureRecord]:
    """Newest first (ids sort by time), strictly before `before_id` when given."""
    sql = (
        "SELECT id, project_id, environment, requested_by, started_at, finished_at, counts"
        " FROM erasures WHERE project_id = ? AND environment = ?"
    )
    params: list[Any] = [project_id, environment.value]
    if before_id is not None:
        sql += " AND id < ?"
        params.append(before_id)
    rows = db.all(sql + " ORDER BY id DESC LIMIT ?", [*params, limit])
    return [_record(r) for r in rows]
