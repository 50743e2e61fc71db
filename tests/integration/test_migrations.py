"""Migrations: from zero to the recorded schema, idempotent, and in step on both backends.

`schema_<backend>.txt` beside this file is the schema every migration applied to an empty
database must produce, in a normalized, sorted text form. After adding a migration, rewrite
the snapshots with `EVENTYARD_UPDATE_SNAPSHOTS=1 pytest tests/integration/test_migrations.py`
and review the diff: it is the schema change your migration makes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventyard.store import Store
from eventyard.store.connect import connect
from eventyard.store.db import Db
from eventyard.store.migrate import available
from tests.conftest import empty_pg_database

HERE = Path(__file__).parent
UPDATE = os.environ.get("EVENTYARD_UPDATE_SNAPSHOTS") == "1"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(backend, url) of a database with nothing in it: no template, no migrations."""
    if request.param == "sqlite":
        yield "sqlite", f"sqlite:///{tmp_path}/empty.db"
        return
    with empty_pg_database("eventyard_mig") as url:
        yield "postgres", url


def describe(url: str) -> str:
    db = connect(url, writer=True)
    try:
        lines = _describe_sqlite(db) if db.backend == "sqlite" else _describe_postgres(db)
    finally:
        db.close()
    return "\n".join(lines) + "\n"


