"""Time partitions on PostgreSQL: ranges made ahead of time, and old ranges dropped whole.

Migration 0008 makes `events`, `transactions`, `transaction_history` and
`delivery_attempts` range-partitioned by the event's time, read from ids: events by `id`,
transactions by `event_id`, history and attempts by `transaction_id` (a transaction's id
carries its event's millisecond, `ids.new_id_at`). A *range* is a span of milliseconds
`[start, end)` that has one partition in each of the four tables, named for its first day
(`events_p20261205`); dropping a range drops its events with everything that hangs off them,
in one transaction, without deleting a row. Ranges are aligned to whole multiples of the
interval (`partition_days`) since the epoch, so every process computes the same ones; a
range already there is kept as it is when the interval changes, and a new one only fills
the gap it leaves.

Each table also has a DEFAULT partition, for a row no range holds (a clock far off, or
housekeeping stopped long enough for time to pass the ranges made ahead). Creating a range
moves the default's rows that belong in it, in the same transaction, so creation never
fails on them. The upgrade from 0007 copies the old rows into the defaults; the first
`ensure_partitions` (at start-up) moves them all out into ranges of their own, in one
transaction, so they too are dropped by range when their time comes.

Ranges are made only ahead of now and where rows are: a year of events without retention
is 52 ranges at the default 7 days. Every range adds to the statements that cannot tell
their partitions before they run (a claim's search for due transactions, the newest page of
events): bench/partitions.py measured them at 12, 60 and 400 ranges.

Dropping a range locks its tables whole (ACCESS EXCLUSIVE on each parent), and making one
locks the DEFAULT partitions so: briefly, but every query of the table queues behind a lock
that waits. So a pass waits at most LOCK_TIMEOUT for its locks (a long query holding the
table makes it give up, log it and try again at the next pass): at worst, reads and writes
of events stall that long, once a range. On SQLite every function is a no-op.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import psycopg
from psycopg import pq

from eventyard import ids
from eventyard.store.db import Db

logger = logging.getLogger("eventyard.store.partitions")

DEFAULT_PARTITION_DAYS = 7
DAY_MS = 86_400_000
RANGES_AHEAD = 2  # ranges made past the one holding now
LOCK_TIMEOUT = "1s"  # see the module docstring: a brief stall at worst
_PG_LOCK_ID = 7_303_755_008

# (table, partition key column, prefix of the ids in that column)
TABLES: tuple[tuple[str, str, str], ...] = (
    ("events", "id", "evt"),
    ("transactions", "event_id", "evt"),
    ("transaction_history", "transaction_id", "txn"),
    ("delivery_attempts", "transaction_id", "txn"),
)
_INDEX_DEF = re.compile(r"(CREATE (?:UNIQUE )?INDEX) \S+ ON ONLY \S+ (USING .*)")
_BOUND = re.compile(r"FOR VALUES FROM \('([a-z]+_[0-9A-Z]+)'\) TO \('([a-z]+_[0-9A-Z]+)'\)")


@dataclass(frozen=True)
class Partition:
    table: str
    name: str
    start_ms: int
    end_ms: int


@dataclass
class PartitionReport:
    """What one pass did: partitions created and dropped (by name), rows moved out of the
    DEFAULT partitions, and rows dropped per table."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    moved_rows: int = 0
    dropped_rows: dict[str, int] = field(default_factory=dict)

    @property
    def events_dropped(self) -> int:
        return self.dropped_rows.get("events", 0)


def range_of(ms: int, days: int) -> tuple[int, int]:
    """The aligned range `[start, end)` holding millisecond `ms`."""
    span = days * DAY_MS
    start = ms // span * span
    return start, start + span


def partition_name(table: str, start_ms: int) -> str:
    day = dt.datetime.fromtimestamp(start_ms / 1000, tz=dt.UTC)
    return f"{table}_p{day:%Y%m%d}"


def list_partitions(db: Db) -> list[Partition]:
    """Every range partition of the four tables (not the DEFAULT ones), oldest first."""
    if db.backend != "postgres":
        return []
    rows = db.all(
        "SELECT parent.relname AS parent, child.relname AS child,"
        " pg_get_expr(child.relpartbound, child.oid) AS bound"
        " FROM pg_inherits i JOIN pg_class parent ON parent.oid = i.inhparent"
        " JOIN pg_class child ON child.oid = i.inhrelid"
        " WHERE parent.relnamespace = current_schema()::regnamespace"
        " AND parent.relname IN ('events', 'transactions', 'transaction_history',"
        " 'delivery_attempts')"
    )
    found = []
    for r in rows:
        match = _BOUND.fullmatch(r["bound"])
        if match:
            found.append(
                Partition(r["parent"], r["child"], ids.ms_of(match[1]), ids.ms_of(match[2]))
            )
    return sorted(found, key=lambda p: (p.start_ms, p.table))


