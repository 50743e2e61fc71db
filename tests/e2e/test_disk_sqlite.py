"""SQLite on a disk that fills up or turns read-only: a clear 503, no damage, and writes
resume when the disk does — without restarting the server.

The database lives on a small tmpfs the test mounts (so needs root, or is skipped): a real
filesystem that really runs out of space (ENOSPC) and that `mount -o remount,ro` really
makes read-only (EROFS) under the running server. Root ignores file permissions, so
chmod would prove nothing; SQLite's `max_page_count` is a setting of one connection, so a
test could not impose it on the server's.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.e2e.faults import all_events, post_refused
from tests.e2e.server import ServerProcess, init_project

FS_BYTES = 8 * 1024 * 1024
ANSWER_BOUND_S = 5.0  # a refusal comes at once (observed: milliseconds)
PAYLOAD = "x" * 2000  # each event ~2 KB, so a few hundred fill what the WAL has room for


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "fs"
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = _mount("-t", "tmpfs", "-o", f"size={FS_BYTES}", "tmpfs", str(where))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(path: Path) -> None:
    """Write zeros to `path` until the filesystem has no room left."""
    chunk = b"\0" * 65536
    with path.open("wb") as f:
        try:
            while True:
                f.write(chunk)
                f.flush()
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
        # What is buffered cannot be written either: drop it rather than fail on close.
        f.truncate(f.tell())


def _event(tag: str, n: int) -> dict[str, object]:
    return {
        "trigger": "upload",
        "user_id": f"u{n % 5}",
        "payload": {"blob": PAYLOAD, "n": n},
        "idempotency_key": f"{tag}-{n}",
    }


def _check_intact(db_path: Path, acked: dict[str, str], client: httpx.Client) -> None:
    with sqlite3.connect(db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    stored = {e["id"]: e["idempotency_key"] for e in all_events(client)}
    assert stored == acked, "the stored events are not exactly the acknowledged ones"


@contextlib.contextmanager
def _serving(
    db_path: Path, log: Path, server_factory: type[ServerProcess]
) -> Iterator[tuple[ServerProcess, httpx.Client]]:
    """A project on a new database at `db_path`, a server on it, and a client with its key."""
    url = f"sqlite:///{db_path}"
    key = init_project(url)["keys"]["live"]
    server = server_factory(url, log)
    server.start()
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
        yield server, client


def _send(client: httpx.Client, tag: str, count: int, acked: dict[str, str]) -> None:
    """`count` events that must be stored (201); each goes into `acked`, id → key."""
    for n in range(count):
        r = client.post("/v1/events", json=_event(tag, n))
        assert r.status_code == 201, r.text
        acked[r.json()["id"]] = f"{tag}-{n}"


def test_disk_full_answers_503_and_writes_resume_when_space_returns(
    small_fs: Path, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    db_path = small_fs / "eventyard.db"
    log = tmp_path / "server.log"
    acked: dict[str, str] = {}
    with _serving(db_path, log, server_factory) as (server, client):
        _send(client, "before", 20, acked)

        _fill(small_fs / "filler")
        # The WAL may still have room it took before; events soon need more than that.
        refused = None
        for n in range(2000):
            r = client.post("/v1/events", json=_event("full", n))
            if r.status_code == 201:
                acked[r.json()["id"]] = f"full-{n}"
                continue
            refused = r
            break
        assert refused is not None, "2,000 events fitted on a full disk"
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["retry-after"]) > 0
        for n in range(5):  # and it stays a clear 503, not a 500, while the disk is full
            post_refused(client, _event("still", n), within=ANSWER_BOUND_S)
        assert client.get("/healthz").status_code == 200
        assert "database unavailable: database or disk is full (SQLITE_FULL)" in log.read_text()
        _check_intact(db_path, acked, client)

        (small_fs / "filler").unlink()
        _send(client, "after", 20, acked)
        assert server.proc is not None
        assert server.proc.poll() is None
        _check_intact(db_path, acked, client)


def _chattr(flag: str, *paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["chattr", flag, *map(str, paths)], capture_output=True, text=True, check=False
    )


def test_read_only_database_answers_503_and_writes_resume_when_writable(
    server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """The database's files and directory made immutable (`chattr +i`, which binds root
    too, and open files as well) under the running server, then writable again."""
    where = tmp_path / "db"
    where.mkdir()
    db_path = where / "eventyard.db"
    log = tmp_path / "server.log"
    acked: dict[str, str] = {}
    with _serving(db_path, log, server_factory) as (_, client):
        _send(client, "before", 20, acked)

        files = [p for p in where.iterdir() if not p.name.endswith("-shm")]
        done = _chattr("+i", *files, where)
        if done.returncode != 0:
            pytest.skip(f"chattr +i does not work here: {done.stderr.strip()}")
        try:
            for n in range(5):
                post_refused(client, _event("ro", n), within=ANSWER_BOUND_S)
            assert client.get("/healthz").status_code == 200
            # Reads go on: what was acknowledged is still there.
            assert {e["id"] for e in all_events(client)} == set(acked)
        finally:
            done = _chattr("-i", *files, where)
            assert done.returncode == 0, done.stderr
        assert "database unavailable: disk I/O error (SQLITE_IOERR" in log.read_text()

        _send(client, "after", 20, acked)
        _check_intact(db_path, acked, client)
