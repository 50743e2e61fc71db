"""SQL for projects."""

from __future__ import annotations

from eventyard.domain.models import Project, ProjectMode
from eventyard.store.db import Db, Row


def _project(row: Row) -> Project:
    return Project(
        id=row["id"],
        name=row["name"],
        mode=ProjectMode(row["mode"]),
        created_at=row["created_at"],
        retention_days=row["retention_days"],
    )


def insert_project(db: Db, project: Project) -> bool:
    """Insert; False when a project of that name exists already."""
    cursor = db.execute(
        "INSERT INTO projects (id, name, mode, created_at) VALUES (?, ?, ?, ?)"
        " ON CONFLICT (name) DO NOTHING",
        (project.id, project.name, project.mode.value, project.created_at),
    )
    return cursor.rowcount == 1


def get_project(db: Db, project_id: str) -> Project | None:
    row = db.one("SELECT * FROM projects WHERE id = ?", (project_id,))
    return _project(row) if row else None


def get_project_by_name(db: Db, name: str) -> Project | None:
    row = db.one("SELECT * FROM projects WHERE name = ?", (name,))
    return _project(row) if row else None


def set_project_mode(db: Db, project_id: str, mode: ProjectMode) -> None:
    db.execute("UPDATE projects SET mode = ? WHERE id = ?", (mode.value, project_id))


def set_project_retention(db: Db, project_id: str, days: int | None) -> None:
    db.execute("UPDATE projects SET retention_days = ? WHERE id = ?", (days, project_id))


def retentions(db: Db) -> dict[str, int | None]:
    """Every project's retention in days (None: keeps its events forever), by project id."""
    rows = db.all("SELECT id, retention_days FROM projects")
    return {r["id"]: r["retention_days"] for r in rows}


def list_projects(db: Db) -> list[Project]:
    return [_project(r) for r in db.all("SELECT * FROM projects ORDER BY name")]
