"""How each consumer is doing: its backlog and its recent delivery outcomes.

Read by the dashboard's Consumers page and by `GET /v1/stats`. "Pending" counts the
transactions not yet in a terminal state (`pending` or `processing`, or a state a pull
consumer reported that is not `finished`/`failed`); the success rate is over the webhook
attempts of the window for webhook consumers, and over the transactions that reached a
terminal state in the window for pull consumers.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventyard.domain.models import Environment
from eventyard.store.db import Db


@dataclass(frozen=True)
class ConsumerHealth:
    pending: int = 0
    oldest_pending_at: int | None = None  # when the oldest pending transaction was created
    attempts: int = 0  # webhook attempts in the window
    attempts_ok: int = 0  # of which answered 2xx
    finished: int = 0  # transactions that reached `finished` in the window
    failed: int = 0  # transactions that reached `failed` in the window

    @property
    def success_rate(self) -> float | None:
        """Share of successes in the window, 0..1, or None when nothing happened."""
        if self.attempts:
            return self.attempts_ok / self.attempts
        done = self.finished + self.failed
        return self.finished / done if done else None


def consumer_health(
    db: Db, project_id: str, environment: Environment, since: int
) -> dict[str, ConsumerHealth]:
    """Per consumer id of the project and environment; `since` starts the outcome window."""
    env = environment.value
    out: dict[str, dict[str, int | None]] = {}
    for row in db.all(
        "SELECT consumer_id, COUNT(*) AS n, MIN(created_at) AS oldest FROM transactions"
        " WHERE project_id = ? AND environment = ? AND state NOT IN ('finished', 'failed')"
        " GROUP BY consumer_id",
        (project_id, env),
    ):
        out.setdefault(row["consumer_id"], {}).update(
            pending=int(row["n"]), oldest_pending_at=int(row["oldest"])
        )
    # Start from the window's attempts (delivery_attempts_at); SQLite's planner would rather
    # scan every transaction, which unary `+` (SQLite only) stops it from using an index for.
    plus = "+" if db.backend == "sqlite" else ""
    for row in db.all(
        "SELECT t.consumer_id AS consumer_id, COUNT(*) AS n,"
        " SUM(CASE WHEN a.status_code BETWEEN 200 AND 299 THEN 1 ELSE 0 END) AS ok"
        " FROM delivery_attempts a JOIN transactions t ON t.id = a.transaction_id"
        f" WHERE {plus}t.project_id = ? AND {plus}t.environment = ? AND a.at >= ?"
        " GROUP BY t.consumer_id",
        (project_id, env, since),
    ):
        out.setdefault(row["consumer_id"], {}).update(
            attempts=int(row["n"]), attempts_ok=int(row["ok"] or 0)
        )
    for row in db.all(
        "SELECT consumer_id, state, COUNT(*) AS n FROM transactions"
        " WHERE project_id = ? AND environment = ? AND state IN ('finished', 'failed')"
        " AND updated_at >= ? GROUP BY consumer_id, state",
        (project_id, env, since),
    ):
        out.setdefault(row["consumer_id"], {})[row["state"]] = int(row["n"])
    return {cid: ConsumerHealth(**fields) for cid, fields in out.items()}  # type: ignore[arg-type]
