"""Retention and TTL on reads: an event past its TTL, or received before its project's
retention keeps, is gone from every read the moment that happens — before any housekeeping
pass has removed it from disk — and a project without a retention keeps everything.

Time moves through a `FrozenClock`. Event ids carry the time they were made (their
milliseconds are what retention and the PostgreSQL partitions go by), so the `world` fixture
also makes ids follow that clock: an event "received three days ago" has an id of then.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import httpx
import orjson
import pytest

from eventyard import ids
from eventyard.api.app import create_app
from eventyard.clock import FrozenClock
from eventyard.domain.models import Principal
from eventyard.services.container import Services, build_services
from eventyard.services.live import FeedFilter
from eventyard.settings import Settings
from eventyard.store import Store
from tests.conftest import Api, make_api

pytestmark = pytest.mark.anyio

DAY = 86_400


@dataclass
class World:
    api: Api
    other: Api  # a second project, which keeps its events forever
    services: Services
    clock: FrozenClock


def ids_follow(clock: FrozenClock, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make new ids carry `clock`'s time (ids.py reads `time.time()`); the process's id
    state is put back after the test, so later tests' ids follow the real time again."""
    monkeypatch.setattr(ids, "_last_ms", ids._last_ms)
    monkeypatch.setattr(ids, "_last_random", ids._last_random)
    monkeypatch.setattr(ids, "time", SimpleNamespace(time=lambda: clock.now_us() / 1_000_000))