def _describe_sqlite(db: Db) -> list[str]:
    lines = []
    tables = db.all(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    for table in sorted(r["name"] for r in tables):
        for c in db.all(f"PRAGMA table_info({table})"):
            null = "NOT NULL" if c["notnull"] or c["pk"] else "NULL"
            default = f" DEFAULT {c['dflt_value']}" if c["dflt_value"] is not None else ""
            lines.append(f"column {table}.{c['name']} {c['type'].lower()} {null}{default}")
        pk = sorted((c["pk"], c["name"]) for c in db.all(f"PRAGMA table_info({table})") if c["pk"])
        if pk:
            lines.append(f"primary key {table} ({', '.join(n for _, n in pk)})")
        for fk in db.all(f"PRAGMA foreign_key_list({table})"):
            lines.append(f"foreign key {table} ({fk['from']}) -> {fk['table']} ({fk['to']})")
        for index in db.all(f"PRAGMA index_list({table})"):
            if index["origin"] == "pk":
                continue
            cols = [c["name"] for c in db.all(f"PRAGMA index_info({index['name']})")]
            kind = "unique" if index["origin"] == "u" else "index"
            label = "" if index["origin"] == "u" else f" {index['name']}"
            unique = " unique" if index["unique"] and index["origin"] != "u" else ""
            lines.append(f"{kind}{unique}{label} {table} ({', '.join(cols)})")
    return sorted(lines)


def _describe_postgres(db: Db) -> list[str]:
    # A partitioned table is one line with its key, and its DEFAULT partition one more; the
    # partitions themselves (their columns, keys and indexes are the parent's) are left out,
    # since the time ranges are named for the days they hold (store/partitions.py).
    lines = []
    for p in db.all(
        "SELECT c.relname, pg_get_partkeydef(c.oid) AS key FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind = 'p'"
    ):
        lines.append(f"partitioned {p['relname']} BY {p['key']}")
    for p in db.all(
        "SELECT c.relname, i.inhparent::regclass::text AS parent FROM pg_class c"
        " JOIN pg_inherits i ON i.inhrelid = c.oid JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relispartition AND c.relkind = 'r'"
        " AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'"
    ):
        lines.append(f"default partition {p['parent']} {p['relname']}")
    for c in db.all(
        "SELECT table_name, column_name, data_type, is_nullable, column_default,"
        " identity_generation FROM information_schema.columns WHERE table_schema = 'public'"
        " AND table_name NOT IN (SELECT relname FROM pg_class WHERE relispartition)"
    ):
        null = "NOT NULL" if c["is_nullable"] == "NO" else "NULL"
        default = f" DEFAULT {c['column_default']}" if c["column_default"] is not None else ""
        if c["identity_generation"]:
            default += f" GENERATED {c['identity_generation']} AS IDENTITY"
        lines.append(
            f"column {c['table_name']}.{c['column_name']} {c['data_type']} {null}{default}"
        )
    for c in db.all(
        "SELECT rel.relname AS table_name, con.contype, pg_get_constraintdef(con.oid) AS def"
        " FROM pg_constraint con JOIN pg_class rel ON rel.oid = con.conrelid"
        " JOIN pg_namespace ns ON ns.oid = rel.relnamespace WHERE ns.nspname = 'public'"
        " AND NOT rel.relispartition"
    ):
        kind = {"p": "primary key", "f": "foreign key", "u": "unique", "c": "check"}
        lines.append(f"{kind.get(c['contype'], c['contype'])} {c['table_name']} {c['def']}")
    for i in db.all(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'"
        " AND indexname NOT IN (SELECT conname FROM pg_constraint)"
        " AND tablename NOT IN (SELECT relname FROM pg_class WHERE relispartition)"
    ):
        lines.append(f"index {i['indexname']}: {i['indexdef']}")
    return sorted(lines)


def migration_rows(url: str) -> list[tuple[int, str, int]]:
    db = connect(url, writer=True)
    try:
        rows = db.all("SELECT version, name, applied_at FROM schema_migrations ORDER BY version")
        return [(r["version"], r["name"], r["applied_at"]) for r in rows]
    finally:
        db.close()


def test_migrating_from_zero_gives_the_recorded_schema(empty_db: tuple[str, str]) -> None:
    backend, url = empty_db
    applied = Store(url).migrate()
    assert [m.version for m in applied] == [m.version for m in available(backend)]
    schema = describe(url)
    snapshot = HERE / f"schema_{backend}.txt"
    if UPDATE:
        snapshot.write_text(schema)
    assert snapshot.exists(), (
        f"no snapshot: run with EVENTYARD_UPDATE_SNAPSHOTS=1 to write {snapshot}"
    )
    assert schema == snapshot.read_text(), (
        f"the migrated schema differs from {snapshot.name}; if the change is intended, "
        "rewrite it with EVENTYARD_UPDATE_SNAPSHOTS=1 and review the diff"
    )


def test_migrating_again_changes_nothing(empty_db: tuple[str, str]) -> None:
    backend, url = empty_db
    store = Store(url)
    store.migrate()
    before = describe(url)
    recorded = migration_rows(url)
    db = connect(url, writer=True)
    try:
        db.begin()
        db.execute(
            "INSERT INTO projects (id, name, mode, created_at) VALUES (?, ?, ?, ?)",
            ("prj_kept", "kept", "open", 1),
        )
        db.commit()
    finally:
        db.close()

    assert store.migrate() == []
    assert describe(url) == before
    assert migration_rows(url) == recorded
    assert [(v, n) for v, n, _ in recorded] == [(m.version, m.name) for m in available(backend)]
    db = connect(url, writer=False)
    try:
        assert db.scalar("SELECT name FROM projects WHERE id = ?", ("prj_kept",)) == "kept"
    finally:
        db.close()


def test_both_backends_ship_the_same_migrations() -> None:
    sqlite = [(m.version, m.name) for m in available("sqlite")]
    postgres = [(m.version, m.name) for m in available("postgres")]
    assert sqlite, "no migrations found in the package"
    assert sqlite == postgres
    assert [v for v, _ in sqlite] == list(range(1, len(sqlite) + 1)), "versions skip a number"


def _columns(snapshot: str) -> set[str]:
    return {line.split()[1] for line in snapshot.splitlines() if line.startswith("column ")}


def test_both_snapshots_have_the_same_tables_and_columns() -> None:
    sqlite = (HERE / "schema_sqlite.txt").read_text()
    postgres = (HERE / "schema_postgres.txt").read_text()
    assert _columns(sqlite) == _columns(postgres)
    assert {"events.payload", "api_keys.hash", "triggers.uuid"} <= _columns(sqlite)