def ensure_partitions(
    db: Db, now_ms: int, days: int = DEFAULT_PARTITION_DAYS, report: PartitionReport | None = None
) -> PartitionReport:
    """Make the range holding `now_ms` and `RANGES_AHEAD` after it, and a range for every
    row in a DEFAULT partition (moving it there); one transaction per range (see
    `_range_transaction`)."""
    report = report if report is not None else PartitionReport()
    if db.backend != "postgres":
        return report
    own = _idle(db)
    start, _ = range_of(now_ms, days)
    wanted = [range_of(start + i * days * DAY_MS, days) for i in range(RANGES_AHEAD + 1)]
    with contextlib.suppress(_Busy):
        while True:
            with _range_transaction(db, own) as locked:
                gaps = _gaps(db, wanted) if locked else []
                if gaps:
                    _create_range(db, *gaps[0], report)
            if not gaps:
                break
        if locked and _lowest_default_ms(db) is not None:
            with _range_transaction(db, own) as locked:
                if locked:
                    _empty_defaults(db, days, report)
        elif own:
            db.rollback()  # end the read's transaction
    return report


def drop_partitions(db: Db, keep_after_ms: int, report: PartitionReport | None = None) -> None:
    """Drop every range that ends at or before `keep_after_ms`, the oldest first, all four
    tables of a range in one transaction."""
    report = report if report is not None else PartitionReport()
    if db.backend != "postgres":
        return
    own = _idle(db)
    while True:
        try:
            with _range_transaction(db, own) as locked:
                old = (
                    [p for p in list_partitions(db) if p.end_ms <= keep_after_ms] if locked else []
                )
                parts = [p for p in old if p.start_ms == old[0].start_ms] if old else []
                counts = {
                    p.name: int(db.scalar(f"SELECT COUNT(*) AS n FROM {p.name}")) for p in parts
                }
                for p in parts:
                    db.execute(f"DROP TABLE {p.name}")
        except _Busy:
            return
        if not parts:
            return
        for p in parts:
            report.dropped.append(p.name)
            report.dropped_rows[p.table] = report.dropped_rows.get(p.table, 0) + counts[p.name]
        logger.info("dropped partitions %s", ", ".join(p.name for p in parts))