@pytest.fixture
async def world(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[World]:
    # From now (never behind an id this process made already: ids only go forward).
    clock = FrozenClock(max(time.time_ns() // 1000, (ids._last_ms + 1) * 1000))
    ids_follow(clock, monkeypatch)
    services = build_services(store, settings, clock)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://eventyard.test") as c:
        api = await make_api(c, services, "acme")
        other = await make_api(c, services, "globex")
        yield World(api, other, services, clock)


async def send(api: Api, user: str = "u1", trigger: str = "signup") -> str:
    sent = await api.send(trigger, user)
    assert sent.status_code == 201, sent.text
    event_id: str = sent.json()["id"]
    return event_id


async def emit_with_ttl(api: Api, ttl_ms: int) -> str:
    """Buildable's emit with a `ttl`; the event's id."""
    sent = await api.client.post(
        "/buildable/emit",
        content=orjson.dumps({"event": "signup", "payload": {"userId": "u1"}, "ttl": ttl_ms}),
        headers={"X-Buildable-Secret": api.test_key, "Content-Type": "application/json"},
    )
    assert sent.status_code == 200, sent.text
    page = await api.get("/v1/events", params={"limit": 1})
    event_id: str = page.json()["data"][0]["id"]
    return event_id


async def set_retention(api: Api, days: int | None) -> dict[str, Any]:
    got = await api.client.patch("/v1/project", json={"retention_days": days}, headers=api.auth())
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


async def principal(world: World, api: Api) -> Principal:
    return await world.services.keys.authenticate(api.test_key)


async def every_read(world: World, api: Api) -> dict[str, Any]:
    """What each read path shows of the project: ids listed, ids the buildable query lists,
    counts (a numbered page's total, the day's stats, the dashboard's trigger numbers), and
    the ids a live stream replays from the beginning."""
    listed = await api.get("/v1/events", params={"limit": 1000})
    assert listed.status_code == 200, listed.text
    query = await api.client.post(
        "/buildable/query",
        content=orjson.dumps({"pageSize": 100}),
        headers={"X-Buildable-Secret": api.test_key, "Content-Type": "application/json"},
    )
    assert query.status_code == 200, query.text
    stats = await api.get("/v1/stats", params={"window": "day"})
    assert stats.status_code == 200, stats.text
    who = await principal(world, api)
    activity = await world.services.events.trigger_activity(who)
    return {
        "list": {e["id"] for e in listed.json()["data"]},
        "buildable": {row["_id"] for row in query.json()["rows"]},
        "buildable_total": query.json()["total"],
        "stats": sum(sum(s["counts"]) for s in stats.json()["triggers"]),
        "activity": activity.get("signup", (0, 0))[0],
        "trigger_count": await world.services.events.count_for_trigger(who, "signup"),
        "stream": await replayed(world, who),
    }


async def replayed(world: World, who: Principal) -> set[str]:
    """The ids a live stream resuming from the very first id sends in its first batch."""
    feed = world.services.live.follow(who, FeedFilter(), since_id="evt_" + "0" * 26)
    try:
        batch = await asyncio.wait_for(anext(feed), timeout=5)
    finally:
        await feed.aclose()
    return {e.id for e in batch}


async def shows(api: Api, event_id: str) -> bool:
    got = await api.get(f"/v1/events/{event_id}")
    assert got.status_code in (200, 404), got.text
    return got.status_code == 200


async def test_an_event_past_its_ttl_is_gone_from_every_read_at_once(world: World) -> None:
    api = world.api
    kept = await send(api)
    brief = await emit_with_ttl(api, 60_000)
    before = await every_read(world, api)
    assert before["list"] == before["buildable"] == before["stream"] == {kept, brief}
    assert before["buildable_total"] == before["stats"] == 2
    assert before["activity"] == before["trigger_count"] == 2
    assert await shows(api, brief)

    world.clock.advance(59)
    assert await shows(api, brief)  # not yet
    world.clock.advance(1)  # its ttl is up: no pass has run, the row is still on disk
    after = await every_read(world, api)
    assert after["list"] == after["buildable"] == after["stream"] == {kept}
    assert after["buildable_total"] == after["stats"] == 1
    assert after["activity"] == after["trigger_count"] == 1
    assert not await shows(api, brief)
    assert await shows(api, kept)


async def test_a_retention_hides_older_events_at_once_and_only_in_its_project(
    world: World,
) -> None:
    api, other = world.api, world.other
    old, others_old = await send(api), await send(other)
    world.clock.advance(3 * DAY)
    new, others_new = await send(api), await send(other)

    project = await set_retention(api, 1)
    assert project["retention_days"] == 1
    now = await every_read(world, api)
    assert now["list"] == now["buildable"] == now["stream"] == {new}
    assert now["buildable_total"] == now["activity"] == now["trigger_count"] == 1
    assert not await shows(api, old)
    assert await shows(api, new)
    # The other project keeps everything.
    kept = await every_read(world, other)
    assert kept["list"] == kept["stream"] == {others_old, others_new}
    assert kept["trigger_count"] == 2

    # Hidden, not yet removed: lifting the retention before a pass shows them again.
    assert (await set_retention(api, None))["retention_days"] is None
    assert (await every_read(world, api))["list"] == {old, new}


async def test_retention_counts_from_receipt_not_from_the_event_time(world: World) -> None:
    api = world.api
    await set_retention(api, 1)
    # Sent now with an event time of last year (an import): kept, it was received today.
    backdated = await api.send("signup", "u1", timestamp="2025-01-01T00:00:00Z")
    assert backdated.status_code == 201, backdated.text
    assert await shows(api, backdated.json()["id"])
    world.clock.advance(DAY + 1)
    assert not await shows(api, backdated.json()["id"])


@pytest.mark.parametrize(
    ("value", "shown"),
    [(0, "0"), (36_501, "36501"), (1.5, "1.5"), ("7", "'7'"), (True, "True"), (-1, "-1")],
)
async def test_a_retention_out_of_range_is_refused_naming_the_range(
    world: World, value: object, shown: str
) -> None:
    api = world.api
    got = await api.client.patch("/v1/project", json={"retention_days": value}, headers=api.auth())
    assert got.status_code == 422, got.text
    (error,) = got.json()["errors"]
    assert error["path"] == "$.retention_days"
    assert "from 1 to 36500" in error["message"]
    assert error["message"].endswith(f"got {shown}")
    project = await api.get("/v1/project")
    assert project.json()["retention_days"] is None


async def test_retention_and_mode_are_set_together_and_read_back(world: World) -> None:
    api = world.api
    both = await api.client.patch(
        "/v1/project", json={"mode": "strict", "retention_days": 30.0}, headers=api.auth()
    )
    assert both.status_code == 200, both.text
    assert both.json()["mode"] == "strict"
    assert both.json()["retention_days"] == 30
    read = (await api.get("/v1/project")).json()
    assert (read["mode"], read["retention_days"]) == ("strict", 30)
    # Changing one leaves the other.
    assert (await set_retention(api, 36_500))["mode"] == "strict"
    empty = await api.client.patch("/v1/project", json={}, headers=api.auth())
    assert empty.status_code == 422, empty.text
    assert "mode or retention_days" in empty.text


async def test_a_stream_resumed_from_an_old_id_skips_what_retention_hides(world: World) -> None:
    api = world.api
    old = await send(api)
    world.clock.advance(2 * DAY)
    new = await send(api)
    who = await principal(world, api)
    assert await replayed(world, who) == {old, new}
    await set_retention(api, 1)
    assert await replayed(world, await principal(world, api)) == {new}


async def test_a_key_in_another_environment_sees_the_same_retention(world: World) -> None:
    api = world.api
    old = await send(api)  # test environment
    live_old = await api.send("signup", "u1", key=api.live_key)
    world.clock.advance(2 * DAY)
    await set_retention(api, 1)
    assert not await shows(api, old)
    got = await api.get(f"/v1/events/{live_old.json()['id']}", key=api.live_key)
    assert got.status_code == 404
