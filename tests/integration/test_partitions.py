"""Time partitions on PostgreSQL (store/partitions.py, migration 0008).

A migrated database has the four tables partitioned with ranges ahead of now; a database
upgraded from 0007 keeps every row and has them moved into ranges of their own; dropping a
range takes its events with their transactions, history and attempts and leaves newer ones
whole; a row no range holds waits in the DEFAULT partition, readable, until its range is
made, and making that range moves it rather than fail.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from eventyard import ids
from eventyard.store import Store
from eventyard.store import migrate as migrations
from eventyard.store.connect import connect
from eventyard.store.db import Db
from eventyard.store.partitions import (
    DAY_MS,
    DEFAULT_PARTITION_DAYS,
    RANGES_AHEAD,
    TABLES,
    PartitionReport,
    housekeep_partitions,
    list_partitions,
    partition_name,
    range_of,
)
from eventyard.store.transactions import AttemptRecord, record_attempts, transaction_for
from tests.conftest import Api, empty_pg_database

pytestmark = [pytest.mark.postgres, pytest.mark.anyio]
NOW_MS = time.time_ns() // 1_000_000
OLD_MS = NOW_MS - 40 * DAY_MS


@pytest.fixture
def store_url(pg_url: str) -> str:
    """PostgreSQL only: SQLite has no partitions (every function here is a no-op there)."""
    return pg_url


@pytest.fixture
def empty_pg() -> Iterator[str]:
    """A PostgreSQL database with nothing in it, not even the migrations."""
    with empty_pg_database("eventyard_part") as url:
        yield url


@pytest.fixture
def db(store_url: str) -> Iterator[Db]:
    connection = connect(store_url, writer=True)
    yield connection
    connection.close()


def _where(db: Db, table: str, key: str, value: str) -> str | None:
    """The partition holding the row of `table` whose `key` is `value`, or None."""
    found = db.scalar(
        f"SELECT tableoid::regclass::text AS p FROM {table} WHERE {key} = ?", (value,)
    )
    db.rollback()
    return str(found) if found is not None else None


def _old_event(db: Db, project_id: str, consumer_id: str, ms: int) -> tuple[str, str]:
    """An event received at `ms`, with a transaction, a history row and an attempt, as the
    ingest and the worker write them; (event id, transaction id)."""
    event_id = ids.new_id_at("evt", ms)
    txn_id = ids.new_id_at("txn", ms)
    us = ms * 1000
    db.begin()
    db.execute(
        "INSERT INTO events (id, project_id, environment, trigger_id, user_id, payload,"
        " timestamp, received_at, source) VALUES (?, ?, 'test', 'signup', 'u_old', '{}', ?, ?,"
        " 'api')",
        (event_id, project_id, us, us),
    )
    db.execute(
        "INSERT INTO transactions (id, project_id, environment, consumer_id, event_id, state,"
        " next_attempt_at, created_at, updated_at) VALUES (?, ?, 'test', ?, ?, 'pending', ?, ?, ?)",
        (txn_id, project_id, consumer_id, event_id, us, us, us),
    )
    db.execute(
        "INSERT INTO transaction_history (transaction_id, exit_state, enter_state, at, actor)"
        " VALUES (?, NULL, 'pending', ?, 'test')",
        (txn_id, us),
    )
    txn = transaction_for(db, consumer_id, event_id)
    assert txn is not None
    record_attempts(db, [AttemptRecord(txn, us, 500, 12, "oops", None, "pending", us + 5)])
    db.commit()
    return event_id, txn_id


async def _consumer(api: Api) -> str:
    made = await api.post("/v1/consumers", {"name": "puller", "kind": "pull"})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def _event_40_days_old(api: Api, db: Db) -> tuple[str, str]:
    """(event id, transaction id) of an event received 40 days ago (no range holds it)."""
    return _old_event(db, api.project_id, await _consumer(api), OLD_MS)


def _count(db: Db, table: str, key: str, value: str) -> int:
    n = int(db.scalar(f"SELECT COUNT(*) AS n FROM {table} WHERE {key} = ?", (value,)))
    db.rollback()
    return n


def test_a_migrated_database_is_partitioned_with_ranges_ahead(db: Db) -> None:
    kinds = {
        r["relname"]: r["relkind"]
        for r in db.all(
            "SELECT relname, relkind FROM pg_class WHERE relname IN ('events', 'transactions',"
            " 'transaction_history', 'delivery_attempts', 'idempotency_keys')"
        )
    }
    assert kinds == {
        "events": "p",
        "transactions": "p",
        "transaction_history": "p",
        "delivery_attempts": "p",
        "idempotency_keys": "r",  # its own expiry; ON CONFLICT on its primary key
    }
    parts = list_partitions(db)
    span = DEFAULT_PARTITION_DAYS * DAY_MS
    for table, _, _ in TABLES:
        mine = [p for p in parts if p.table == table]
        assert any(p.start_ms <= NOW_MS < p.end_ms for p in mine), mine
        assert max(p.end_ms for p in mine) >= NOW_MS + RANGES_AHEAD * span, mine
        assert {p.end_ms - p.start_ms for p in mine} == {span}


async def test_new_events_and_what_hangs_off_them_land_in_todays_range(api: Api, db: Db) -> None:
    consumer = await _consumer(api)
    sent = await api.send("signup", "u1")
    assert sent.status_code == 201, sent.text
    event_id = sent.json()["id"]
    claimed = await api.post(f"/v1/consumers/{consumer}/claim", {"limit": 10})
    assert claimed.status_code == 200, claimed.text
    [item] = claimed.json()["data"]
    txn_id = item["transaction"]["id"] if "transaction" in item else item["id"]
    day = range_of(NOW_MS, DEFAULT_PARTITION_DAYS)[0]
    expected = {p.table: p.name for p in list_partitions(db) if p.start_ms == day}
    assert _where(db, "events", "id", event_id) == expected["events"]
    assert _where(db, "transactions", "event_id", event_id) == expected["transactions"]
    assert (
        _where(db, "transaction_history", "transaction_id", txn_id)
        == (expected["transaction_history"])
    )
    read = await api.get(f"/v1/events/{event_id}")
    assert read.status_code == 200
    [txn] = read.json()["transactions"]
    assert [h["enter_state"] for h in txn["history"]] == ["pending", "processing"]


async def test_dropping_a_range_drops_its_events_with_everything_hanging_off_them(
    api: Api, db: Db
) -> None:
    old_event, old_txn = await _event_40_days_old(api, db)
    # No range holds 40 days ago: the rows wait in the DEFAULT partitions, readable.
    assert _where(db, "events", "id", old_event) == "events_default"
    assert (await api.get(f"/v1/events/{old_event}")).status_code == 200
    sent = await api.send("signup", "u_new")
    new_event = sent.json()["id"]

    now_us = NOW_MS * 1000
    report = housekeep_partitions(db, now_us, now_us - 10 * DAY_MS * 1000)

    old_range = range_of(OLD_MS, DEFAULT_PARTITION_DAYS)
    old_names = {partition_name(t, old_range[0]) for t, _, _ in TABLES}
    assert old_names <= set(report.created), report  # made, with the rows moved in...
    assert report.moved_rows == 4
    assert old_names <= set(report.dropped), report  # ...then dropped whole
    assert report.dropped_rows == {
        "events": 1,
        "transactions": 1,
        "transaction_history": 1,
        "delivery_attempts": 1,
    }
    assert (await api.get(f"/v1/events/{old_event}")).status_code == 404
    assert _count(db, "transactions", "event_id", old_event) == 0
    assert _count(db, "transaction_history", "transaction_id", old_txn) == 0
    assert _count(db, "delivery_attempts", "transaction_id", old_txn) == 0
    kept = await api.get(f"/v1/events/{new_event}")
    assert kept.status_code == 200
    [txn] = kept.json()["transactions"]
    assert [h["enter_state"] for h in txn["history"]] == ["pending"]
    # The range holding now, and those ahead, are all still there.
    assert any(p.start_ms <= NOW_MS < p.end_ms for p in list_partitions(db))


async def test_nothing_is_dropped_without_a_limit_nor_a_range_ending_after_it(
    api: Api, db: Db
) -> None:
    old_event, _ = await _event_40_days_old(api, db)
    now_us = NOW_MS * 1000
    assert housekeep_partitions(db, now_us, None).dropped == []
    end = range_of(OLD_MS, DEFAULT_PARTITION_DAYS)[1]
    # A limit inside the range: part of it is to be kept, so all of it is.
    assert housekeep_partitions(db, now_us, (end - 1) * 1000).dropped == []
    assert (await api.get(f"/v1/events/{old_event}")).status_code == 200
    assert housekeep_partitions(db, now_us, end * 1000).dropped_rows["events"] == 1
    assert (await api.get(f"/v1/events/{old_event}")).status_code == 404


async def test_a_range_is_made_even_when_the_default_holds_a_row_in_it(api: Api, db: Db) -> None:
    consumer = await _consumer(api)
    later_ms = NOW_MS + 60 * DAY_MS  # past the ranges made ahead: a clock far off
    event_id, txn_id = _old_event(db, api.project_id, consumer, later_ms)
    assert _where(db, "events", "id", event_id) == "events_default"
    assert _where(db, "delivery_attempts", "transaction_id", txn_id) == (
        "delivery_attempts_default"
    )

    report = housekeep_partitions(db, later_ms * 1000, None)

    start = range_of(later_ms, DEFAULT_PARTITION_DAYS)[0]
    names = {p.table: p.name for p in list_partitions(db) if p.start_ms == start}
    assert set(names.values()) <= set(report.created)
    assert report.moved_rows == 4
    assert _where(db, "events", "id", event_id) == names["events"]
    assert _where(db, "transactions", "event_id", event_id) == names["transactions"]
    assert _where(db, "delivery_attempts", "transaction_id", txn_id) == names["delivery_attempts"]
    for table, _, _ in TABLES:
        assert db.scalar(f"SELECT COUNT(*) AS n FROM {table}_default") == 0
    db.rollback()
    read = await api.get(f"/v1/events/{event_id}")
    assert read.status_code == 200
    [txn] = read.json()["transactions"]
    assert txn["delivery_attempts"][0]["status_code"] == 500


def test_a_new_interval_fills_the_gaps_and_keeps_the_ranges_there(db: Db) -> None:
    before = list_partitions(db)
    db.rollback()  # partitions change on a connection with no transaction open
    last_end = max(p.end_ms for p in before)
    report = housekeep_partitions(db, last_end * 1000, None, days=1)
    after = list_partitions(db)
    events = sorted((p.start_ms, p.end_ms) for p in after if p.table == "events")
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(events)), "ranges overlap"
    assert {p for p in before} <= set(after)  # the weekly ranges stay as they were
    assert {p.end_ms - p.start_ms for p in after if p.name in report.created} == {DAY_MS}
    assert any(p.start_ms <= last_end < p.end_ms for p in after)


def _rows(db: Db) -> dict[str, list[tuple[object, ...]]]:
    out = {}
    for table, key, _ in TABLES:
        rows = db.all(f"SELECT * FROM {table} ORDER BY {key}, 2, 1")
        out[table] = [tuple(sorted(r.items())) for r in rows]
    out["idempotency_keys"] = [
        tuple(sorted(r.items())) for r in db.all("SELECT * FROM idempotency_keys ORDER BY key")
    ]
    db.rollback()
    return out


def _project_and_consumer(db: Db) -> None:
    """Project prj_a with pull consumer con_a, in a database at 0007."""
    db.begin()
    db.execute("INSERT INTO projects (id, name, mode, created_at) VALUES ('prj_a', 'a', 'open', 1)")
    db.execute(
        "INSERT INTO consumers (id, project_id, environment, name, kind, state, created_at,"
        " updated_at) VALUES ('con_a', 'prj_a', 'test', 'c', 'pull', 'active', 1, 1)"
    )
    db.commit()


def test_an_old_database_upgrades_keeping_every_row(empty_pg: str) -> None:
    db = connect(empty_pg, writer=True)
    try:
        assert [m.version for m in migrations.migrate(db, upto=7)] == list(range(1, 8))
        _project_and_consumer(db)
        made = []
        for days_ago in (400, 40, 3, 0):
            ms = NOW_MS - days_ago * DAY_MS
            event_id = ids.new_id_at("evt", ms)
            # Before 0008 a transaction's id carried the time it was made, not its event's.
            txn_id = ids.new_id_at("txn", ms + 2 * DAY_MS)
            us = ms * 1000
            made.append((event_id, txn_id))
            db.begin()
            db.execute(
                "INSERT INTO events (id, project_id, environment, trigger_id, user_id, payload,"
                " timestamp, received_at, idempotency_key, source) VALUES"
                " (?, 'prj_a', 'test', 'signup', ?, '{\"n\":1}', ?, ?, ?, 'api')",
                (event_id, f"u{days_ago}", us, us, f"k{days_ago}"),
            )
            db.execute(
                "INSERT INTO idempotency_keys (project_id, environment, key, event_id, body_hash,"
                " expires_at) VALUES ('prj_a', 'test', ?, ?, 'h', ?)",
                (f"k{days_ago}", event_id, us + 1),
            )
            db.execute(
                "INSERT INTO transactions (id, project_id, environment, consumer_id, event_id,"
                " state, created_at, updated_at) VALUES (?, 'prj_a', 'test', 'con_a', ?,"
                " 'finished', ?, ?)",
                (txn_id, event_id, us, us),
            )
            for state in ("pending", "processing", "finished"):
                db.execute(
                    "INSERT INTO transaction_history (transaction_id, exit_state, enter_state,"
                    " at, actor) VALUES (?, NULL, ?, ?, 'test')",
                    (txn_id, state, us),
                )
            db.execute(
                "INSERT INTO delivery_attempts (transaction_id, attempt, at, status_code,"
                " duration_ms) VALUES (?, 1, ?, 200, 3)",
                (txn_id, us),
            )
            db.commit()
        before = _rows(db)
        last_history = max(dict(r)["id"] for r in before["transaction_history"])
    finally:
        db.close()

    Store(empty_pg).migrate()  # 0008 onwards, then the ranges: as a server's start does

    db = connect(empty_pg, writer=True)
    try:
        assert _rows(db) == before
        for table, _, _ in TABLES:
            assert db.scalar(f"SELECT COUNT(*) AS n FROM {table}_default") == 0, table
        db.rollback()
        for event_id, txn_id in made:
            assert _where(db, "events", "id", event_id) != "events_default"
            txn = transaction_for(db, "con_a", event_id)
            assert txn is not None
            assert txn.id == txn_id
            assert [h.enter_state for h in txn.history] == ["pending", "processing", "finished"]
            assert [a.status_code for a in txn.delivery_attempts] == [200]
            db.rollback()
        # New history rows continue the old numbering.
        db.begin()
        new_id = db.scalar(
            "INSERT INTO transaction_history (transaction_id, enter_state, at, actor)"
            " VALUES (?, 'pending', 1, 'test') RETURNING id",
            (made[-1][1],),
        )
        db.rollback()
        assert new_id > last_history
        # The oldest rows sit in ranges of their own, which retention can drop: the event's,
        # and its transaction's history and attempts by the transaction's (later) time.
        oldest = range_of(NOW_MS - 398 * DAY_MS, DEFAULT_PARTITION_DAYS)
        report = housekeep_partitions(db, NOW_MS * 1000, oldest[1] * 1000)
        assert report.dropped_rows == {
            "events": 1,
            "transactions": 1,
            "transaction_history": 3,
            "delivery_attempts": 1,
        }
    finally:
        db.close()


async def test_a_busy_table_makes_a_pass_give_up_and_the_next_one_drop(
    api: Api, db: Db, store_url: str
) -> None:
    old_event, _ = await _event_40_days_old(api, db)
    now_us = NOW_MS * 1000
    housekeep_partitions(db, now_us, None)  # its range is made
    keep_after_us = now_us - 10 * DAY_MS * 1000
    reader = connect(store_url, writer=True)
    try:
        reader.all("SELECT id FROM events")  # a long read: its transaction stays open
        started = time.monotonic()
        report = housekeep_partitions(db, now_us, keep_after_us)
        assert time.monotonic() - started < 5
        assert report.dropped == []
    finally:
        reader.rollback()
        reader.close()
    assert (await api.get(f"/v1/events/{old_event}")).status_code == 200
    report = housekeep_partitions(db, now_us, keep_after_us)
    assert report.dropped_rows["events"] == 1
    assert (await api.get(f"/v1/events/{old_event}")).status_code == 404


def _add_0007_rows(db: Db, event_ms: int, txn_ms: int, excerpt: str) -> tuple[str, str]:
    """As 0007 stored them: an event at `event_ms` whose transaction was made at `txn_ms`,
    with a history row, an attempt quoting `excerpt` and an idempotency key."""
    event_id, txn_id = ids.new_id_at("evt", event_ms), ids.new_id_at("txn", txn_ms)
    db.begin()
    db.execute(
        "INSERT INTO events (id, project_id, environment, trigger_id, user_id, payload,"
        " timestamp, received_at, idempotency_key, source) VALUES"
        " (?, 'prj_a', 'test', 'signup', 'alice', '{}', ?, ?, ?, 'api')",
        (event_id, event_ms * 1000, event_ms * 1000, f"k-{event_id}"),
    )
    db.execute(
        "INSERT INTO idempotency_keys (project_id, environment, key, event_id, body_hash,"
        " expires_at) VALUES ('prj_a', 'test', ?, ?, 'h', ?)",
        (f"k-{event_id}", event_id, (NOW_MS + 400 * DAY_MS) * 1000),
    )
    db.execute(
        "INSERT INTO transactions (id, project_id, environment, consumer_id, event_id, state,"
        " attempts, created_at, updated_at) VALUES (?, 'prj_a', 'test', 'con_a', ?,"
        " 'finished', 1, ?, ?)",
        (txn_id, event_id, txn_ms * 1000, txn_ms * 1000),
    )
    db.execute(
        "INSERT INTO transaction_history (transaction_id, exit_state, enter_state, at, actor)"
        " VALUES (?, 'pending', 'finished', ?, 'worker')",
        (txn_id, txn_ms * 1000),
    )
    db.execute(
        "INSERT INTO delivery_attempts (transaction_id, attempt, at, status_code, duration_ms,"
        " response_excerpt) VALUES (?, 1, ?, 200, 3, ?)",
        (txn_id, txn_ms * 1000, excerpt),
    )
    db.commit()
    return event_id, txn_id


def test_an_upgraded_replayed_transaction_goes_with_its_events_range(empty_pg: str) -> None:
    """Before 0008 a replay's transaction got an id of the time it was made: its history
    and attempts sit in a later range than its event, and must go when the event's does."""
    db = connect(empty_pg, writer=True)
    try:
        migrations.migrate(db, upto=7)
        _project_and_consumer(db)
        # A 40-day-old event replayed 2 days ago, and an event of 2 days ago.
        replayed, legacy_txn = _add_0007_rows(db, OLD_MS, NOW_MS - 2 * DAY_MS, "alice@x.io")
        recent, recent_txn = _add_0007_rows(db, NOW_MS - 2 * DAY_MS, NOW_MS - 2 * DAY_MS, "bob")
    finally:
        db.close()
    Store(empty_pg).migrate()

    db = connect(empty_pg, writer=True)
    try:
        # The replayed transaction's attempt sits in the range of the newer event's.
        assert _where(db, "delivery_attempts", "transaction_id", legacy_txn) == _where(
            db, "delivery_attempts", "transaction_id", recent_txn
        )
        report = housekeep_partitions(db, NOW_MS * 1000, (NOW_MS - 30 * DAY_MS) * 1000)
        assert partition_name("events", range_of(OLD_MS, DEFAULT_PARTITION_DAYS)[0]) in (
            report.dropped
        )
        assert report.dropped_rows["transaction_history"] == 1
        assert report.dropped_rows["delivery_attempts"] == 1
        assert report.keys_deleted == 1
        assert _count(db, "events", "id", replayed) == 0
        assert _count(db, "transaction_history", "transaction_id", legacy_txn) == 0
        assert _count(db, "delivery_attempts", "transaction_id", legacy_txn) == 0
        assert _count(db, "idempotency_keys", "event_id", replayed) == 0
        excerpts = [r["response_excerpt"] for r in db.all("SELECT * FROM delivery_attempts")]
        db.rollback()
        assert excerpts == ["bob"]  # the newer event's rows are whole
        assert _count(db, "transaction_history", "transaction_id", recent_txn) == 1
        assert _count(db, "idempotency_keys", "event_id", recent) == 1
    finally:
        db.close()


