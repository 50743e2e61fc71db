"""SQL for the overview's numbers: events counted per time bucket and trigger, and the
deliveries that are failing.

Events are bucketed by their event time (`timestamp`), not by `received_at`: the
`events_by_time` index is on (project_id, environment, timestamp, id), so the window is one
index range scan, while `received_at` has no index and would read every event of the
project. The price is that an event sent with a backdated time (an import, a replay from a
client's queue) counts at the time it says it happened, not when it arrived.

Both queries group in the database; bucket numbers come from integer division of the
microsecond times, which SQLite and PostgreSQL (BIGINT) both truncate.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventyard.domain.models import Environment
from eventyard.store.db import Db


@dataclass(frozen=True)
class BucketCount:
    trigger: str
    bucket: int  # 0 is the bucket starting at `start`
    count: int


def event_counts(
    db: Db,
    project_id: str,
    environment: Environment,
    *,
    start: int,
    bucket_us: int,
    buckets: int,
    now: int,
    kept_from_id: str | None = None,
) -> list[BucketCount]:
    """Events per (trigger, bucket) with event time in [start, start + buckets * bucket_us).

    Expired events, and those past the project's retention (ids below `kept_from_id`), are
    left out, as they are from event listings.
    """
    end = start + buckets * bucket_us
    rows = db.all(
        "SELECT trigger_id, (timestamp - CAST(? AS BIGINT)) / CAST(? AS BIGINT) AS bucket,"
        " COUNT(*) AS n FROM events"
        " WHERE project_id = ? AND environment = ? AND timestamp >= ? AND timestamp < ?"
        " AND (expires_at IS NULL OR expires_at > ?) AND id >= ?"
        " GROUP BY trigger_id, bucket",
        (start, bucket_us, project_id, environment.value, start, end, now, kept_from_id or ""),
    )
    return [BucketCount(r["trigger_id"], int(r["bucket"]), int(r["n"])) for r in rows]


def failing_deliveries(
    db: Db, project_id: str, environment: Environment, since: int
) -> dict[str, int]:
    """Per consumer id: its transactions that failed at least once since `since`.

    A transaction counts once, whether it had one failed webhook attempt (an answer other
    than 2xx, a timeout or a connection error) or several, or was set to `failed` (retries
    exhausted, or a pull consumer reporting failure) in the window.
    """
    # Both halves start from the window (indexes delivery_attempts_at, transactions_failed).
    env = environment.value
    rows = db.all(
        "SELECT consumer_id, COUNT(*) AS n FROM transactions"
        " WHERE project_id = ? AND environment = ? AND id IN ("
        "SELECT transaction_id FROM delivery_attempts WHERE at >= ?"
        " AND (status_code IS NULL OR status_code < 200 OR status_code > 299)"
        " UNION SELECT id FROM transactions WHERE project_id = ? AND environment = ?"
        " AND state = 'failed' AND updated_at >= ?)"
        " GROUP BY consumer_id",
        (project_id, env, since, project_id, env, since),
    )
    return {r["consumer_id"]: int(r["n"]) for r in rows}
