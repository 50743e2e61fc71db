"""The delete that retention and erasure share (store/retention.py `delete_events`): an event
with more transactions than one statement may name goes whole, with its transactions'
history and delivery attempts, through a housekeeping pass and through an erasure alike.

PostgreSQL takes at most 65,535 parameters a statement, so the event gets 70,000
transactions there (many consumers, a replay or two: one `IN (…)` of all their ids would be
refused). SQLite's limit is set on the writer's connection to 999 (its limit before 3.32,
and what some builds still use), so 1,200 transactions are past it.

On SQLite, a pass with nothing left to delete reads only the ids that aged past the project's
retention since the last pass, not the project's whole index (the virtual machine's steps
are counted).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

import pytest

from eventyard import ids
from eventyard.services.users import erase_user
from eventyard.store import Store
from eventyard.store import retention as retention_sql
from eventyard.store.connect import connect
from eventyard.store.db import Db
from tests.integration.test_housekeeping import housekeeper, pull_consumer, rows
from tests.integration.test_retention import DAY, World, principal, send, set_retention, world

pytestmark = pytest.mark.anyio
__all__ = ["world"]  # the fixture, imported for this module's tests

SQLITE_LIMIT = 999


def many(store: Store) -> int:
    """Transactions for one event: past what one statement of this backend may name."""
    return 70_000 if store.backend == "postgres" else 1_200


def add_transactions(db: Db, event_id: str, n: int) -> None:
    """`n` transactions of the event (one per consumer), each with a history row and a
    delivery attempt. Their ids carry the event's millisecond, as the server's do."""
    pad = "lpad(i::text, 16, '0')" if db.backend == "postgres" else "printf('%016d', i)"
    head = "txn_" + event_id[4:14]
    db.execute(
        "INSERT INTO transactions (id, project_id, environment, consumer_id, event_id, state,"
        " created_at, updated_at)"
        " WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?)"
        f" SELECT ? || {pad}, e.project_id, e.environment, 'con_' || {pad}, e.id, 'finished',"
        " 0, 0 FROM n, events e WHERE e.id = ?",
        (n, head, event_id),
    )
    db.execute(
        "INSERT INTO transaction_history (transaction_id, enter_state, at, actor)"
        " SELECT id, 'finished', 0, 'test' FROM transactions WHERE event_id = ? AND created_at = 0",
        (event_id,),
    )
    db.execute(
        "INSERT INTO delivery_attempts (transaction_id, attempt, at, duration_ms,"
        " response_excerpt) SELECT id, 1, 0, 1, 'echo' FROM transactions"
        " WHERE event_id = ? AND created_at = 0",
        (event_id,),
    )


def limit_parameters(db: Db) -> None:
    if db.backend == "sqlite":
        conn: sqlite3.Connection = db.conn
        conn.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, SQLITE_LIMIT)


async def left(world: World, event_id: str) -> dict[str, int]:
    txns = "SELECT id FROM transactions WHERE event_id = ?"
    counts: dict[str, Any] = {
        "events": await rows(world, "SELECT COUNT(*) AS n FROM events WHERE id = ?", event_id),
        "transactions": await rows(
            world, "SELECT COUNT(*) AS n FROM transactions WHERE event_id = ?", event_id
        ),
    }
    for table in ("transaction_history", "delivery_attempts"):
        counts[table] = await rows(
            world, f"SELECT COUNT(*) AS n FROM {table} WHERE transaction_id IN ({txns})", event_id
        )
    return counts


async def event_with_many_transactions(world: World, user: str = "u1") -> tuple[str, int]:
    store = world.services.store
    await pull_consumer(world.api)  # one real transaction too
    event_id = await send(world.api, user)
    n = many(store)
    await store.write(lambda db: add_transactions(db, event_id, n))
    await store.write(limit_parameters)  # SQLite: the writer's connection takes 999 at most
    assert (await left(world, event_id))["delivery_attempts"] == n
    return event_id, n + 1


async def test_a_pass_deletes_an_event_with_more_transactions_than_a_statement_takes(
    world: World,
) -> None:
    event_id, n = await event_with_many_transactions(world)
    kept = await send(world.api, "u2")
    world.clock.advance(2 * DAY)
    fresh = await send(world.api, "u3")
    await set_retention(world.api, 1)

    report = await housekeeper(world).run_pass()
    assert report.retention_events == 2
    assert report.removed["transactions"] == n + 1  # and `kept`'s one
    assert report.removed["delivery_attempts"] == n - 1  # the pull consumer's has none
    assert await left(world, event_id) == dict.fromkeys(
        ("events", "transactions", "transaction_history", "delivery_attempts"), 0
    )
    assert (await left(world, kept))["events"] == 0
    assert (await left(world, fresh))["events"] == 1


async def test_an_erasure_deletes_an_event_with_more_transactions_than_a_statement_takes(
    world: World,
) -> None:
    event_id, n = await event_with_many_transactions(world, "victim")
    other = await send(world.api, "keeper")
    services = world.services
    receipt = await erase_user(
        services.store, services.clock, await principal(world, world.api), "victim"
    )
    assert receipt.counts["events"] == 1
    assert receipt.counts["transactions"] == n
    assert receipt.counts["delivery_attempts"] == n - 1
    assert await left(world, event_id) == dict.fromkeys(
        ("events", "transactions", "transaction_history", "delivery_attempts"), 0
    )
    assert (await left(world, other))["transactions"] == 1


def steps(db: Db, work: Any) -> int:
    """How many SQLite virtual-machine instructions (in hundreds) `work(db)` runs."""
    conn: sqlite3.Connection = db.conn
    counted = [0]

    def tick() -> int:
        counted[0] += 1
        return 0

    conn.set_progress_handler(tick, 100)
    try:
        work(db)
    finally:
        conn.set_progress_handler(None, 0)
    return counted[0]


def add_events(url: str, project_id: str, newest_ms: int, n: int) -> None:
    """`n` events of the project received a second apart, up to `newest_ms`."""
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
        conn.executemany(
            "INSERT INTO events (id, project_id, environment, trigger_id, user_id, payload,"
            " timestamp, received_at, source) VALUES (?, ?, 'test', 'signup', 'u', '{}', ?, ?,"
            " 'v1')",
            [
                (ids.new_id_at("evt", ms), project_id, ms * 1000, ms * 1000)
                for ms in range(newest_ms - (n - 1) * 1000, newest_ms + 1, 1000)
            ],
        )
        conn.commit()


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
async def test_on_sqlite_a_pass_with_nothing_to_delete_does_not_read_the_project_index(
    world: World, store_url: str
) -> None:
    project_id = world.api.project_id
    now_ms = world.clock.now_us() // 1000
    add_events(store_url, project_id, now_ms, 50_000)  # the last 14 hours
    bound = ids.first_id_at(now_ms - 30 * DAY * 1000)  # a 30-day retention: nothing to do

    def find(kept_from_id: str) -> Any:
        return lambda db: retention_sql.event_ids_before(db, project_id, kept_from_id, 500)

    with closing(connect(store_url, writer=False)) as db:
        first = steps(db, find(bound))  # nothing known yet: the project's index, whole
        assert first > 100, first
        later = steps(db, find(ids.first_id_at(now_ms - 30 * DAY * 1000 + 60_000)))
        assert later < first / 20, (first, later)
        # A minute of the project's events has aged past a bound: those are found, cheaply.
        aged = ids.first_id_at(now_ms - 50_000 * 1000 + 60_500)
        found: list[str] = []
        cost = steps(db, lambda db: found.extend(find(aged)(db)))
        assert len(found) == 60
        assert cost < first / 20, (first, cost)