async def test_a_changed_interval_never_fails_a_start_or_a_pass_on_default_rows(
    api: Api, db: Db, store_url: str
) -> None:
    """Weekly ranges stop at T (housekeeping stopped); events after T wait in the DEFAULT
    partition; the server restarts with 30-day ranges, whose span holding them overlaps
    the weekly ranges: only the gap is made, and the rows move into it."""
    consumer = await _consumer(api)
    week, month = 7 * DAY_MS, 30 * DAY_MS
    t = range_of(NOW_MS + 400 * DAY_MS, 7)[1]
    if t % month == 0:
        t += week
    housekeep_partitions(db, (t - 3 * week) * 1000, None, days=7)  # ranges ending at T
    moved = [_old_event(db, api.project_id, consumer, t + k * DAY_MS) for k in (1, 3, 5)]
    assert range_of(t + DAY_MS, 30)[0] < t  # the new span overlaps a weekly range
    assert {_where(db, "events", "id", e) for e, _ in moved} == {"events_default"}

    Store(store_url, partition_days=30).migrate()  # a start-up: before, it failed here
    report = housekeep_partitions(db, NOW_MS * 1000, None, days=30)  # a pass, as well

    assert not report.busy
    for table, _, _ in TABLES:
        assert db.scalar(f"SELECT COUNT(*) AS n FROM {table}_default") == 0, table
    db.rollback()
    gap = (t, range_of(t + DAY_MS, 30)[1])
    parts = list_partitions(db)
    [made] = [p for p in parts if p.table == "events" and (p.start_ms, p.end_ms) == gap]
    for event_id, txn_id in moved:
        assert _where(db, "events", "id", event_id) == made.name
        assert _where(db, "delivery_attempts", "transaction_id", txn_id) == partition_name(
            "delivery_attempts", t
        )
        read = await api.get(f"/v1/events/{event_id}")
        assert read.status_code == 200
    events = sorted((p.start_ms, p.end_ms) for p in parts if p.table == "events")
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(events)), "ranges overlap"


