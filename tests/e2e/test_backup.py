"""`eventyard backup FILE`: a copy taken while a client ingests through a real server
restores with every event acknowledged before the backup began.

SQLite: the copy passes `PRAGMA integrity_check` and a server started on it lists every such
event. PostgreSQL: the `pg_dump --format=custom` archive the command writes (the path
docs/deploy.md documents) goes through `pg_restore` into an empty database, and a server on
that database lists every event.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from tests.conftest import PG_ADMIN_URL, REQUIRE_PG, _pg_url
from tests.e2e.server import ServerProcess, init_project, run_cli


class Ingester:
    """Sends batches of events from a thread until stopped; remembers each acknowledged id
    with the time its answer arrived."""

    def __init__(self, url: str, key: str) -> None:
        self._client = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=30
        )
        self.acked: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.error: BaseException | None = None

    def __enter__(self) -> Ingester:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        self._client.close()

    def _run(self) -> None:
        try:
            self._send_until_stopped()
        except BaseException as exc:  # shown by wait_for, in the test's thread
            self.error = exc

    def _send_until_stopped(self) -> None:
        n = 0
        while not self._stop.is_set():
            events = [
                {"trigger": "signup", "user_id": f"u{n + i}", "payload": {"n": n + i}}
                for i in range(50)
            ]
            n += 50
            answer = self._client.post("/v1/events/batch", json={"events": events})
            assert answer.status_code == 200, answer.text
            now = time.monotonic()
            self.acked += [(now, r["id"]) for r in answer.json()["results"]]

    def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acked) < count:
            if self.error is not None:
                raise AssertionError("ingest failed") from self.error
            assert time.monotonic() < deadline, f"only {len(self.acked)} events acknowledged"
            time.sleep(0.02)


def listed_ids(url: str, key: str) -> set[str]:
    ids: set[str] = set()
    params: dict[str, Any] = {"limit": 1000}
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        while True:
            page = client.get("/v1/events", params=params).json()
            ids.update(e["id"] for e in page["data"])
            if not page["next_cursor"]:
                return ids
            params["cursor"] = page["next_cursor"]


def backup_while_ingesting(
    database_url: str, tmp_path: Path, target: Path
) -> tuple[set[str], dict[str, Any]]:
    """Serve `database_url`, ingest, back up to `target` half-way; the ids acknowledged
    before the backup began, and the project (with keys) the events went to."""
    project = init_project(database_url)
    server = ServerProcess(database_url, tmp_path / "server.log", worker=False)
    server.start()
    try:
        with Ingester(server.url, project["keys"]["test"]) as ingester:
            ingester.wait_for(500)
            began = time.monotonic()
            done = run_cli("backup", str(target), database_url=database_url)
            assert done.returncode == 0, done.stderr
            ingester.wait_for(len(ingester.acked) + 100)  # ingest went on meanwhile
        before = {event_id for at, event_id in ingester.acked if at < began}
        assert f"wrote {target}" in done.stdout
        assert "bytes" in done.stdout
    finally:
        server.stop()
    return before, project


def test_a_sqlite_backup_taken_during_ingest_restores_every_acknowledged_event(
    tmp_path: Path,
) -> None:
    live = tmp_path / "live.db"
    copy = tmp_path / "backup.db"
    before, project = backup_while_ingesting(f"sqlite:///{live}", tmp_path, copy)

    with sqlite3.connect(copy) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        stored = {row[0] for row in db.execute("SELECT id FROM events")}
    assert before <= stored
    assert not list(tmp_path.glob(".backup.db.*"))  # no temporary file left behind

    restored = ServerProcess(f"sqlite:///{copy}", tmp_path / "restored.log", worker=False)
    restored.start()
    try:
        found = listed_ids(restored.url, project["keys"]["test"])
    finally:
        restored.stop()
    assert len(before) >= 500
    assert before <= found


def test_backup_refuses_to_overwrite_a_file_unless_forced(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'live.db'}"
    init_project(url)
    target = tmp_path / "exists.db"
    target.write_bytes(b"precious")
    refused = run_cli("backup", str(target), database_url=url)
    assert refused.returncode != 0
    assert "--force" in refused.stderr
    assert target.read_bytes() == b"precious"
    forced = run_cli("backup", str(target), "--force", database_url=url)
    assert forced.returncode == 0, forced.stderr
    with sqlite3.connect(target) as db:
        assert db.execute("SELECT COUNT(*) FROM projects").fetchone() == (1,)


def test_backup_refuses_the_database_itself_even_forced(tmp_path: Path) -> None:
    """A backup renamed over the live file would leave the server writing to a deleted
    file; a mix-up of arguments must not destroy the database."""
    live = tmp_path / "live.db"
    url = f"sqlite:///{live}"
    init_project(url)
    before = live.read_bytes()
    for target in (live, tmp_path / "live.db-wal", tmp_path / "sub" / ".." / "live.db"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        done = run_cli("backup", str(target), "--force", database_url=url)
        assert done.returncode != 0, target
        assert "is the database being backed up" in done.stderr
    assert live.read_bytes() == before
    with sqlite3.connect(live) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_backup_of_a_missing_sqlite_database_says_so(tmp_path: Path) -> None:
    done = run_cli(
        "backup", str(tmp_path / "b.db"), database_url=f"sqlite:///{tmp_path / 'none.db'}"
    )
    assert done.returncode != 0
    assert "no SQLite database" in done.stderr
    assert not (tmp_path / "none.db").exists()


def _pg_dump_or_skip() -> None:
    if shutil.which("pg_dump") and shutil.which("pg_restore"):
        return
    if REQUIRE_PG:
        pytest.fail("pg_dump and pg_restore must be on PATH here (CI)")
    pytest.skip("pg_dump or pg_restore is not on PATH")


@pytest.mark.postgres
def test_a_postgres_backup_round_trips_through_pg_restore_postgres(
    pg_url: str, tmp_path: Path
) -> None:
    _pg_dump_or_skip()
    archive = tmp_path / "eventyard.dump"
    before, project = backup_while_ingesting(pg_url, tmp_path, archive)

    name = f"eventyard_restored_{os.getpid()}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name}")
        admin.execute(f"CREATE DATABASE {name}")
    try:
        restored_url = _pg_url(name)
        done = subprocess.run(
            ["pg_restore", "--no-owner", f"--dbname={restored_url}", str(archive)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        server = ServerProcess(restored_url, tmp_path / "restored.log", worker=False)
        server.start()
        try:
            found = listed_ids(server.url, project["keys"]["test"])
        finally:
            server.stop()
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    assert len(before) >= 500
    assert before <= found


@pytest.mark.postgres
def test_without_pg_dump_the_backup_says_how_to_run_it_postgres(
    pg_url: str, tmp_path: Path
) -> None:
    bare = tmp_path / "bin"
    bare.mkdir()
    done = subprocess.run(
        [sys.executable, "-m", "eventyard", "backup", str(tmp_path / "x.dump")],
        capture_output=True,
        text=True,
        env={**os.environ, "PATH": str(bare), "EVENTYARD_DATABASE_URL": pg_url},
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    assert f"pg_dump --format=custom --file='{tmp_path / 'x.dump'}'" in done.stderr
    assert "pg_restore" in done.stderr
    assert not (tmp_path / "x.dump").exists()
