"""SQL for erasing an end user, a batch of events at a time, and for the `erasures` record.

A batch takes up to `limit` of the user's events (hidden ones too: expired by a TTL or past
retention but not yet removed from disk) and deletes, in one transaction, everything that
holds their data: the events' transactions (with a pull consumer's stored `output`), those
transactions' history and delivery attempts (a receiver may echo the payload in its response
excerpt), the idempotency keys that point at the events, and the events themselves — through
the delete retention uses too (`store.retention.delete_events`, which also says why
transactions go first). The caller (services/users.py) runs batches until one comes back
short, each from where the last ended, so the single writer is never held for long, and
ingest goes on between batches.

The `erasures` row holds counts and times, never the user id or any erased value: see the
migration `0010_erasures.sql`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from eventyard.domain.models import Environment
from eventyard.store.db import Db, Row
from eventyard.store.retention import REMOVED_KINDS, delete_events

# Every kind of row an erasure removes, in the order the receipt lists them: the same rows
# retention removes, through the same delete.
ERASED_KINDS = REMOVED_KINDS

# Where a batch ends in the user's index: (event time, id) of its last event.
Position = tuple[int, str]


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


def erase_user_batch(
    db: Db,
    project_id: str,
    environment: Environment,
    user_id: str,
    limit: int,
    after: Position | None = None,
) -> tuple[dict[str, int], Position | None]:
    """Erase up to `limit` of the user's events, those past `after` in the user's index
    (event time, then id), and every row that hangs off them; return how many rows of each
    kind went and where the batch ended (the next batch's `after`). Fewer than `limit`
    events means none are left.

    Each batch reads on from where the last one ended, in the order of the index
    (`events_by_user`), so it reads its own `limit` entries and sorts nothing, however many
    events the user has (and on PostgreSQL it skips the entries earlier batches deleted,
    which stay in the index until vacuum). An event that arrives meanwhile with an event
    time before `after` is left: the receipt covers events stored before the erasure."""
    sql = (
        "SELECT id, timestamp FROM events WHERE project_id = ? AND environment = ? AND user_id = ?"
    )
    params: list[Any] = [project_id, environment.value, user_id]
    if after is not None:
        sql += " AND (timestamp, id) > (?, ?)"
        params += after
    rows = db.all(sql + " ORDER BY timestamp, id LIMIT ?", [*params, limit])
    if not rows:
        return no_counts(), after
    counts = delete_events(db, [r["id"] for r in rows])
    return counts, (int(rows[-1]["timestamp"]), rows[-1]["id"])


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