async def test_a_long_transaction_on_the_tables_makes_a_pass_skip_at_once(
    api: Api, db: Db, store_url: str
) -> None:
    """As during a `pg_dump`: a pass neither drops nor waits (no stall of traffic), keys of
    the events it keeps stay, and the pass after the dump drops the range and its keys."""
    old_event, _ = await _event_40_days_old(api, db)
    db.execute(
        "INSERT INTO idempotency_keys (project_id, environment, key, event_id, body_hash,"
        " expires_at) VALUES (?, 'test', 'k-old', ?, 'h', ?)",
        (api.project_id, old_event, (NOW_MS + DAY_MS) * 1000),
    )
    db.commit()
    now_us = NOW_MS * 1000
    housekeep_partitions(db, now_us, None)  # its range is made
    keep_after_us = now_us - 10 * DAY_MS * 1000
    dump = connect(store_url, writer=True)
    try:
        dump.all("SELECT id FROM events LIMIT 1")  # its transaction stays open, as a dump's
        await asyncio.sleep(1.2)  # longer than LOCK_TIMEOUT
        started = time.monotonic()
        report = housekeep_partitions(db, now_us, keep_after_us)
        took = time.monotonic() - started
        assert report.busy
        assert report.dropped == []
        assert took < 0.5, f"the pass waited {took:.2f} s for a lock"
        assert _count(db, "idempotency_keys", "event_id", old_event) == 1
    finally:
        dump.rollback()
        dump.close()
    report = housekeep_partitions(db, now_us, keep_after_us)
    assert report.dropped_rows["events"] == 1
    assert report.keys_deleted == 1
    assert _count(db, "idempotency_keys", "event_id", old_event) == 0


