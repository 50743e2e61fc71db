"""Versioned schema migrations, one numbered set of SQL files per backend.

`migrations/<backend>/NNNN_name.sql` files are applied in order, each in its own
transaction, and recorded in `schema_migrations`. A released file is never edited: a change
to the schema is a new numbered file for both backends (CONTRIBUTING.md; a test checks that
both backends have the same versions). On PostgreSQL an advisory lock serializes processes
that start at the same moment.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from importlib import resources

from eventyard.store.db import Backend, Db

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
_PG_LOCK_ID = 7_303_755_001


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str


def available(backend: Backend) -> list[Migration]:
    folder = resources.files("eventyard.store").joinpath("migrations", backend)
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text("utf-8")))
    return sorted(found, key=lambda m: m.version)


def applied_versions(db: Db) -> list[int]:
    _ensure_table(db)
    return [int(r["version"]) for r in db.all("SELECT version FROM schema_migrations ORDER BY 1")]


def _ensure_table(db: Db) -> None:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at BIGINT NOT NULL)"
    )
    if db.backend == "postgres":
        db.conn.commit()


def migrate(db: Db, upto: int | None = None) -> list[Migration]:
    """Apply every migration not applied yet (up to version `upto`, when given: to build
    an old schema in a test); return the ones applied now."""
    _ensure_table(db)
    done: list[Migration] = []
    for migration in available(db.backend):
        if upto is not None and migration.version > upto:
            break
        db.begin()
        try:
            if db.backend == "postgres":
                db.execute("SELECT pg_advisory_xact_lock(?)", (_PG_LOCK_ID,))
            exists = db.one(
                "SELECT 1 AS x FROM schema_migrations WHERE version = ?", (migration.version,)
            )
            if exists:
                db.rollback()
                continue
            _run_script(db, migration.sql)
            db.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, time.time_ns() // 1000),
            )
            db.commit()
        except BaseException:
            db.rollback()
            raise
        done.append(migration)
    return done


def _run_script(db: Db, sql: str) -> None:
    # Statements are split on ';' at line ends: migrations hold no procedural bodies.
    for statement in re.split(r";\s*$", sql, flags=re.MULTILINE):
        body = "\n".join(
            line for line in statement.splitlines() if not line.strip().startswith("--")
        ).strip()
        if body:
            db.conn.execute(body)
