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

from eventyard.domain.models import Environment
from eventyard.store.db import Db

LAG_SAMPLE = 5000  # first attempts read at most, newest first, for the lag percentiles

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


def first_attempt_lags(
    db: Db, project_id: str, environment: Environment, since: int
) -> dict[str, list[int]]:
    """Per consumer, µs from each transaction's creation to the end of its first webhook
    attempt, for first attempts made since `since`: the newest LAG_SAMPLE at most."""
    # Walk the attempts newest first by their time (delivery_attempts_at); unary `+` keeps
    # SQLite's planner from starting at the project's transactions instead.
    plus = "+" if db.backend == "sqlite" else ""
    rows = db.all(
        "SELECT t.consumer_id AS consumer_id, a.at - t.created_at AS lag"
        " FROM delivery_attempts a JOIN transactions t ON t.id = a.transaction_id"
        f" WHERE a.at >= ? AND a.attempt = 1 AND {plus}t.project_id = ?"
        f" AND {plus}t.environment = ? ORDER BY a.at DESC LIMIT {LAG_SAMPLE}",
        (since, project_id, environment.value),
    )
    lags: dict[str, list[int]] = {}
    for row in rows:
        lags.setdefault(row["consumer_id"], []).append(max(0, int(row["lag"])))
    return lags