def test_eventyard_housekeep_makes_ranges_of_the_configured_days(empty_pg: str) -> None:
    env = {**os.environ, "EVENTYARD_PARTITION_DAYS": "30", "EVENTYARD_DATABASE_URL": empty_pg}
    done = subprocess.run(
        [sys.executable, "-m", "eventyard", "housekeep"],
        capture_output=True,
        timeout=60,
        check=False,
        env=env,
    )
    assert done.returncode == 0, done.stderr.decode()
    db = connect(empty_pg, writer=True)
    try:
        spans = {p.end_ms - p.start_ms for p in list_partitions(db) if p.table == "events"}
    finally:
        db.close()
    assert spans == {30 * DAY_MS}


def test_a_drop_gives_way_to_a_writer_that_holds_a_table_it_needs(db: Db, store_url: str) -> None:
    """A writer group may insert events and then change a project (or the other way
    round) while a drop holds `projects` and waits for `events`: the drop must give up,
    not the writer (PostgreSQL's deadlock check would cancel one of the two)."""
    from eventyard.services.housekeeping import _keep_after_now

    db.begin()
    db.execute("INSERT INTO projects (id, name, mode, created_at) VALUES ('prj_a', 'a', 'open', 0)")
    db.execute("UPDATE projects SET retention_days = 10 WHERE id = 'prj_a'")
    db.execute(
        "INSERT INTO events (id, project_id, environment, trigger_id, user_id, payload,"
        " timestamp, received_at, source) VALUES (?, 'prj_a', 'test', 's', 'u', '{}', ?, ?, 'api')",
        (ids.new_id_at("evt", OLD_MS), OLD_MS * 1000, OLD_MS * 1000),
    )
    db.commit()
    housekeep_partitions(db, NOW_MS * 1000, None)  # the old range is made
    bound_read = threading.Event()
    outcome: dict[str, PartitionReport] = {}

    def bound(conn: Db) -> int | None:
        kept = _keep_after_now(conn, NOW_MS * 1000)
        bound_read.set()
        time.sleep(0.3)  # the writer takes `events` meanwhile
        return kept

    def housekeep() -> None:
        conn = connect(store_url, writer=True)
        try:
            outcome["report"] = housekeep_partitions(conn, NOW_MS * 1000, bound)
        finally:
            conn.close()

    thread = threading.Thread(target=housekeep)
    thread.start()
    assert bound_read.wait(10)
    writer = connect(store_url, writer=True)
    try:
        writer.begin()
        writer.execute(
            "INSERT INTO events (id, project_id, environment, trigger_id, user_id, payload,"
            " timestamp, received_at, source)"
            " VALUES (?, 'prj_a', 'test', 's', 'u', '{}', ?, ?, 'api')",
            (ids.new_id_at("evt", NOW_MS), NOW_MS * 1000, NOW_MS * 1000),
        )
        writer.execute("UPDATE projects SET retention_days = 30 WHERE id = 'prj_a'")
        writer.commit()  # raised DeadlockDetected when the drop waited as long as the check
    finally:
        writer.close()
    thread.join(20)
    report = outcome["report"]
    assert report.busy is True
    assert report.dropped == []
    assert _count(db, "events", "project_id", "prj_a") == 2
