"""SQL for the live feed: events of one project and environment in id order, after an id.

Event ids sort by the millisecond they were made in (see `eventyard.ids`), so "the events
made since then" is a range scan on the primary key. On SQLite the project and environment
columns are written `+project_id` so the planner cannot pick one of the `(project_id,
environment, timestamp, ...)` indexes and sort a whole project's events by id: the id range
of the last seconds is the small side. PostgreSQL's planner sees that from its statistics.
"""

from __future__ import annotations

from typing import Any

from eventyard.domain.models import Environment, Event
from eventyard.store.db import Db
from eventyard.store.event_rows import EVENT_COLUMNS, event_from_row


def events_after(
    db: Db,
    project_id: str,
    environment: Environment,
    after_id: str,
    *,
    now: int,
    limit: int,
    upto_id: str | None = None,
    trigger: str | None = None,
    user_id: str | None = None,
    source: str | None = None,
) -> list[Event]:
    """Unexpired events with `after_id < id (<= upto_id)`, oldest id first, at most `limit`."""
    plus = "+" if db.backend == "sqlite" else ""
    where = [
        f"{plus}project_id = ?",
        f"{plus}environment = ?",
        "id > ?",
        "(expires_at IS NULL OR expires_at > ?)",
    ]
    params: list[Any] = [project_id, environment.value, after_id, now]
    if upto_id is not None:
        where.append("id <= ?")
        params.append(upto_id)
    for column, value in (("trigger_id", trigger), ("user_id", user_id), ("source", source)):
        if value is not None:
            where.append(f"{plus}{column} = ?")
            params.append(value)
    params.append(limit)
    sql = f"SELECT {EVENT_COLUMNS} FROM events WHERE {' AND '.join(where)} ORDER BY id LIMIT ?"
    return [event_from_row(r) for r in db.all(sql, params)]


def database_time_ms(db: Db) -> int:
    """The database server's clock, in milliseconds since the epoch (PostgreSQL)."""
    return int(db.scalar("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint AS ms"))
