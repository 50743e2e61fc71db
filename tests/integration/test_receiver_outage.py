"""Receiver outages and slow receivers: nothing is lost, and no consumer waits for another.

A webhook receiver down for most of a day (on a frozen clock, walked from one due attempt to
the next) gets every event once it is back, each event's attempts spaced by the default
schedule (at once, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h, within the ±10 % jitter)
whenever it was sent during the outage. One down past the whole schedule has its
transactions failed, the consumer still enabled, and gets them all by a replay. And with a
real `eventyard serve` process delivering, a fast consumer's lag stays small while two other
consumers' receivers hang or answer slowly: the lag is measured before and while they do.
Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest

from eventyard.settings import Settings
from eventyard.store import Store
from tests.e2e.server import ServerProcess, init_project
from tests.integration.delivery_fixtures import (
    DEFAULT_SCHEDULE,
    PAST_JITTER,
    World,
    delivered_id,
    open_world,
)
from tests.receiver import ReceivedRequest, Receiver, Reply

pytestmark = pytest.mark.anyio

HOUR = 3600
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@pytest.fixture
async def world(store: Store, settings: Settings) -> AsyncIterator[World]:
    async with open_world(store, settings) as w:
        yield w


def _us(text: str) -> int:
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(microseconds=1)


async def test_a_receiver_down_most_of_a_day_gets_everything_on_the_schedule(
    world: World,
) -> None:
    async with Receiver() as receiver:
        hook = await world.hook(receiver.url("/hook"))
        await receiver.stop()
        start = world.frozen.now_us()
        # Four events as it goes down, four an hour in, four six hours in; back after 20 h.
        batches = {0: 4, 1 * HOUR: 4, 6 * HOUR: 4}
        back_at = start + 20 * HOUR * 1_000_000
        events: list[str] = []
        while True:
            now = world.frozen.now_us()
            for offset in [o for o in batches if start + o * 1_000_000 <= now]:
                for i in range(batches.pop(offset)):
                    events.append(await world.send(user_id=f"at{offset}-{i}", payload={"i": i}))
                assert await world.deliver() >= 1  # each new event is tried at once
            if not receiver.running and now >= back_at:
                await receiver.start()
            stops = [start + o * 1_000_000 for o in batches]
            if not receiver.running:
                stops.append(back_at)
            nothing_due = await _walk_to_next_attempt_before(
                world, hook["id"], events, min(stops, default=None)
            )
            if nothing_due and not batches and receiver.running:
                break

        assert len(events) == 12
        assert len(receiver.requests) == 12  # each event once, on the attempt after 20 h
        assert sorted(delivered_id(r) for r in receiver.requests) == sorted(events)
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 12
        consumer = await world.consumer(hook["id"])
        assert consumer["state"] == "enabled"
        assert consumer["failing_since"] is None
        for event_id in events:
            event = await world.event(event_id)
            txn = await world.transaction(hook["id"], event_id)
            assert txn["state"] == "finished"
            attempts = txn["delivery_attempts"]
            *refused, delivered = attempts
            assert all(a["error"] == "connection refused" for a in refused), attempts
            assert delivered["status_code"] == 200
            assert _us(delivered["at"]) >= back_at
            assert 6 <= len(attempts) <= 8, (event_id, len(attempts))
            times = [_us(event["received_at"])] + [_us(a["at"]) for a in attempts]
            # sent → first attempt (at once), then each gap as the schedule says
            for planned, (before, after) in zip(DEFAULT_SCHEDULE, pairwise(times), strict=False):
                gap = (after - before) / 1e6
                assert planned * 0.9 - 0.01 <= gap <= planned * 1.1 + 0.01, (gap, planned)


async def _walk_to_next_attempt_before(
    world: World, hook_id: str, events: list[str], stop_at: int | None
) -> bool:
    """Move the clock to the next due attempt and make it, unless `stop_at` comes first:
    then move the clock there. True when no attempt is pending at all."""
    due = []
    for event_id in events:
        txn = await world.transaction(hook_id, event_id)
        if txn["state"] == "pending" and txn["next_attempt_at"] is not None:
            due.append(_us(txn["next_attempt_at"]))
    now = world.frozen.now_us()
    target = min(due, default=None)
    if stop_at is not None and (target is None or target > stop_at):
        if stop_at > now:
            world.frozen.advance((stop_at - now) / 1e6)
        return target is None
    if target is None:
        return True
    world.frozen.advance(max(0, target - now) / 1e6 + 0.001)
    assert await world.deliver() >= 1
    return False


async def test_a_receiver_down_past_the_whole_schedule_gets_everything_by_replay(
    world: World,
) -> None:
    async with Receiver() as receiver:
        hook = await world.hook(receiver.url("/hook"))
        await receiver.stop()
        events = [await world.send(user_id=f"u{i}") for i in range(10)]
        since = (await world.event(events[0]))["timestamp"]
        assert await world.deliver() == 10
        for delay in DEFAULT_SCHEDULE[1:]:  # some 37 hours
            assert await world.advance(delay * PAST_JITTER) == 10
        assert await world.advance(7 * 24 * HOUR) == 0  # the schedule has run out
        for event_id in events:
            txn = await world.transaction(hook["id"], event_id)
            assert txn["state"] == "failed"
            assert txn["attempts"] == 8
        assert (await world.consumer(hook["id"]))["state"] == "enabled"

        await receiver.start()
        path = f"/v1/consumers/{hook['id']}/replay"
        replayed = await world.api.post(path, {"since": since, "only_failed": True})
        assert replayed.status_code == 200, replayed.text
        assert replayed.json() == {"requeued": 10, "created": 0}
        assert await world.deliver() == 10
        assert sorted(delivered_id(r) for r in receiver.requests) == sorted(events)
        for event_id in events:
            assert (await world.transaction(hook["id"], event_id))["state"] == "finished"


# --- slow receivers, with a real server delivering ---------------------------------------------

PACE = 0.05  # seconds between events: 20 a second


def _lags(sent_at: dict[str, float], arrived: list[ReceivedRequest]) -> list[float]:
    return [r.monotonic - sent_at[delivered_id(r)] for r in arrived]


async def _send_paced(client: httpx.AsyncClient, n: int, tag: str) -> dict[str, float]:
    """Send n events PACE apart; when each was sent (monotonic), by event id."""
    sent_at: dict[str, float] = {}
    for i in range(n):
        started = time.monotonic()
        sent = await client.post("/v1/events", json={"trigger": "paced", "user_id": f"{tag}{i}"})
        assert sent.status_code == 201, sent.text
        sent_at[sent.json()["id"]] = started
        await _sleep_until(started + PACE)
    return sent_at


async def _sleep_until(deadline: float) -> None:
    import anyio

    await anyio.sleep(max(0.0, deadline - time.monotonic()))


async def _consumer(client: httpx.AsyncClient, name: str, url: str, **fields: Any) -> None:
    body = {"name": name, "kind": "webhook", "url": url, **fields}
    created = await client.post("/v1/consumers", json=body)
    assert created.status_code == 201, created.text


async def test_a_hanging_and_a_slow_receiver_do_not_hold_back_a_fast_one(
    store_url: str, tmp_path: Path
) -> None:
    key = init_project(store_url)["keys"]["test"]
    env = {
        "EVENTYARD_WEBHOOK_ALLOW_PRIVATE": "true",
        "EVENTYARD_WORKER_CONCURRENCY": "16",
        "EVENTYARD_CONSUMER_CONCURRENCY": "4",  # the two slow ones may hold 8 of 16 slots
    }
    server = ServerProcess(store_url, tmp_path / "server.log", env)
    server.start()
    try:
        async with (
            Receiver() as fast,
            Receiver(default=Reply(hang=True)) as hanging,
            Receiver(default=Reply(delay_seconds=2)) as slow,
            httpx.AsyncClient(
                base_url=server.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
            ) as client,
        ):
            await _consumer(client, "fast", fast.url("/fast"))
            alone = _lags(await _send_paced(client, 20, "alone"), await fast.wait_for(20, 10))

            await _consumer(client, "hanging", hanging.url("/hang"), timeout_seconds=20)
            await _consumer(client, "slow", slow.url("/slow"), timeout_seconds=10)
            sent_at = await _send_paced(client, 60, "beside")
            arrived = (await fast.wait_for(80, within=10))[20:]
            beside = _lags(sent_at, arrived)
            # Meanwhile the hanging receiver holds its four slots, and no more.
            assert len(hanging.requests) == 4
            assert len(slow.requests) >= 4
    finally:
        server.stop()

    assert sorted(delivered_id(r) for r in arrived) == sorted(sent_at)
    median, worst = statistics.median(beside), max(beside)
    print(
        f"fast consumer's lag alone: median {statistics.median(alone) * 1000:.0f} ms, "
        f"max {max(alone) * 1000:.0f} ms; beside a hanging and a slow one: median "
        f"{median * 1000:.0f} ms, max {worst * 1000:.0f} ms"
    )
    # Held back behind the slow ones, events would wait seconds (2 s answers, 20 s hangs).
    assert median < 0.5, f"median lag {median:.2f} s"
    assert worst < 1.5, f"worst lag {worst:.2f} s"
