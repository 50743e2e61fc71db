"""Whether any other delivery worker is alive on this database, asked once at start.

A worker that dies (SIGKILL, a power cut) leaves the deliveries it had leased behind: they
wait until their leases run out — the attempt's timeout plus half a minute — before another
round may claim them. A worker that starts while no other is alive can give them back at
once, since every lease in the database then belongs to a dead worker.

Each live worker holds a shared lock for as long as it runs; a starting worker that can take
the lock exclusively knows it is alone, gives the leases back while it holds it, and then
shares it like the others. On SQLite the lock is `flock` on a file beside the database (the
processes of one SQLite database share a machine); on PostgreSQL it is a session advisory
lock, which the server drops when its holder's connection ends — the process died, or lost
the database, in which case `keep()` takes it again once the database answers.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
from typing import IO

import psycopg

from eventyard.store.connect import backend_of, connect_session, sqlite_path
from eventyard.store.db import Db

logger = logging.getLogger("eventyard.delivery")

# pg_advisory_lock's key for "a delivery worker is alive": any constant unlikely to clash.
_PG_KEY = 0x65767479_776B72  # "evty" "wkr"


class WorkerPresence:
    def __init__(self, url: str) -> None:
        self._url = url
        self._backend = backend_of(url)
        self._file: IO[bytes] | None = None
        self._conn: psycopg.Connection[tuple[object, ...]] | None = None

    def try_alone(self) -> bool:
        """Take the lock exclusively if no other worker holds it: True when alone. Then
        call `share()` (after giving leases back, if alone)."""
        self.leave()
        if self._backend == "sqlite":
            path = sqlite_path(self._url)
            if path == ":memory:":
                return True
            self._file = open(path + "-workers", "ab")  # noqa: SIM115 - held for the worker's life
            try:
                fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            return True
        self._conn = connect_session(self._url, "eventyard-worker-lock")
        row = self._conn.execute("SELECT pg_try_advisory_lock(%s)", [_PG_KEY]).fetchone()
        return bool(row and row[0])

    def share(self) -> None:
        """Hold the lock shared, as every live worker does (after `try_alone`)."""
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_SH)
        elif self._conn is not None:
            self._conn.execute("SELECT pg_advisory_unlock_all()")
            self._conn.execute("SELECT pg_advisory_lock_shared(%s)", [_PG_KEY])

    def keep(self) -> None:
        """On PostgreSQL, take the shared lock again if its connection was lost."""
        if self._backend != "postgres":
            return
        try:
            if self._conn is not None and not self._conn.closed:
                self._conn.execute("SELECT 1")
                return
        except psycopg.Error:
            pass
        with contextlib.suppress(Exception):
            if self._conn is not None:
                self._conn.close()
        self._conn = connect_session(self._url, "eventyard-worker-lock")
        self._conn.execute("SELECT pg_advisory_lock_shared(%s)", [_PG_KEY])
        logger.info("delivery worker presence lock taken again")

    def leave(self) -> None:
        with contextlib.suppress(Exception):
            if self._file is not None:
                self._file.close()  # closing drops the flock
            if self._conn is not None:
                self._conn.close()
        self._file = None
        self._conn = None


def worker_running(url: str, db: Db) -> bool:
    """Whether any delivery worker holds the presence lock now (for `GET /v1/status`).

    On PostgreSQL it reads `pg_locks`. On SQLite it tries the lock file exclusively without
    waiting, and lets go at once: a worker that starts in that instant thinks another is
    alive and leaves dead workers' leases to run out, which costs only promptness.
    """
    if backend_of(url) == "postgres":
        held = db.scalar(
            "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND classid::bigint = ? AND objid::bigint = ? AND objsubid = 1",
            (_PG_KEY >> 32, _PG_KEY & 0xFFFFFFFF),
        )
        return bool(held)
    path = sqlite_path(url)
    if path == ":memory:":
        return False
    try:
        probe = open(path + "-workers", "rb")  # noqa: SIM115 - closed below, dropping the lock
    except FileNotFoundError:  # no worker has ever run on this database
        return False
    with probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False
