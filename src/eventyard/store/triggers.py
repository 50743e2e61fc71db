"""SQL for triggers."""

from __future__ import annotations

from typing import Any

import orjson

from eventyard.domain.models import Trigger
from eventyard.store.db import Db, Row


def _trigger(row: Row) -> Trigger:
    schema = row["schema"]
    return Trigger(
        project_id=row["project_id"],
        id=row["id"],
        uuid=row["uuid"],
        name=row["name"],
        description=row["description"],
        type=row["type"],
        platform=row["platform"],
        label=row["label"],
        schema=orjson.loads(schema) if schema else None,
        archived_at=row["archived_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        inbound_token=row["inbound_token"],
    )


def _schema_text(schema: dict[str, Any] | None) -> str | None:
    return orjson.dumps(schema).decode() if schema is not None else None


def insert_trigger(db: Db, t: Trigger) -> bool:
    """Insert; False when the project has a trigger with that id already."""
    cursor = db.execute(
        "INSERT INTO triggers (project_id, id, uuid, name, description, type, platform, label,"
        " schema, archived_at, created_at, updated_at, inbound_token)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (project_id, id) DO NOTHING",
        (
            t.project_id,
            t.id,
            t.uuid,
            t.name,
            t.description,
            t.type,
            t.platform,
            t.label,
            _schema_text(t.schema),
            t.archived_at,
            t.created_at,
            t.updated_at,
            t.inbound_token,
        ),
    )
    return cursor.rowcount == 1


def update_trigger(db: Db, t: Trigger) -> None:
    db.execute(
        "UPDATE triggers SET name = ?, description = ?, platform = ?, label = ?, schema = ?,"
        " archived_at = ?, updated_at = ? WHERE project_id = ? AND id = ?",
        (
            t.name,
            t.description,
            t.platform,
            t.label,
            _schema_text(t.schema),
            t.archived_at,
            t.updated_at,
            t.project_id,
            t.id,
        ),
    )


def get_trigger(db: Db, project_id: str, trigger_id: str) -> Trigger | None:
    row = db.one("SELECT * FROM triggers WHERE project_id = ? AND id = ?", (project_id, trigger_id))
    return _trigger(row) if row else None


def get_trigger_by_uuid(db: Db, project_id: str, uuid: str) -> Trigger | None:
    row = db.one("SELECT * FROM triggers WHERE project_id = ? AND uuid = ?", (project_id, uuid))
    return _trigger(row) if row else None


def get_trigger_by_inbound_token(db: Db, project_id: str, token: str) -> Trigger | None:
    row = db.one(
        "SELECT * FROM triggers WHERE project_id = ? AND inbound_token = ?", (project_id, token)
    )
    return _trigger(row) if row else None


def list_triggers(db: Db, project_id: str, *, include_archived: bool) -> list[Trigger]:
    where = "" if include_archived else " AND archived_at IS NULL"
    rows = db.all(f"SELECT * FROM triggers WHERE project_id = ?{where} ORDER BY id", (project_id,))
    return [_trigger(r) for r in rows]
