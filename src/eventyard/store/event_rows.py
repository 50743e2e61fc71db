"""How an event row is read: the column list and the row-to-`Event` mapping."""

from __future__ import annotations

import orjson

from eventyard.domain.models import Environment, Event
from eventyard.store.db import Row

EVENT_COLUMNS = (
    "id, project_id, environment, trigger_id, user_id, payload, timestamp, received_at,"
    " idempotency_key, source, expires_at"
)


def event_from_row(row: Row) -> Event:
    return Event(
        id=row["id"],
        project_id=row["project_id"],
        environment=Environment(row["environment"]),
        trigger=row["trigger_id"],
        user_id=row["user_id"],
        payload=orjson.loads(row["payload"]),
        timestamp=row["timestamp"],
        received_at=row["received_at"],
        idempotency_key=row["idempotency_key"],
        source=row["source"],
        expires_at=row["expires_at"],
    )
