"""`Store`: the database connections of one process, and the two ways to use them.

`await store.write(op)` runs `op(db)` on the group-commit writer (see `writer.py`) and
returns after its transaction is on disk. `await store.read(op)` runs `op(db)` on one of a
few reader connections in threads; since a write answers only after its commit, a read that
starts after an answer always sees the write (read-your-writes, with no lag at all).

A process's connections are therefore bounded: one writer, at most `read_connections`
readers (opened as reads need them), and on PostgreSQL the session connections that
`session_url` reaches (the LISTEN connection, a worker's presence lock, and the lock a
housekeeping pass holds). Commands build a store from the settings in one place,
`cli/database.store_for`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from eventyard.store import migrate as migrations
from eventyard.store import partitions
from eventyard.store.connect import backend_of, connect
from eventyard.store.db import Backend, DatabaseTimeout, Db
from eventyard.store.writer import GroupCommitWriter

logger = logging.getLogger("eventyard.store")
T = TypeVar("T")
A = TypeVar("A")


class Store:
    def __init__(
        self,
        url: str,
        *,
        read_connections: int = 4,
        commit_max_events: int = 2000,
        session_url: str | None = None,
        prepare: bool = True,
        partition_days: int = partitions.DEFAULT_PARTITION_DAYS,
    ):
        self.url = url
        # The span of new time partitions on PostgreSQL (store/partitions.py).
        self.partition_days = partition_days
        # For LISTEN and advisory locks: a session, not a transaction-mode pool (connect.py).
        self.session_url = session_url or url
        self.read_connections = read_connections
        self._prepare = prepare
        # Set by a serving process (Runtime): how long a read or write may wait for the
        # database before it raises DatabaseTimeout. None (commands, tests): no bound.
        self.deadline_seconds: float | None = None
        self._watchdog: asyncio.TimerHandle | None = None
        self.backend: Backend = backend_of(url)
        self.writer = GroupCommitWriter(
            lambda: connect(url, writer=True, prepare=prepare), max_weight=commit_max_events
        )
        self._readers = ThreadPoolExecutor(
            max_workers=read_connections, thread_name_prefix="eventyard-read"
        )
        self._local = threading.local()
        self._reader_dbs: list[Db] = []
        self._reader_lock = threading.Lock()
        self._started = False

    def migrate(self) -> list[migrations.Migration]:
        db = connect(self.url, writer=True, role="eventyard-migrate", prepare=self._prepare)
        try:
            applied = migrations.migrate(db)
            # A fresh database takes events at once in a range of their own (and an upgraded
            # one has its copied rows moved out of the DEFAULT partitions).
            partitions.ensure_partitions(db, time.time_ns() // 1_000_000, self.partition_days)
            return applied
        finally:
            db.close()

    def start(self) -> None:
        if not self._started:
            self.writer.start()
            self._started = True

    def close(self) -> None:
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self.writer.stop()
        self._readers.shutdown(wait=True)
        with self._reader_lock:
            for db in self._reader_dbs:
                db.close()
            self._reader_dbs.clear()
        self._started = False

    async def write(self, op: Callable[[Db], T], weight: int = 1) -> T:
        if self._watchdog is None and self.deadline_seconds is not None:
            self._watch_writer(asyncio.get_running_loop())
        return await self.writer.write(op, weight)

    async def write_merged(
        self, fn: Callable[[Db, list[A]], list[T]], arg: A, weight: int = 1
    ) -> T:
        """`fn(db, [arg])[0]`, merged with neighbouring writes of the same `fn` (writer.py)."""
        if self._watchdog is None and self.deadline_seconds is not None:
            self._watch_writer(asyncio.get_running_loop())
        return await self.writer.write_merged(fn, arg, weight)

    def _watch_writer(self, loop: asyncio.AbstractEventLoop) -> None:
        """Every quarter of the deadline (a second at most), check that the writer is not
        stuck in one group for longer than `deadline_seconds`; if it is, end every write's
        wait with DatabaseTimeout. A timer per check rather than a timeout per write: this
        costs the writes nothing (a timeout apiece was 2 % of an ingest's CPU)."""
        deadline = self.deadline_seconds
        if deadline is None or loop.is_closed():
            self._watchdog = None
            return
        since = self.writer.busy_since
        if since is not None and time.monotonic() - since > deadline:
            failed = self.writer.fail_waiting(lambda: DatabaseTimeout(deadline))
            if failed:
                logger.error(
                    "database unavailable: no answer within %g s (database_timeout_seconds); "
                    "%d waiting writes gave up",
                    deadline,
                    failed,
                )
        self._watchdog = loop.call_later(min(1.0, deadline / 4), self._watch_writer, loop)

    async def read(self, op: Callable[[Db], T]) -> T:
        loop = asyncio.get_running_loop()
        return await self._bounded(loop.run_in_executor(self._readers, self._read_here, op))

    async def _bounded(self, pending: Awaitable[T]) -> T:
        """Await a read for `deadline_seconds` at most (see DatabaseTimeout). The read goes
        on in its thread; only the wait for it ends."""
        if self.deadline_seconds is None:
            return await pending
        try:
            async with asyncio.timeout(self.deadline_seconds):
                return await pending
        except TimeoutError:
            logger.error(
                "database unavailable: no answer within %g s (database_timeout_seconds)",
                self.deadline_seconds,
            )
            raise DatabaseTimeout(self.deadline_seconds) from None

    async def ping(self) -> None:
        """Raise when the database does not answer a trivial query."""
        await self.read(lambda db: db.scalar("SELECT 1 AS ok"))

    def _read_here(self, op: Callable[[Db], T]) -> T:
        db: Db | None = getattr(self._local, "db", None)
        if db is None:
            db = connect(self.url, writer=False, prepare=self._prepare)
            self._local.db = db
            with self._reader_lock:
                self._reader_dbs.append(db)
        try:
            result = op(db)
        except Exception:
            self._reset_reader(db)
            raise
        if db.backend == "sqlite":
            # End the implicit read transaction so the WAL can be checkpointed.
            db.rollback()
        return result

    def _reset_reader(self, db: Db) -> None:
        """Drop a reader connection after an error: the next read opens a fresh one."""
        self._local.db = None
        with self._reader_lock:
            if db in self._reader_dbs:
                self._reader_dbs.remove(db)
        with contextlib.suppress(Exception):  # it is being discarded anyway
            db.close()


def open_store(url: str, *, read_connections: int = 4) -> Store:
    """Create a store, apply pending migrations and start its writer (tests and tools; the
    commands build theirs from the settings, cli/database.py `store_for`)."""
    store = Store(url, read_connections=read_connections)
    store.migrate()
    store.start()
    return store
