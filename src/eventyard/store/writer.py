"""Group commit: one writer thread, many concurrent writes, one fsync for all of them.

Every write in a process is a function `op(db) -> result` handed to `GroupCommitWriter`. The
writer thread takes the first waiting op, then every other op already waiting (up to a
weight limit), runs them all in one database transaction, commits once, and only then
resolves each op's future. A request therefore answers after the commit that contains its
write — never before, and never much after — and concurrent requests share the cost of the
commit's fsync.

Results go back to asyncio callers through one `call_soon_threadsafe` per group and event
loop, not one per op: waking the loop is a large part of a small write's cost.

A *merged* op (`write_merged(fn, arg)`) is one argument for a set-based function
`fn(db, [arg, ...]) -> [result, ...]`: consecutive ops of a group with the same `fn` run as
one call, so a hundred concurrent single-event requests cost one multi-row insert per table
rather than a hundred statements each (a round trip apiece on PostgreSQL). Only consecutive
ops merge, so every op still runs after those queued before it.

If any op in a group raises, the group is rolled back and each op is run again in a
transaction of its own (a merged op alone, as `fn(db, [arg])`), so one bad op cannot fail
its neighbours: ops must therefore be re-runnable (they are plain SQL over the connection
they are given).

When the database cannot be reached (down, restarting, a network cut), connecting fails for
the whole group at once rather than once per op: each op gets the connection error without
waiting for its own connection attempt, and the next group tries again. When it hangs
instead (a frozen server, a network dropping packets), `busy_since` shows how long the
group in hand has taken, and `fail_waiting` lets the event loop give up on the writes it
waits for (Store's watchdog does, after `database_timeout_seconds`).

The NOTIFYs the ops ask for (store/commit_notices.py) are gathered over commits and sent
in one of them at most every `CommitNotices.every_seconds`; when no write comes by the time
gathered ones are due, the writer sends them in a transaction of their own.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from eventyard.metrics import LATENCY_BUCKETS, SIZE_BUCKETS, Histogram
from eventyard.store.commit_notices import CommitNotices
from eventyard.store.db import Db

logger = logging.getLogger("eventyard.store.writer")

T = TypeVar("T")
A = TypeVar("A")
_STOP = object()
Merged = Callable[[Db, list[Any]], list[Any]]


@dataclass
class _Op:
    fn: Callable[[Db], Any] | None  # None for a merged op
    weight: int
    merged: Merged | None = None
    arg: Any = None
    # Exactly one of these: a thread-safe future (`submit`) or an asyncio one (`write`).
    future: concurrent.futures.Future[Any] | None = None
    afuture: asyncio.Future[Any] | None = None
    loop: asyncio.AbstractEventLoop | None = None


@dataclass
class WriterStats:
    """Counted by the writer thread alone (no lock); read as they are by `/metrics`."""

    commits: int = 0
    ops: int = 0
    largest_group: int = 0
    commit_seconds: Histogram = field(default_factory=lambda: Histogram(LATENCY_BUCKETS))
    group_ops: Histogram = field(default_factory=lambda: Histogram(SIZE_BUCKETS))

    def committed(self, ops: int, seconds: float) -> None:
        self.commits += 1
        self.ops += ops
        self.largest_group = max(self.largest_group, ops)
        self.commit_seconds.observe(seconds)
        self.group_ops.observe(ops)


class GroupCommitWriter:
    def __init__(self, connect: Callable[[], Db], *, max_weight: int) -> None:
        self._connect = connect
        self._max_weight = max_weight
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._db: Db | None = None
        self._thread = threading.Thread(target=self._run, name="eventyard-writer", daemon=True)
        self.stats = WriterStats()
        # When the group in hand began (time.monotonic()); None while waiting for writes.
        self.busy_since: float | None = None
        # The asyncio futures of writes not yet settled, for fail_waiting (touched only in
        # the event loop's thread).
        self._waiting: set[asyncio.Future[Any]] = set()
        self.notices = CommitNotices()

    def start(self) -> None:
        self._ensure_db()
        self._thread.start()

    def stop(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()
        if self._db is not None:
            self._db.close()
            self._db = None

    def submit(self, fn: Callable[[Db], T], weight: int = 1) -> concurrent.futures.Future[T]:
        """Queue a write from any thread; the returned future settles after its commit."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._queue.put(_Op(fn, weight, future=future))
        return future

    async def write(self, fn: Callable[[Db], T], weight: int = 1) -> T:
        """Queue a write and wait, in the event loop, for the commit that holds it."""
        loop = asyncio.get_running_loop()
        afuture: asyncio.Future[T] = loop.create_future()
        self._waiting.add(afuture)
        self._queue.put(_Op(fn, weight, afuture=afuture, loop=loop))
        return await afuture

    async def write_merged(
        self, fn: Callable[[Db, list[A]], list[T]], arg: A, weight: int = 1
    ) -> T:
        """Like `write`, for `fn(db, [arg])[0]`, run together with the group's neighbouring
        ops of the same `fn` as one `fn(db, [arg, ...])`."""
        loop = asyncio.get_running_loop()
        afuture: asyncio.Future[T] = loop.create_future()
        self._waiting.add(afuture)
        self._queue.put(_Op(None, weight, merged=fn, arg=arg, afuture=afuture, loop=loop))
        return await afuture

    def fail_waiting(self, error: Callable[[], BaseException]) -> int:
        """Fail every asyncio write not yet settled with `error()` (call in the event loop);
        how many. Their ops still run when the writer gets to them: this only ends the wait."""
        waiting, self._waiting = self._waiting, set()
        failed = 0
        for future in waiting:
            if not future.done():
                future.set_exception(error())
                failed += 1
        return failed

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self.notices.due_in())
            except queue.Empty:  # gathered NOTIFYs are due and no write came to carry them
                self.busy_since = time.monotonic()  # a hung database shows here too
                self._send_notices()
                self.busy_since = None
                continue
            if first is _STOP:
                self._send_last_notices()
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
            self.busy_since = time.monotonic()
            self._commit_group(group)
            self.busy_since = None
            if stop_after:
                self._send_last_notices()
                return

    def _ensure_db(self) -> Db:
        if self._db is None:
            self._db = self._connect()
            self._db.notices = self.notices
        return self._db

    def _send_last_notices(self) -> None:
        if self.notices.due_in() is not None:
            self.notices.hurry()
            self._send_notices()

    def _send_notices(self) -> None:
        try:
            db = self._ensure_db()
            db.begin()
            self.notices.before_commit(db)
            db.commit()
        except Exception:
            self._rollback_quietly()
            self.notices.failed_to_send()
            logger.debug("sending NOTIFYs failed; trying again later", exc_info=True)
            return
        self.notices.committed()

    def _commit_group(self, group: list[_Op]) -> None:
        try:
            db = self._ensure_db()
        except Exception as exc:
            self._settle([(op, None, exc) for op in group])
            return
        try:
            started = time.perf_counter()
            db.begin()
            results = _run_group(db, group)
            self.notices.before_commit(db)
            db.commit()
        except Exception:
            self._rollback_quietly()
            self.notices.rolled_back()
            self._settle(self._run_each_alone(group))
            return
        self.notices.committed()
        self.stats.committed(len(group), time.perf_counter() - started)
        self._settle([(op, result, None) for op, result in zip(group, results, strict=True)])

    def _run_each_alone(self, group: list[_Op]) -> list[tuple[_Op, Any, BaseException | None]]:
        """Each op in a transaction of its own; once the database cannot be reached, the
        rest get that error without trying again."""
        outcomes: list[tuple[_Op, Any, BaseException | None]] = []
        for op in group:
            try:
                db = self._ensure_db()
            except Exception as exc:
                outcomes.extend((rest, None, exc) for rest in group[len(outcomes) :])
                break
            outcomes.append(self._run_alone(op, db))
        return outcomes

    def _run_alone(self, op: _Op, db: Db) -> tuple[_Op, Any, BaseException | None]:
        try:
            started = time.perf_counter()
            db.begin()
            result = _run_group(db, [op])[0]
            self.notices.before_commit(db)
            db.commit()
        except Exception as exc:
            self._rollback_quietly()
            self.notices.rolled_back()
            return op, None, exc
        self.notices.committed()
        self.stats.committed(1, time.perf_counter() - started)
        return op, result, None

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

    def _settle(self, outcomes: list[tuple[_Op, Any, BaseException | None]]) -> None:
        """Hand each op its result or error: directly, or in one loop callback per loop."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[_Op, Any, BaseException | None]]] = {}
        for outcome in outcomes:
            op, result, exc = outcome
            if op.future is not None:
                if exc is None:
                    op.future.set_result(result)
                else:
                    op.future.set_exception(exc)
            elif op.loop is not None:
                by_loop.setdefault(op.loop, []).append(outcome)
        for loop, batch in by_loop.items():
            try:
                loop.call_soon_threadsafe(self._settle_in_loop, batch)
            except RuntimeError:  # the loop has closed: nobody is waiting any more
                logger.debug("dropping %d results for a closed event loop", len(batch))

    def _settle_in_loop(self, batch: list[tuple[_Op, Any, BaseException | None]]) -> None:
        waiting = self._waiting
        for op, result, exc in batch:
            future = op.afuture
            if future is None:
                continue
            waiting.discard(future)
            if future.done():  # the waiter was cancelled, or gave up (fail_waiting)
                continue
            if exc is None:
                future.set_result(result)
            else:
                future.set_exception(exc)


def _run_group(db: Db, group: list[_Op]) -> list[Any]:
    """Each op's result, in order; a run of consecutive merged ops with one `fn` in one call."""
    results: list[Any] = []
    i = 0
    while i < len(group):
        op = group[i]
        if op.merged is None:
            assert op.fn is not None
            results.append(op.fn(db))
            i += 1
            continue
        end = i + 1
        while end < len(group) and group[end].merged is op.merged:
            end += 1
        outs = op.merged(db, [o.arg for o in group[i:end]])
        if len(outs) != end - i:
            raise RuntimeError(f"{op.merged!r} gave {len(outs)} results for {end - i} ops")
        results.extend(outs)
        i = end
    return results
