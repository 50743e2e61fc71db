"""Failed webhook attempts: what is recorded, when the next one comes, when it stops.

A frozen clock walks the schedules (see delivery_fixtures.py): each step first moves to just
before the earliest a jittered delay could end and checks nothing was sent, then to just
after the latest and checks the attempt was made. Every test runs on SQLite and PostgreSQL
against a real receiver on loopback.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from eventyard.clock import format_us
from eventyard.settings import Settings
from eventyard.store import Store
from tests.integration.delivery_fixtures import (
    BEFORE_JITTER,
    DEFAULT_SCHEDULE,
    PAST_JITTER,
    World,
    delivered_id,
    open_world,
)
from tests.receiver import HANG, Receiver, Reply

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(store: Store, settings: Settings) -> AsyncIterator[World]:
    async with open_world(store, settings) as w:
        yield w


async def test_the_default_schedule_makes_eight_attempts_then_fails_for_good(
    world: World,
) -> None:
    answer = b"internal error: " + b"x" * 5000
    async with Receiver(default=Reply(500, body=answer)) as receiver:
        hook = await world.hook(receiver.url("/hook"))
        event_id = await world.send()
        assert await world.deliver() == 1  # at once
        for attempt, delay in enumerate(DEFAULT_SCHEDULE[1:], start=2):
            assert await world.advance(delay * BEFORE_JITTER) == 0, f"attempt {attempt} early"
            assert await world.advance(delay * (PAST_JITTER - BEFORE_JITTER)) == 1, attempt
            txn = await world.transaction(hook["id"], event_id)
            assert txn["attempts"] == attempt
            assert txn["state"] == ("pending" if attempt < 8 else "failed")

        assert await world.advance(30 * 24 * 3600) == 0
        assert len(receiver.requests) == 8
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
        txn = await world.transaction(hook["id"], event_id)
        assert txn["state"] == "failed"
        assert txn["next_attempt_at"] is None
        attempts = txn["delivery_attempts"]
        assert [a["attempt"] for a in attempts] == list(range(1, 9))
        for a in attempts:
            assert a["status_code"] == 500
            assert a["error"] == "HTTP 500"
            assert a["response_excerpt"] == answer[:1024].decode()
            assert isinstance(a["duration_ms"], int)
            assert 0 <= a["duration_ms"] < 5000
        assert [(h["exit_state"], h["enter_state"]) for h in txn["history"]] == [
            (None, "pending"),
            ("pending", "failed"),
        ]
        assert (await world.event(event_id))["processing"]["is_completed"] is True


async def test_a_consumer_retry_schedule_replaces_the_default(world: World) -> None:
    async with Receiver(default=Reply(502)) as receiver:
        hook = await world.hook(receiver.url("/hook"), retry_schedule=[0, 10, 60])
        event_id = await world.send()
        assert await world.deliver() == 1
        assert await world.advance(8) == 0  # the default would have tried again at 5 s
        assert await world.advance(3.2) == 1
        assert await world.advance(50) == 0
        assert await world.advance(17) == 1
        assert await world.advance(7 * 24 * 3600) == 0
        txn = await world.transaction(hook["id"], event_id)
        assert txn["state"] == "failed"
        assert [a["status_code"] for a in txn["delivery_attempts"]] == [502, 502, 502]


async def test_a_schedule_starting_with_a_delay_holds_back_the_first_attempt(
    world: World,
) -> None:
    async with Receiver() as receiver:
        hook = await world.hook(receiver.url("/hook"), retry_schedule=[30, 60])
        event_id = await world.send()
        assert await world.deliver() == 0  # not at once: the schedule starts with 30 s
        assert await world.advance(29) == 0
        assert await world.advance(1.1) == 1
        txn = await world.transaction(hook["id"], event_id)
        assert txn["state"] == "finished"


async def test_retry_after_sets_the_next_attempt(world: World) -> None:
    async with Receiver() as receiver:
        receiver.enqueue(Reply(503, headers={"retry-after": "120"}))
        hook = await world.hook(receiver.url("/hook"))
        event_id = await world.send()
        assert await world.deliver() == 1
        txn = await world.transaction(hook["id"], event_id)
        assert txn["next_attempt_at"] == format_us(world.frozen.now_us() + 120_000_000)
        assert await world.advance(6) == 0  # not on the 5 s of the schedule
        assert await world.advance(113.9) == 0  # not before 120 s
        assert await world.advance(0.2) == 1
        txn = await world.transaction(hook["id"], event_id)
        assert txn["state"] == "finished"
        assert [a["status_code"] for a in txn["delivery_attempts"]] == [503, 200]


async def test_a_timeout_is_a_failed_attempt(world: World) -> None:
    async with Receiver(default=HANG) as receiver:
        hook = await world.hook(receiver.url("/hook"), timeout_seconds=0.5)
        event_id = await world.send()
        assert await world.deliver() == 1
        assert len(receiver.requests) == 1
        txn = await world.transaction(hook["id"], event_id)
        assert txn["state"] == "pending"
        (attempt,) = txn["delivery_attempts"]
        assert attempt["status_code"] is None
        assert "timeout" in attempt["error"]
        assert 400 <= attempt["duration_ms"] < 3000

        receiver.default = Reply(200)
        assert await world.advance(5 * PAST_JITTER) == 1
        assert (await world.transaction(hook["id"], event_id))["state"] == "finished"


async def test_a_refused_connection_is_a_failed_attempt(world: World) -> None:
    async with Receiver() as receiver:
        hook = await world.hook(receiver.url("/hook"))
        await receiver.stop()
        event_id = await world.send()
        assert await world.deliver() == 1
        txn = await world.transaction(hook["id"], event_id)
        assert txn["state"] == "pending"
        (attempt,) = txn["delivery_attempts"]
        assert attempt["status_code"] is None
        assert attempt["error"] == "connection refused"
        consumer = await world.consumer(hook["id"])
        assert consumer["failing_since"] is not None

        await receiver.start()
        assert await world.advance(5 * PAST_JITTER) == 1
        assert (await world.transaction(hook["id"], event_id))["state"] == "finished"
        assert (await world.consumer(hook["id"]))["failing_since"] is None


async def test_410_gone_disables_the_consumer_and_new_events_wait_for_it(world: World) -> None:
    async with Receiver() as receiver:
        receiver.enqueue(Reply(410))
        hook = await world.hook(receiver.url("/hook"))
        first = await world.send(user_id="first")
        assert await world.deliver() == 1
        consumer = await world.consumer(hook["id"])
        assert consumer["state"] == "disabled"
        assert consumer["disabled_reason"] == "gone"

        second = await world.send(user_id="second")
        assert (await world.transaction(hook["id"], second))["state"] == "pending"
        assert await world.advance(3600) == 0
        assert len(receiver.requests) == 1

        assert (await world.api.post(f"/v1/consumers/{hook['id']}/resume")).status_code == 200
        assert await world.deliver() == 2
        assert sorted(delivered_id(r) for r in receiver.requests[1:]) == sorted([first, second])
        for event_id in (first, second):
            assert (await world.transaction(hook["id"], event_id))["state"] == "finished"


async def test_a_consumer_failing_too_long_is_disabled_and_resume_delivers_its_backlog(
    store: Store, settings: Settings
) -> None:
    async with (
        open_world(store, settings, disable_failing_after_seconds=60) as world,
        Receiver(default=Reply(500)) as receiver,
    ):
        hook = await world.hook(receiver.url("/hook"))
        first = await world.send(user_id="first")
        assert await world.deliver() == 1
        assert await world.advance(5 * PAST_JITTER) == 1  # failing for 5.5 s: still enabled
        assert (await world.consumer(hook["id"]))["state"] == "enabled"
        assert await world.advance(300 * PAST_JITTER) == 1  # failing for over 60 s
        consumer = await world.consumer(hook["id"])
        assert consumer["state"] == "disabled"
        assert consumer["disabled_reason"] == "failing"

        backlog = [await world.send(user_id=f"later{i}") for i in range(3)]
        for event_id in backlog:
            assert (await world.transaction(hook["id"], event_id))["state"] == "pending"
        assert await world.advance(24 * 3600) == 0
        assert len(receiver.requests) == 3

        receiver.default = Reply(200)
        resumed = await world.api.post(f"/v1/consumers/{hook['id']}/resume")
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["disabled_reason"] is None
        assert await world.deliver() == 4
        assert sorted(delivered_id(r) for r in receiver.requests[3:]) == sorted([first, *backlog])
        for event_id in (first, *backlog):
            assert (await world.transaction(hook["id"], event_id))["state"] == "finished"


async def test_nothing_is_lost_or_doubled_while_the_receiver_is_down(world: World) -> None:
    async with Receiver() as receiver:
        hook = await world.hook(receiver.url("/hook"))
        await receiver.stop()
        sent = [await world.send(user_id=f"u{i}", payload={"n": i}) for i in range(20)]
        assert await world.deliver() == 20  # at once: all refused
        assert await world.advance(5 * PAST_JITTER) == 20  # 5 s later: refused again

        await receiver.start()
        assert await world.advance(300 * PAST_JITTER) == 20
        assert await world.advance(10 * 24 * 3600) == 0

        assert len(receiver.requests) == 20
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 20
        assert sorted(delivered_id(r) for r in receiver.requests) == sorted(sent)
        for event_id in sent:
            txn = await world.transaction(hook["id"], event_id)
            assert txn["state"] == "finished"
            assert [a["error"] for a in txn["delivery_attempts"]] == [
                "connection refused",
                "connection refused",
                None,
            ]
