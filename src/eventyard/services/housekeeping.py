"""Housekeeping: removing from disk what reads already hide, a pass at a time.

Reads hide an event the moment its TTL passes or its project's retention no longer keeps it
(services/events.py); a pass frees the space. On PostgreSQL it first hands the partitions to
`store/partitions.py`: ranges are made ahead of now, and every range older than the longest
retention of any project is dropped whole — no row deleted, so retention costs no long
delete. (A project that keeps its events forever keeps every range.) What the partitions
cannot take — events past a TTL, events of projects whose retention is shorter than the
longest, all of it on SQLite — goes in batches of `batch` events: each batch is found on a
reader connection and deleted in one short write through the group-commit writer, so ingest
commits between batches rather than waiting behind one long delete. Idempotency keys past
their window go the same way.

One process at a time runs a pass on PostgreSQL: a pass holds a session advisory lock on a
connection of its own, and a process that finds it taken skips its turn. `eventyard serve`
and `eventyard worker` run a pass every `housekeeping_seconds`; `eventyard housekeep` runs
one now and prints its report.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from eventyard.clock import Clock
from eventyard.domain.retention import kept_from_us, longest_kept_from_us
from eventyard.ids import first_id_at
from eventyard.settings import Settings
from eventyard.store import Store
from eventyard.store import projects as project_sql
from eventyard.store import retention as retention_sql
from eventyard.store.connect import connect
from eventyard.store.db import Db
from eventyard.store.partitions import housekeep_partitions

logger = logging.getLogger("eventyard.housekeeping")

BATCH = 500  # events a write: a few milliseconds of the writer's time
LOCK_ID = 7_303_755_009  # the PostgreSQL advisory lock a pass holds


@dataclass
class HousekeepingReport:
    """What one pass removed. `skipped`: another process was running a pass."""

    started_at: int
    skipped: bool = False
    expired_events: int = 0  # past their TTL
    retention_events: int = 0  # past their project's retention, deleted by rows
    removed: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(retention_sql.REMOVED_KINDS, 0)
    )
    partitions_created: list[str] = field(default_factory=list)
    partitions_dropped: list[str] = field(default_factory=list)
    partition_rows_dropped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, counts: dict[str, int]) -> None:
        for kind, n in counts.items():
            self.removed[kind] += n

    @property
    def removed_anything(self) -> bool:
        return any(self.removed.values()) or bool(self.partitions_dropped)

    def as_json(self) -> dict[str, Any]:
        return {
            "skipped": self.skipped,
            "expired_events": self.expired_events,
            "retention_events": self.retention_events,
            "removed": self.removed,
            "partitions": {
                "created": self.partitions_created,
                "dropped": self.partitions_dropped,
                "rows_dropped": self.partition_rows_dropped,
            },
            "seconds": round(self.seconds, 3),
        }


class Housekeeper:
    def __init__(
        self, store: Store, settings: Settings, clock: Clock, *, batch: int = BATCH
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self.batch = batch

    async def run_pass(self) -> HousekeepingReport:
        started = time.monotonic()
        report = HousekeepingReport(started_at=self._clock.now_us())
        lock = await self._lock() if self._store.backend == "postgres" else None
        if self._store.backend == "postgres" and lock is None:
            report.skipped = True
            return report
        try:
            await self._pass(lock, report)
        finally:
            if lock is not None:
                await asyncio.to_thread(_unlock, lock)
        report.seconds = time.monotonic() - started
        if report.removed_anything:
            logger.info(
                "housekeeping removed %d events (%d past TTL, %d past retention, %d in "
                "dropped partitions), %d transactions, %d idempotency keys in %.2f s",
                report.removed["events"] + report.partition_rows_dropped.get("events", 0),
                report.expired_events,
                report.retention_events,
                report.partition_rows_dropped.get("events", 0),
                report.removed["transactions"]
                + report.partition_rows_dropped.get("transactions", 0),
                report.removed["idempotency_keys"],
                report.seconds,
            )
        return report

    async def _pass(self, lock: Db | None, report: HousekeepingReport) -> None:
        now = self._clock.now_us()
        retentions = await self._store.read(project_sql.retentions)
        keep_after = longest_kept_from_us(list(retentions.values()), now)
        if lock is not None:
            await self._partitions(lock, now, keep_after, report)
        else:
            keep_after = None  # SQLite: no partitions, every retention goes by rows
        report.expired_events = await self._delete_events(
            lambda db: retention_sql.expired_event_ids(db, now, self.batch), report
        )
        for project_id, retention_days in retentions.items():
            kept = kept_from_us(retention_days, now)
            if kept is None or (keep_after is not None and kept <= keep_after):
                continue  # keeps everything, or no shorter than what the partitions keep
            find = functools.partial(
                retention_sql.event_ids_before,
                project_id=project_id,
                kept_from_id=first_id_at(kept // 1000),
                limit=self.batch,
            )
            report.retention_events += await self._delete_events(find, report)
        await self._drain(
            lambda db: retention_sql.delete_expired_keys(db, now, self.batch),
            report,
            "idempotency_keys",
        )

    async def _partitions(
        self, lock: Db, now: int, keep_after: int | None, report: HousekeepingReport
    ) -> None:
        """PostgreSQL: ranges ahead of now, and the ranges no project keeps dropped whole,
        with the idempotency keys of their events. Which ranges go is decided inside each
        drop's transaction from the retentions read there (`_keep_after_now`), so a
        retention lifted or lengthened during the pass is honoured; `keep_after` (read at
        the start) only says whether to look."""
        days = self._settings.partition_days
        bound = functools.partial(_keep_after_now, now=now) if keep_after is not None else None
        parts = await asyncio.to_thread(housekeep_partitions, lock, now, bound, days=days)
        report.partitions_created = parts.created
        report.partitions_dropped = parts.dropped
        report.partition_rows_dropped = parts.dropped_rows
        report.removed["idempotency_keys"] += parts.keys_deleted

    async def _delete_events(
        self, find: Callable[[Db], list[str]], report: HousekeepingReport
    ) -> int:
        """Find a batch on a reader, delete it in one write; until a batch comes back short."""
        deleted = 0
        while True:
            ids = await self._store.read(find)
            if ids:
                counts = await self._store.write(
                    functools.partial(retention_sql.delete_events, event_ids=ids)
                )
                report.add(counts)
                deleted += counts["events"]
            if len(ids) < self.batch:
                return deleted

    async def _drain(
        self, delete: Callable[[Db], int], report: HousekeepingReport, kind: str
    ) -> None:
        """Run a batch delete in writes of its own until it removes fewer than a batch."""
        while True:
            n = await self._store.write(delete)
            report.removed[kind] += n
            if n < self.batch:
                return

    async def _lock(self) -> Db | None:
        """A connection of its own holding the housekeeping lock, or None when another
        process holds it."""
        return await asyncio.to_thread(_try_lock, self._store.session_url)

    async def run_forever(self, every_seconds: float) -> None:
        """A pass every `every_seconds`; a failed pass is logged and the next one tried."""
        while True:
            await _logged(self.run_pass())
            await asyncio.sleep(every_seconds)


async def _logged(work: Awaitable[HousekeepingReport]) -> None:
    try:
        await work
    except asyncio.CancelledError:
        raise
    except Exception:
        logger.exception("housekeeping pass failed; the next one tries again")


def _keep_after_now(db: Db, now: int) -> int | None:
    """The bound of the longest retention, read in a drop's transaction with the projects
    locked against changes (a `PATCH /v1/project` waits for the drop to commit)."""
    db.execute("LOCK TABLE projects IN SHARE MODE")
    return longest_kept_from_us(list(project_sql.retentions(db).values()), now)


def _try_lock(url: str) -> Db | None:
    db = connect(url, writer=True, role="eventyard-housekeeping")
    try:
        got = bool(db.scalar("SELECT pg_try_advisory_lock(?) AS got", (LOCK_ID,)))
        db.commit()
    except BaseException:
        db.close()
        raise
    if not got:
        db.close()
        return None
    return db


def _unlock(db: Db) -> None:
    with contextlib.suppress(Exception):  # closing the session releases the lock anyway
        db.rollback()
        db.execute("SELECT pg_advisory_unlock(?)", (LOCK_ID,))
        db.commit()
    db.close()
