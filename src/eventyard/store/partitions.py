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
that waits. So before any change a pass looks for a transaction open longer than
LOCK_TIMEOUT that holds one of the tables (a long report, or `pg_dump`, which holds every
table for the whole dump): while there is one, the pass changes nothing and says so in the
log, costing traffic nothing, and the next pass looks again. A long query that starts
between that look and the change makes the pass wait LOCK_TIMEOUT at most and give up.
Dropping a range reads none of its rows: the rows it reports are the planner's estimate.

An upgraded database may hold transactions made before 0008 for an older event (a replay, a
consumer added later): their ids carry the time they were made, so their history and
attempts sit in a later range than their event. Dropping a range first deletes those
(found by the transaction ids outside the range, through the primary key), so nothing of
an event outlives it. On SQLite every function is a no-op.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import re
from collections.abc import Callable, Iterable, Iterator
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
COUNT_CAP = 100_000  # rows counted of a range never analysed (see _rows_estimate)

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
    DEFAULT partitions, rows dropped per table (the planner's estimate for a range it has
    analysed, counted for one it has not) and idempotency keys of the dropped events
    deleted. `busy`: a table was held, and the pass left the partitions as they were."""

    created: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    moved_rows: int = 0
    dropped_rows: dict[str, int] = field(default_factory=dict)
    keys_deleted: int = 0
    busy: bool = False

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
    `_range_transaction`), on a connection with no transaction open. Never raises for the
    layout: rows it cannot place stay in the DEFAULT partition, readable, and are logged."""
    report = report if report is not None else PartitionReport()
    if db.backend != "postgres":
        return report
    _require_idle(db)
    start, _ = range_of(now_ms, days)
    wanted = [range_of(start + i * days * DAY_MS, days) for i in range(RANGES_AHEAD + 1)]
    try:
        while True:
            with _range_transaction(db) as locked:
                gaps = _gaps(db, wanted) if locked else []
                if gaps:
                    _create_range(db, *gaps[0], report)
            if not gaps:
                break
        if locked:
            _move_default_rows(db, days, report)
    except _Busy:
        report.busy = True
    return report


def _move_default_rows(db: Db, days: int, report: PartitionReport) -> None:
    """`_empty_defaults` in a transaction of its own; should it fail, the rows stay in the
    DEFAULT partitions, readable, and the start-up or pass goes on (logged)."""
    try:
        with _range_transaction(db) as locked:
            if locked and _lowest_default_ms(db) is not None:
                _empty_defaults(db, days, report)
    except (_Busy, psycopg.errors.OperationalError):
        raise
    except psycopg.Error:
        logger.exception("partitions: rows stay in the DEFAULT partitions")


def drop_partitions(
    db: Db,
    keep_after_ms: int | Callable[[Db], int | None],
    report: PartitionReport | None = None,
) -> None:
    """Drop every range that ends at or before `keep_after_ms`, the oldest first, all four
    tables of a range in one transaction, then the idempotency keys naming its events.

    `keep_after_ms` may be a function of the range's transaction that returns the bound
    (None: drop nothing): the housekeeping pass reads the projects' retentions there, under
    a lock that makes a concurrent change of a retention wait, so a range goes only if the
    retentions at the moment of the drop let it."""
    report = report if report is not None else PartitionReport()
    if db.backend != "postgres":
        return
    _require_idle(db)
    while True:
        try:
            with _range_transaction(db) as locked:
                bound = None
                if locked:
                    bound = keep_after_ms(db) if callable(keep_after_ms) else keep_after_ms
                old = (
                    [p for p in list_partitions(db) if p.end_ms <= bound]
                    if bound is not None
                    else []
                )
                parts = [p for p in old if p.start_ms == old[0].start_ms] if old else []
                rows = {p.name: _rows_estimate(db, p.name) for p in parts}
                extra: dict[str, int] = {}
                if parts:
                    extra = _delete_legacy_children(db, parts[0].start_ms, parts[0].end_ms)
                for p in parts:
                    db.execute(f"DROP TABLE {p.name}")
        except _Busy:
            report.busy = True
            return
        if not parts:
            return
        # The keys of the dropped events, once the drop has committed (never while their
        # events stay), in a transaction of their own: a long delete that holds no table
        # lock a writer waits for, so it never stands between the drop's locks.
        db.begin()
        try:
            keys = _delete_keys(db, parts[0].start_ms, parts[0].end_ms)
            db.commit()
        except BaseException:
            db.rollback()
            raise
        for p in parts:
            report.dropped.append(p.name)
            n = rows[p.name] + extra.get(p.table, 0)
            report.dropped_rows[p.table] = report.dropped_rows.get(p.table, 0) + n
        report.keys_deleted += keys
        logger.info("dropped partitions %s", ", ".join(p.name for p in parts))