def housekeep_partitions(
    db: Db, now_us: int, keep_after_us: int | None, *, days: int = DEFAULT_PARTITION_DAYS
) -> PartitionReport:
    """Make sure ranges exist ahead of `now_us` (see `ensure_partitions`) and drop every
    range whose whole span ends at or before `keep_after_us` (None: drop nothing).
    `days` is the interval of new ranges (the `partition_days` setting)."""
    report = PartitionReport()
    if db.backend != "postgres":
        return report
    ensure_partitions(db, now_us // 1000, days, report)
    if keep_after_us is not None:
        drop_partitions(db, keep_after_us // 1000, report)
    return report


def _idle(db: Db) -> bool:
    return bool(db.conn.info.transaction_status == pq.TransactionStatus.IDLE)


class _Busy(Exception):
    """A table stayed locked past LOCK_TIMEOUT: this pass ends here."""


@contextlib.contextmanager
def _range_transaction(db: Db, own: bool) -> Iterator[bool]:
    """A transaction for one range's change, yielding whether this process holds the
    partitions' lock (when another process's pass holds it, skip: it does the same work).

    On a connection that was idle when the pass began (`own`), each range commits on its
    own; inside a transaction the caller opened (an op of the group-commit writer), the
    changes join it and the caller commits. Either way a busy table gives up after
    LOCK_TIMEOUT rather than queue every writer behind this pass.
    """
    if own:
        db.begin()
    try:
        locked = bool(db.scalar("SELECT pg_try_advisory_xact_lock(?) AS ok", (_PG_LOCK_ID,)))
        if locked:
            db.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        yield locked
        if own:
            db.commit()
    except psycopg.errors.LockNotAvailable:
        if not own:
            raise  # the caller's transaction is spoiled: it must know
        db.rollback()
        logger.warning(
            "partitions: a table stayed busy past %s; trying at the next pass", LOCK_TIMEOUT
        )
        raise _Busy from None
    except BaseException:
        if own:
            db.rollback()
        raise


def _gaps(db: Db, wanted: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """The parts of the wanted spans that no existing range of `events` covers."""
    taken = sorted((p.start_ms, p.end_ms) for p in list_partitions(db) if p.table == "events")
    gaps = []
    for lo, hi in wanted:
        cursor = lo
        for t_lo, t_hi in taken:
            if t_hi <= cursor or t_lo >= hi:
                continue
            if t_lo > cursor:
                gaps.append((cursor, t_lo))
            cursor = max(cursor, t_hi)
        if cursor < hi:
            gaps.append((cursor, hi))
    return gaps


def _lowest_default_ms(db: Db) -> int | None:
    lowest = None
    for table, key, _ in TABLES:
        value = db.scalar(f"SELECT MIN({key}) AS k FROM {table}_default")
        if value is not None:
            ms = ids.ms_of(value)
            lowest = ms if lowest is None else min(lowest, ms)
    return lowest


def _copy_indexes(db: Db, table: str, partition: str, suffix: str) -> None:
    """Give a new partition the parent's indexes, named as the parent's with the range's
    suffix (`events_by_time_p20261205`), so plans name the index they read; ATTACH then
    takes them as the parent's indexes' partitions instead of building its own. Keys are
    left to ATTACH, which makes each with its constraint (`events_p20261205_pkey`)."""
    for r in db.all(
        "SELECT c.relname AS name, pg_get_indexdef(c.oid) AS def FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = ?::regclass"
        # A key's index comes with its constraint, which ATTACH makes.
        " AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conindid = c.oid)",
        (table,),
    ):
        match = _INDEX_DEF.fullmatch(r["def"])
        if match:
            db.execute(f"{match[1]} {r['name']}{suffix} ON {partition} {match[2]}")


def _empty_defaults(db: Db, days: int, report: PartitionReport) -> None:
    """Move every row of the DEFAULT partitions into ranges of their own, in one pass: the
    ranges holding them are made as tables apart and filled, the defaults emptied, and then
    the tables attached (ATTACH checks the default, now empty: it reads it once per range,
    so attaching to a full default — after an upgrade — cost a pass over it per range)."""
    for table, _, _ in TABLES:
        db.execute(f"LOCK TABLE {table}_default IN ACCESS EXCLUSIVE MODE")
    spans: set[tuple[int, int]] = set()
    for table, key, prefix in TABLES:
        floor = ""
        while (value := _min_key(db, table, key, floor)) is not None:
            span = range_of(ids.ms_of(value), days)
            spans.add(span)
            floor = ids.lowest_id_at(prefix, span[1])
    made: list[tuple[str, str, str, str]] = []
    moved = 0
    for span in sorted(spans):
        if _gaps(db, [span]) != [span]:
            # A default row inside an existing range: only if someone attached partitions
            # by hand to some of the four tables and not the others.
            raise RuntimeError(f"a DEFAULT partition holds rows in the range {span} ms")
        for table, key, prefix in TABLES:
            name = partition_name(table, span[0])
            low, high = ids.lowest_id_at(prefix, span[0]), ids.lowest_id_at(prefix, span[1])
            db.execute(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)")
            moved += db.execute(
                f"INSERT INTO {name} SELECT * FROM {table}_default WHERE {key} >= ? AND {key} < ?",
                (low, high),
            ).rowcount
            _copy_indexes(db, table, name, name.removeprefix(table))
            made.append((table, name, low, high))
    for table, _, _ in TABLES:
        db.execute(f"TRUNCATE {table}_default")
    for table, name, low, high in made:
        db.execute(
            f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{low}') TO ('{high}')"
        )
    report.created.extend(name for _, name, _, _ in made)
    report.moved_rows += moved
    logger.info("moved %d rows from the DEFAULT partitions into %d new ranges", moved, len(spans))


def _min_key(db: Db, table: str, key: str, floor: str) -> str | None:
    value = db.scalar(f"SELECT MIN({key}) AS k FROM {table}_default WHERE {key} >= ?", (floor,))
    return str(value) if value is not None else None


def _create_range(db: Db, lo: int, hi: int, report: PartitionReport) -> None:
    """Create the range `[lo, hi)` in all four tables, moving in the rows their DEFAULT
    partitions hold for it."""
    made: list[str] = []
    moved = 0
    for table, key, prefix in TABLES:
        name = partition_name(table, lo)
        low, high = ids.lowest_id_at(prefix, lo), ids.lowest_id_at(prefix, hi)
        db.execute(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)")
        _copy_indexes(db, table, name, name.removeprefix(table))
        held = db.one(
            f"SELECT 1 AS x FROM {table}_default WHERE {key} >= ? AND {key} < ? LIMIT 1",
            (low, high),
        )
        if held:
            # The default is locked first so no row lands in this span between the move
            # and the check ATTACH makes of the default.
            db.execute(f"LOCK TABLE {table}_default IN ACCESS EXCLUSIVE MODE")
            moved += db.execute(
                f"WITH m AS (DELETE FROM {table}_default WHERE {key} >= ? AND {key} < ?"
                f" RETURNING *) INSERT INTO {name} SELECT * FROM m",
                (low, high),
            ).rowcount
        db.execute(
            f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{low}') TO ('{high}')"
        )
        made.append(name)
    report.created.extend(made)
    report.moved_rows += moved
    logger.info("created partitions %s (%d rows moved from the defaults)", ", ".join(made), moved)
