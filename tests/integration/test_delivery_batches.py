"""The worker claims deliveries in batches and records attempts in batches: what a user must
not be able to tell from one-at-a-time, and the guards that come with holding leases longer.

A round leases up to sixteen times a consumer's concurrency, but no more attempts than its
concurrency are in flight; results are written together, each with its own attempt, history
and consequence, and the consumer's health follows them in the order they ended. A lease
that waited so long for a slot that it could run out before its attempt is recorded is
handed back unsent, and a stopping worker hands back what it has not started. Every test
runs on SQLite and PostgreSQL against a real receiver on loopback.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eventyard.clock import SystemClock
from eventyard.delivery.notify import Notifier
from eventyard.delivery.presence import WorkerPresence
from eventyard.settings import Settings
from eventyard.store import Store
from eventyard.store import transactions as txn_sql
from eventyard.store.transactions import transactions_of_event
from tests.integration.delivery_fixtures import World, delivered_id, open_world, worker_running
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(store: Store, settings: Settings) -> AsyncIterator[World]:
    async with open_world(store, settings, consumer_concurrency=2) as w:
        yield w


async def leases(world: World, consumer_id: str) -> list[Any]:
    def read(db: Any) -> list[Any]:
        rows = db.all(
            "SELECT lease_expires_at FROM transactions WHERE consumer_id = ? ORDER BY id",
            (consumer_id,),
        )
        return [r["lease_expires_at"] for r in rows]

    return await world.services.store.read(read)


async def test_one_round_claims_a_batch_but_sends_only_the_consumers_concurrency_at_once(
    world: World,
) -> None:
    async with Receiver(default=Reply(hang=True)) as receiver:
        hook = await world.hook(receiver.url("/hook"), timeout_seconds=10)
        for i in range(10):
            await world.send(user_id=f"u{i}")

        assert await world.worker.run_once() == 10  # one claim for all of them
        await receiver.wait_for(2)
        await asyncio.sleep(0.2)
        assert len(receiver.requests) == 2  # consumer_concurrency=2: two in flight, no more
        assert all(lease is not None for lease in await leases(world, hook["id"]))

        await world.worker.stop(grace_seconds=0)
        # The eight it never started are handed back at once, due for any worker; the two
        # in flight keep their leases until those run out.
        held = await leases(world, hook["id"])
        assert sum(1 for lease in held if lease is None) == 8


async def test_attempts_recorded_together_keep_their_own_outcomes_and_history(
    world: World,
) -> None:
    async with Receiver() as receiver:
        # Every other answer fails: one batch carries successes and failures together.
        receiver.enqueue(*[Reply(200) if i % 2 == 0 else Reply(500) for i in range(8)])
        hook = await world.hook(receiver.url("/hook"))
        sent = [await world.send(user_id=f"u{i}") for i in range(8)]

        assert await world.deliver() == 8

        by_event = {delivered_id(r): r for r in receiver.requests}
        assert set(by_event) == set(sent)
        states = []
        for event_id in sent:
            txn = await world.transaction(hook["id"], event_id)
            (attempt,) = txn["delivery_attempts"]
            states.append((txn["state"], txn["attempts"], attempt["status_code"]))
            if txn["state"] == "finished":
                assert attempt["status_code"] == 200
                assert [h["enter_state"] for h in txn["history"]] == ["pending", "finished"]
            else:  # failed once: pending again, for the schedule's next delay
                assert txn["state"] == "pending"
                assert attempt["status_code"] == 500
                assert [h["enter_state"] for h in txn["history"]] == ["pending"]
        assert sorted(s[0] for s in states) == ["finished"] * 4 + ["pending"] * 4
        assert {s[1] for s in states} == {1}


async def test_a_consumer_whose_last_attempt_failed_is_failing_whatever_came_before(
    world: World,
) -> None:
    async with Receiver() as receiver:
        hook = await world.hook(receiver.url("/hook"))
        receiver.enqueue(Reply(200), Reply(200), Reply(500))
        for i in range(3):
            await world.send(user_id=f"u{i}")
        await world.deliver()
        failing = await world.consumer(hook["id"])
        assert failing["failing_since"] is not None

        receiver.enqueue(Reply(500), Reply(200))
        for i in range(2):
            await world.send(user_id=f"v{i}")
        await world.deliver()
        healthy = await world.consumer(hook["id"])
        # The batch ended in a success: healthy again, as if recorded one by one.
        assert healthy["failing_since"] is None


async def test_a_delivery_that_waited_too_long_for_a_slot_is_handed_back_not_sent(
    store: Store, settings: Settings
) -> None:
    async with (
        open_world(store, settings, consumer_concurrency=1) as world,
        Receiver() as receiver,
    ):
        receiver.enqueue(Reply(200, delay_seconds=0.3))
        hook = await world.hook(receiver.url("/hook"), timeout_seconds=1)
        first = await world.send(user_id="u1")
        second = await world.send(user_id="u2")

        assert await world.worker.run_once() == 2  # both leased; one slot: one waits
        await receiver.wait_for(1)
        # While the first is in flight, 15 s pass: the second's lease (1 s timeout + 30 s)
        # no longer leaves the 20 s its attempt and its recording may take.
        world.frozen.advance(15)
        await world.worker.drain()
        assert [delivered_id(r) for r in receiver.requests] == [first]

        # Handed back with the next round, and claimed again by it: sent once, now.
        assert await world.deliver() == 1
        assert [delivered_id(r) for r in receiver.requests] == [first, second]
        txn = await world.transaction(hook["id"], second)
        assert txn["state"] == "finished"
        assert txn["attempts"] == 1


async def test_a_pulse_during_a_round_is_not_slept_through() -> None:
    notifier = Notifier()
    seen = notifier.generation
    notifier.pulse()  # new work arrives while the worker is still looking for work

    assert await asyncio.wait_for(notifier.wait(30, since=seen), 1)
    assert not await notifier.wait(0.01, since=notifier.generation)


async def test_a_separate_worker_on_sqlite_is_woken_by_another_connections_commit(
    tmp_path: Any,
) -> None:
    from eventyard.delivery.notify import SqliteWatcher
    from eventyard.store import open_store

    url = f"sqlite:///{tmp_path}/eventyard.db"
    writer = open_store(url)
    notifier = Notifier()
    notifier.bind(asyncio.get_running_loop())
    watcher = SqliteWatcher(url, notifier)
    watcher.start()
    try:
        await asyncio.sleep(0.05)
        waiting = asyncio.create_task(notifier.wait(30))
        await asyncio.sleep(0.05)
        assert not waiting.done()  # nothing committed: nothing to wake for
        # Another connection (here another Store; in production another process) commits.
        await writer.write(lambda db: db.execute("CREATE TABLE t (x INTEGER)"))
        assert await asyncio.wait_for(waiting, 5)
    finally:
        watcher.stop()
        writer.close()


async def test_a_running_worker_delivers_a_burst_with_batched_claims(
    store: Store, settings: Settings
) -> None:
    async with (
        open_world(store, settings, clock=SystemClock(), consumer_concurrency=4) as world,
        Receiver() as receiver,
    ):
        await world.hook(receiver.url("/hook"))
        sent = [await world.send(user_id=f"u{i}") for i in range(60)]
        async with worker_running(world, grace_seconds=5):
            arrived = await receiver.wait_for(60, within=20)
            assert sorted(delivered_id(r) for r in arrived) == sorted(sent)
            await asyncio.sleep(0.3)
            assert len(receiver.requests) == 60  # none twice


async def test_an_attempt_ending_after_an_operator_closed_its_transaction_changes_nothing(
    world: World,
) -> None:
    async with Receiver(default=Reply(200, delay_seconds=0.3)) as receiver:
        hook = await world.hook(receiver.url("/hook"))
        event_id = await world.send()
        assert await world.worker.run_once() == 1
        await receiver.wait_for(1)  # in flight: the answer comes in 0.3 s
        before = await world.transaction(hook["id"], event_id)
        deleted = await world.api.client.delete(
            f"/v1/consumers/{hook['id']}", headers=world.api.auth()
        )
        assert deleted.status_code == 200, deleted.text
        await world.worker.drain()

        (txn,) = await world.services.store.read(lambda db: transactions_of_event(db, event_id))
        assert txn.state == "failed"  # closed by the deletion, not finished by the attempt
        assert txn.attempts == 0
        assert txn.delivery_attempts == ()
        assert [h.enter_state for h in txn.history] == ["pending", "failed"]
        assert before["state"] == "pending"


async def test_a_consumer_holding_all_the_leases_it_may_does_not_keep_the_worker_busy(
    store: Store, settings: Settings
) -> None:
    # One slot and sixteen leases at most: with 20 due and the endpoint hanging, the worker
    # holds 16 and must sleep until one ends, not go back for the other four in a loop.
    async with (
        open_world(store, settings, clock=SystemClock(), consumer_concurrency=1) as world,
        Receiver(default=Reply(hang=True)) as slow,
    ):
        await world.hook(slow.url("/slow"), timeout_seconds=10)
        for i in range(20):
            await world.send(user_id=f"u{i}")
        async with worker_running(world, grace_seconds=0):
            await slow.wait_for(1)
            cpu = time.process_time()
            await asyncio.sleep(1.5)
            busy = time.process_time() - cpu
            assert busy < 0.3, f"the waiting worker used {busy:.2f} s of CPU in 1.5 s"
            assert len(slow.requests) == 1


async def test_claims_and_records_are_planned_for_the_tables_as_they_are_now(
    world: World,
) -> None:
    """On PostgreSQL the statements that join a batch to `transactions` and `events` are not
    prepared: a prepared statement may keep a generic plan made while the tables were small,
    and go on scanning them whole as they grow (a tenth of the delivery rate at 20,000)."""
    if world.services.store.backend != "postgres":
        pytest.skip("SQLite plans every statement as it runs it")
    async with Receiver() as receiver:
        await world.hook(receiver.url("/hook"))
        for n in range(1, 9):  # more rounds than psycopg's prepare threshold (5)
            await world.send(user_id=f"u{n}")
            assert await world.worker.run_once() == 1
            await receiver.wait_for(n)
            await world.worker.drain()

    def prepared(db: Any) -> list[str]:
        return [r["statement"] for r in db.all("SELECT statement FROM pg_prepared_statements")]

    statements = await world.services.store.write(prepared)
    assert any("INSERT INTO events" in s for s in statements)  # the writer does prepare
    joined = [s for s in statements if "UPDATE transactions" in s and "JOIN" in s]
    assert joined == []


async def test_a_worker_whose_hand_back_fails_does_not_keep_other_workers_out(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker alone at start takes the workers' lock exclusively to give back dead
    workers' leases; if that write fails (a full or read-only disk, the database going
    away), it must still share the lock, or every other worker's start waits forever."""

    def fails(db: Any) -> int:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(txn_sql, "release_all_webhook_leases", fails)
    await world.worker._join_workers()
    other = WorkerPresence(world.services.store.url)
    try:
        assert not other.try_alone()  # the first worker lives
        await asyncio.wait_for(asyncio.to_thread(other.share), timeout=5)
    finally:
        other.leave()