def housekeep_partitions(
    db: Db,
    now_us: int,
    keep_after_us: int | Callable[[Db], int | None] | None,
    *,
    days: int = DEFAULT_PARTITION_DAYS,
) -> PartitionReport:
    """Make sure ranges exist ahead of `now_us` (see `ensure_partitions`) and drop every
    range whose whole span ends at or before `keep_after_us` (None: drop nothing; a
    function: the bound read inside each drop's transaction, see `drop_partitions`).
    `days` is the interval of new ranges (the `partition_days` setting)."""
    report = PartitionReport()
    if db.backend != "postgres":
        return report
    ensure_partitions(db, now_us // 1000, days, report)
    if report.busy or keep_after_us is None:
        return report
    if callable(keep_after_us):
        bound_of = keep_after_us

        def keep_after_ms(db: Db) -> int | None:
            us = bound_of(db)
            return None if us is None else us // 1000

        drop_partitions(db, keep_after_ms, report)
    else:
        drop_partitions(db, keep_after_us // 1000, report)
    return report


def _require_idle(db: Db) -> None:
    if db.conn.info.transaction_status != pq.TransactionStatus.IDLE:
        # Each range commits on its own; inside another's transaction the lock timeout
        # would stay in force for the rest of it.
        raise RuntimeError("partitions are changed on a connection with no transaction open")


class _Busy(Exception):
    """A table is held by a long transaction, or stayed locked past LOCK_TIMEOUT: this pass
    leaves the partitions as they are."""


@contextlib.contextmanager
def _range_transaction(db: Db) -> Iterator[bool]:
    """A transaction for one range's change, committed on its own, yielding whether this
    process holds the partitions' lock (when another process's pass holds it, skip: it
    does the same work). A table held by a transaction open past LOCK_TIMEOUT ends the
    pass before any change (`_held_by`); a table that stays locked past LOCK_TIMEOUT
    anyway gives up rather than queue every writer behind this pass."""
    db.begin()
    try:
        locked = bool(db.scalar("SELECT pg_try_advisory_xact_lock(?) AS ok", (_PG_LOCK_ID,)))
        if locked:
            holder = _held_by(db)
            if holder is not None:
                db.rollback()
                logger.warning(
                    "partitions: %s has held the tables for over %s; they are changed at a "
                    "later pass",
                    holder,
                    LOCK_TIMEOUT,
                )
                raise _Busy
            # Below PostgreSQL's deadlock_timeout (half of it, 1 s at most): a writer that
            # holds one of the tables and waits for another this transaction holds (a group
            # with an ingest and a project change, in either order) is never the one the
            # deadlock check cancels; this pass gives up first and tries again later.
            db.execute(
                "SELECT set_config('lock_timeout', LEAST(1000, (EXTRACT(EPOCH FROM"
                " current_setting('deadlock_timeout')::interval) * 500)::int)::text || 'ms',"
                " true)"
            )
        yield locked
        db.commit()
    except psycopg.errors.LockNotAvailable:
        db.rollback()
        logger.warning(
            "partitions: a table stayed locked past the pass's lock wait (half of "
            "deadlock_timeout); trying at the next pass"
        )
        raise _Busy from None
    except BaseException:
        db.rollback()
        raise


def _held_by(db: Db) -> str | None:
    """Another session whose transaction, open longer than LOCK_TIMEOUT, holds a lock on
    one of the four tables or their partitions (`pg_dump` does, for the whole dump): its
    application name and pid, or None. A session of another role whose start is hidden
    from this one counts as short."""
    row = db.one(
        "SELECT a.pid, a.application_name AS app FROM pg_locks l"
        " JOIN pg_stat_activity a ON a.pid = l.pid"
        " WHERE l.locktype = 'relation' AND l.granted AND l.pid <> pg_backend_pid()"
        " AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())"
        f" AND a.xact_start < clock_timestamp() - interval '{LOCK_TIMEOUT}'"
        " AND l.relation IN (SELECT oid FROM pg_class WHERE relname = ANY(?)"
        " AND relnamespace = current_schema()::regnamespace UNION ALL"
        " SELECT i.inhrelid FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhparent"
        " WHERE c.relname = ANY(?) AND c.relnamespace = current_schema()::regnamespace)"
        " LIMIT 1",
        ([t for t, _, _ in TABLES], [t for t, _, _ in TABLES]),
    )
    return None if row is None else f"{row['app'] or 'a session'} (pid {row['pid']})"


def _rows_estimate(db: Db, name: str) -> int:
    """The rows of a partition about to be dropped, without reading it: the planner's
    estimate once the table was analysed (autovacuum does so soon after it fills), else a
    count of at most COUNT_CAP rows (such a table is small)."""
    estimate = db.scalar("SELECT reltuples AS n FROM pg_class WHERE oid = ?::regclass", (name,))
    if estimate is not None and float(estimate) >= 0:
        return round(float(estimate))
    return int(db.scalar(f"SELECT COUNT(*) AS n FROM (SELECT 1 FROM {name} LIMIT {COUNT_CAP}) c"))


def _delete_legacy_children(db: Db, lo: int, hi: int) -> dict[str, int]:
    """Delete the history and attempts of the range's transactions whose ids lie outside
    it (made before 0008 for an older event: they sit in a later range); rows deleted by
    table. Found through the transactions' primary key: only such rows are read."""
    low, high = ids.lowest_id_at("txn", lo), ids.lowest_id_at("txn", hi)
    outside = f"SELECT id FROM {partition_name('transactions', lo)} WHERE id < ? OR id >= ?"
    return {
        table: db.execute(f"DELETE FROM {table} WHERE {key} IN ({outside})", (low, high)).rowcount
        for table, key, prefix in TABLES
        if prefix == "txn"
    }


def _delete_keys(db: Db, lo: int, hi: int) -> int:
    """Delete the idempotency keys naming the range's events (index idempotency_keys_event):
    no key outlives its event, and none goes while its event stays."""
    return int(
        db.execute(
            "DELETE FROM idempotency_keys WHERE event_id >= ? AND event_id < ?",
            (ids.lowest_id_at("evt", lo), ids.lowest_id_at("evt", hi)),
        ).rowcount
    )


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
    so attaching to a full default — after an upgrade — cost a pass over it per range).

    A row's range is the aligned span of `days` holding it, less what ranges already there
    cover (made with another `partition_days`): only the gaps are made, as
    `ensure_partitions` does. A row no gap takes (the four tables' ranges differ: attached
    by hand) stays in the default, logged, rather than fail the start-up."""
    for table, _, _ in TABLES:
        db.execute(f"LOCK TABLE {table}_default IN ACCESS EXCLUSIVE MODE")
    spans: set[tuple[int, int]] = set()
    for table, key, prefix in TABLES:
        floor = ""
        while (value := _min_key(db, table, key, floor)) is not None:
            span = range_of(ids.ms_of(value), days)
            spans.add(span)
            floor = ids.lowest_id_at(prefix, span[1])
    pieces = sorted({gap for span in spans for gap in _gaps(db, [span])})
    made: list[tuple[str, str, str, str]] = []
    moved: dict[str, int] = dict.fromkeys((t for t, _, _ in TABLES), 0)
    for lo, hi in pieces:
        for table, key, prefix in TABLES:
            name = partition_name(table, lo)
            low, high = ids.lowest_id_at(prefix, lo), ids.lowest_id_at(prefix, hi)
            db.execute(f"CREATE TABLE {name} (LIKE {table} INCLUDING DEFAULTS)")
            moved[table] += db.execute(
                f"INSERT INTO {name} SELECT * FROM {table}_default WHERE {key} >= ? AND {key} < ?",
                (low, high),
            ).rowcount
            _copy_indexes(db, table, name, name.removeprefix(table))
            made.append((table, name, low, high))
    for table, key, _ in TABLES:
        held = int(db.scalar(f"SELECT COUNT(*) AS n FROM {table}_default"))
        if held == moved[table]:
            db.execute(f"TRUNCATE {table}_default")
            continue
        logger.warning(
            "%d rows of %s_default lie in no range this server can make (the four tables'"
            " ranges differ); they stay there, readable",
            held - moved[table],
            table,
        )
        for t, _, low, high in made:
            if t == table:
                db.execute(
                    f"DELETE FROM {table}_default WHERE {key} >= ? AND {key} < ?", (low, high)
                )
    for table, name, low, high in made:
        db.execute(
            f"ALTER TABLE {table} ATTACH PARTITION {name} FOR VALUES FROM ('{low}') TO ('{high}')"
        )
    report.created.extend(name for _, name, _, _ in made)
    report.moved_rows += sum(moved.values())
    logger.info(
        "moved %d rows from the DEFAULT partitions into %d new ranges",
        sum(moved.values()),
        len(pieces),
    )


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
