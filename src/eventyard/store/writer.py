"""Group commit: one writer thread, many concurrent writes, one fsync for all of them.

Every write in a process is a function `op(db) -> result` handed to `GroupCommitWriter`. The
writer thread takes the first waiting op, then every other op already waiting (up to a
weight limit), runs them all in one database transaction, commits once, and only then
resolves each op's future. A request therefore answers after the commit that contains its
write — never before, and never much after — and concurrent requests share the cost of the
commit's fsync.

If any op in a group raises, the group is rolled back and each op is run again in a
transaction of its own, so one bad op cannot fail its neighbours: ops must therefore be
re-runnable (they are plain SQL over the connection they are given).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from eventyard.store.db import Db

logger = logging.getLogger("eventyard.store.writer")

T = TypeVar("T")
_STOP = object()


@dataclass
class _Op:
    fn: Callable[[Db], Any]
    weight: int
    future: concurrent.futures.Future[Any] = field(default_factory=concurrent.futures.Future)


@dataclass
class WriterStats:
    commits: int = 0
    ops: int = 0
    largest_group: int = 0


class GroupCommitWriter:
    def __init__(self, connect: Callable[[], Db], *, max_weight: int) -> None:
        self._connect = connect
        self._max_weight = max_weight
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._db: Db | None = None
        self._thread = threading.Thread(target=self._run, name="eventyard-writer", daemon=True)
        self.stats = WriterStats()

    def start(self) -> None:
        self._db = self._connect()
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        if self._db is not None:
            self._db.close()
            self._db = None

    def submit(self, fn: Callable[[Db], T], weight: int = 1) -> concurrent.futures.Future[T]:
        op = _Op(fn, weight)
        self._queue.put(op)
        return op.future

    async def write(self, fn: Callable[[Db], T], weight: int = 1) -> T:
        return await asyncio.wrap_future(self.submit(fn, weight))

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            group: list[_Op] = [first]
            weight = first.weight
            stop_after = False
            while weight < self._max_weight:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop_after = True
                    break
                group.append(nxt)
                weight += nxt.weight
            self._commit_group(group)
            if stop_after:
                return

    def _ensure_db(self) -> Db:
        if self._db is None:
            self._db = self._connect()
        return self._db

    def _commit_group(self, group: list[_Op]) -> None:
        try:
            db = self._ensure_db()
            db.begin()
            results = [op.fn(db) for op in group]
            db.commit()
        except Exception:
            self._rollback_quietly()
            if len(group) == 1:
                self._run_alone(group[0])
            else:
                for op in group:
                    self._run_alone(op)
            return
        self.stats.commits += 1
        self.stats.ops += len(group)
        self.stats.largest_group = max(self.stats.largest_group, len(group))
        for op, result in zip(group, results, strict=True):
            op.future.set_result(result)

    def _run_alone(self, op: _Op) -> None:
        try:
            db = self._ensure_db()
            db.begin()
            result = op.fn(db)
            db.commit()
        except Exception as exc:
            self._rollback_quietly()
            op.future.set_exception(exc)
            return
        self.stats.commits += 1
        self.stats.ops += 1
        op.future.set_result(result)

    def _rollback_quietly(self) -> None:
        if self._db is None:
            return
        try:
            self._db.rollback()
        except Exception:
            # The connection is broken (database restarted, disk gone): drop it, and the
            # next group reconnects.
            logger.warning("writer connection lost; reconnecting on the next write")
            try:
                self._db.close()
            except Exception:
                logger.debug("closing a broken connection failed", exc_info=True)
            self._db = None
