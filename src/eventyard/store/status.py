"""What waits for each consumer, read for `/metrics` and `GET /v1/status`.

A consumer's *open* transactions are those not yet `finished` or `failed` (as on the
dashboard and in `GET /v1/stats`); of those, *in flight* are the ones a worker or a pull
consumer holds right now (a webhook delivery under lease, or `processing`), and *due* are the
pending ones whose time has come and that nobody holds. Each query reads the open
transactions only, through the partial index `transactions_open`, never the finished
history, so a scrape costs what the backlog holds rather than what the database holds.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventyard import ids
from eventyard.domain.models import Environment
from eventyard.store.db import Db

LAG_SAMPLE = 5000  # first attempts read at most a consumer, for the lag percentiles

_BACKLOG = (
    "SELECT consumer_id, COUNT(*) AS open,"
    " SUM(CASE WHEN state = 'processing' OR lease_expires_at > ? THEN 1 ELSE 0 END) AS in_flight,"
    " MIN(created_at) AS oldest,"
    " MIN(CASE WHEN state = 'pending' AND (lease_expires_at IS NULL OR lease_expires_at <= ?)"
    " AND next_attempt_at <= ? THEN next_attempt_at END) AS oldest_due"
    " FROM transactions WHERE {where} state NOT IN ('finished', 'failed')"
    " GROUP BY {plus}consumer_id"
)


@dataclass(frozen=True)
class Backlog:
    consumer_id: str
    open: int
    in_flight: int
    oldest_created_at: int  # µs: when the oldest open transaction was created
    oldest_due_at: int | None  # µs: when the longest-waiting due, unheld delivery fell due


def _backlogs(db: Db, sql: str, params: list[object]) -> dict[str, Backlog]:
    return {
        row["consumer_id"]: Backlog(
            row["consumer_id"],
            int(row["open"]),
            int(row["in_flight"] or 0),
            int(row["oldest"]),
            None if row["oldest_due"] is None else int(row["oldest_due"]),
        )
        for row in db.all(sql, params)
    }


def backlog_sql(db: Db, *, one_project: bool) -> str:
    where = "project_id = ? AND environment = ? AND" if one_project else ""
    # Unary `+` (SQLite only) keeps its planner from reading every transaction through
    # `transactions_due`, for the grouping's order, rather than the open ones alone.
    return _BACKLOG.format(where=where, plus="+" if db.backend == "sqlite" else "")


def all_backlogs(db: Db, now: int) -> dict[str, Backlog]:
    """Every consumer's backlog, of every project (for `/metrics`): one grouped query."""
    return _backlogs(db, backlog_sql(db, one_project=False), [now, now, now])


def consumer_ids(db: Db) -> list[str]:
    """Every consumer not deleted, of every project: each gets its series on `/metrics`,
    an idle one with zeros, so a dashboard shows 0 rather than a gap."""
    return [r["id"] for r in db.all("SELECT id FROM consumers WHERE deleted_at IS NULL")]


def project_backlogs(
    db: Db, project_id: str, environment: Environment, now: int
) -> dict[str, Backlog]:
    """The backlog of each consumer of one project and environment."""
    sql = backlog_sql(db, one_project=True)
    return _backlogs(db, sql, [now, now, now, project_id, environment.value])


@dataclass(frozen=True)
class OldestOpen:
    transaction_id: str
    event_id: str
    state: str
    created_at: int


def oldest_open(
    db: Db, project_id: str, environment: Environment, consumer_id: str
) -> OldestOpen | None:
    """The consumer's oldest open transaction: one step down `transactions_open`."""
    row = db.one(
        "SELECT id, event_id, state, created_at FROM transactions"
        " WHERE project_id = ? AND environment = ? AND consumer_id = ?"
        " AND state NOT IN ('finished', 'failed') ORDER BY created_at LIMIT 1",
        (project_id, environment.value, consumer_id),
    )
    if row is None:
        return None
    return OldestOpen(row["id"], row["event_id"], row["state"], int(row["created_at"]))


def first_attempts_sql(db: Db) -> str:
    """One consumer's first-attempt lags (µs), newest event first; parameters: the consumer,
    the lowest event id, the lowest transaction id, then `since` twice (the transaction's
    last change, the attempt)."""
    # Unary `+` (SQLite only) keeps its planner from starting at the window's attempts
    # (delivery_attempts_at), which are every project's.
    plus = "+" if db.backend == "sqlite" else ""
    return (
        "SELECT a.at - t.created_at AS lag"
        " FROM transactions t JOIN delivery_attempts a ON a.transaction_id = t.id"
        " WHERE t.consumer_id = ? AND t.event_id >= ? AND a.transaction_id >= ?"
        f" AND t.updated_at >= ? AND a.attempt = 1 AND {plus}a.at >= ?"
        f" ORDER BY t.event_id DESC LIMIT {LAG_SAMPLE}"
    )


def first_attempt_lags(
    db: Db, consumer_ids: list[str], since: int, events_from_ms: int
) -> dict[str, list[int]]:
    """Per consumer, µs from each transaction's creation to the end of its first webhook
    attempt, for first attempts made since `since` (µs) to transactions of events received
    from `events_from_ms` on: the newest LAG_SAMPLE at most, newest event first.

    Each consumer's walk starts from its own transactions (their `(consumer_id, event_id)`
    key, down to the events' floor) and reads a transaction's attempts by its id (the
    attempts' key), so its cost follows what that consumer received since the floor, not
    what every project delivered. A transaction's id carries its event's millisecond (or,
    made before 0008, its own later one), so the same floor on the attempts' transaction id
    leaves PostgreSQL only the attempts' partitions from the floor on to plan for. A
    transaction not changed since `since` had no attempt since then, so its attempts are not
    read. Nothing indexes transactions by when they were delivered, so the floor is on the
    event: a first attempt to a transaction of an older event (a replay, or a backlog older
    than the floor) is not in the sample.
    """
    sql = first_attempts_sql(db)
    floors = (ids.lowest_id_at("evt", events_from_ms), ids.lowest_id_at("txn", events_from_ms))
    lags: dict[str, list[int]] = {}
    for consumer_id in consumer_ids:
        rows = db.all(sql, (consumer_id, *floors, since, since))
        if rows:
            lags[consumer_id] = [max(0, int(row["lag"])) for row in rows]
    return lags
