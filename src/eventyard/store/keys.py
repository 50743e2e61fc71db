"""SQL for API keys. Only hashes are stored; the secret itself never reaches the database."""

from __future__ import annotations

from eventyard.domain.models import ApiKey, Environment, Project, ProjectMode, Scope
from eventyard.store.db import Db, Row

_KEY_COLUMNS = (
    "k.id, k.project_id, k.environment, k.name, k.prefix, k.scopes, k.created_at,"
    " k.last_used_at, k.revoked_at"
)


def _key(row: Row) -> ApiKey:
    return ApiKey(
        id=row["id"],
        project_id=row["project_id"],
        environment=Environment(row["environment"]),
        name=row["name"],
        prefix=row["prefix"],
        scopes=frozenset(Scope(s) for s in row["scopes"].split(",") if s),
        created_at=row["created_at"],
        last_used_at=row["last_used_at"],
        revoked_at=row["revoked_at"],
    )


def insert_key(db: Db, key: ApiKey, key_hash: str) -> None:
    db.execute(
        "INSERT INTO api_keys (id, project_id, environment, name, prefix, hash, scopes,"
        " created_at, last_used_at, revoked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
        (
            key.id,
            key.project_id,
            key.environment.value,
            key.name,
            key.prefix,
            key_hash,
            ",".join(sorted(s.value for s in key.scopes)),
            key.created_at,
        ),
    )


def find_key_by_hash(db: Db, key_hash: str) -> tuple[ApiKey, Project, str] | None:
    """The key with this hash and its project, with the stored hash for a constant-time check."""
    row = db.one(
        f"SELECT {_KEY_COLUMNS}, k.hash, p.name AS project_name, p.mode AS project_mode,"
        " p.created_at AS project_created_at, p.retention_days AS project_retention_days"
        " FROM api_keys k JOIN projects p ON p.id = k.project_id WHERE k.hash = ?",
        (key_hash,),
    )
    if row is None:
        return None
    project = Project(
        id=row["project_id"],
        name=row["project_name"],
        mode=ProjectMode(row["project_mode"]),
        created_at=row["project_created_at"],
        retention_days=row["project_retention_days"],
    )
    return _key(row), project, row["hash"]


def list_keys(db: Db, project_id: str) -> list[ApiKey]:
    rows = db.all(
        f"SELECT {_KEY_COLUMNS} FROM api_keys k WHERE k.project_id = ? ORDER BY k.created_at, k.id",
        (project_id,),
    )
    return [_key(r) for r in rows]


def get_key(db: Db, project_id: str, key_id: str) -> ApiKey | None:
    row = db.one(
        f"SELECT {_KEY_COLUMNS} FROM api_keys k WHERE k.project_id = ? AND k.id = ?",
        (project_id, key_id),
    )
    return _key(row) if row else None


def revoke_key(db: Db, project_id: str, key_id: str, now: int) -> None:
    db.execute(
        "UPDATE api_keys SET revoked_at = ? WHERE project_id = ? AND id = ? AND revoked_at IS NULL",
        (now, project_id, key_id),
    )


def touch_key(db: Db, key_id: str, now: int) -> None:
    db.execute("UPDATE api_keys SET last_used_at = ? WHERE id = ?", (now, key_id))
