"""`GET /v1/stats`: exact counts per bucket and trigger, delivery numbers, and isolation.

The clock is frozen 30 seconds into a minute (and into a quarter hour), so every bucket edge
is known: the hour's buckets start 59 minutes before the current minute, the day's 95
quarter hours before the current quarter hour.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from eventyard.api.app import create_app
from eventyard.clock import FrozenClock, format_us
from eventyard.services.container import Services, build_services
from eventyard.settings import Settings
from eventyard.store import Store
from tests.conftest import Api, make_api

pytestmark = pytest.mark.anyio

MINUTE = 60_000_000
T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z: a whole minute and quarter hour
NOW = T0 + 30_000_000


@dataclass
class World:
    api: Api
    other: Api
    services: Services
    clock: FrozenClock


@pytest.fixture
async def world(store: Store, settings: Settings) -> AsyncIterator[World]:
    clock = FrozenClock(NOW)
    services = build_services(store, settings, clock)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://eventyard.test") as c:
        api = await make_api(c, services, "acme")
        other = await make_api(c, services, "globex")
        yield World(api, other, services, clock)


async def send_at(api: Api, trigger: str, at_us: int, key: str | None = None) -> None:
    sent = await api.send(trigger, "u1", key=key, timestamp=format_us(at_us))
    assert sent.status_code == 201, sent.text


async def stats(api: Api, window: str = "hour", key: str | None = None) -> dict[str, Any]:
    got = await api.get("/v1/stats", key=key, params={"window": window})
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


def series(body: dict[str, Any]) -> dict[str, dict[int, int]]:
    """Per trigger, its non-zero buckets by index."""
    return {s["trigger"]: {i: n for i, n in enumerate(s["counts"]) if n} for s in body["triggers"]}


async def test_the_hour_counts_events_per_minute_and_trigger(world: World) -> None:
    api = world.api
    await send_at(api, "signup", T0 + 10_000_000)  # the current minute: bucket 59
    await send_at(api, "signup", T0 + 29_000_000)
    await send_at(api, "signup", T0 - 1)  # the last microsecond of the minute before: 58
    await send_at(api, "order", T0 - 59 * MINUTE)  # the window's first instant: bucket 0
    await send_at(api, "order", T0 - 59 * MINUTE - 1)  # just before the window
    await send_at(api, "order", T0 + MINUTE)  # after the current minute: not yet
    sent = await api.send("order", "u2")  # no timestamp: event time is now, bucket 59
    assert sent.status_code == 201

    body = await stats(api)

    assert body["window"] == "hour"
    assert body["bucket_seconds"] == 60
    assert len(body["buckets"]) == 60
    assert body["buckets"][0] == body["start"] == format_us(T0 - 59 * MINUTE)
    assert body["buckets"][-1] == format_us(T0)
    assert body["end"] == format_us(T0 + MINUTE)
    assert body["generated_at"] == format_us(NOW)
    assert series(body) == {"signup": {58: 1, 59: 2}, "order": {0: 1, 59: 1}}
    assert [(s["trigger"], s["total"]) for s in body["triggers"]] == [("signup", 3), ("order", 2)]
    signup = body["triggers"][0]
    assert signup["name"] == "signup"
    assert signup["counts"] == signup["events_per_minute"]  # one-minute buckets: the same
    totals = body["totals"]
    assert totals["total"] == 5
    assert {i: n for i, n in enumerate(totals["counts"]) if n} == {0: 1, 58: 1, 59: 3}


async def test_the_day_counts_quarter_hours_and_averages_per_minute(world: World) -> None:
    api = world.api
    first = T0 - 95 * 15 * MINUTE  # the day window's first instant
    await send_at(api, "signup", first)
    await send_at(api, "signup", first - 1)  # outside
    for second in (0, 1, 2):  # the current quarter hour
        await send_at(api, "signup", T0 + second * 1_000_000)
    await send_at(api, "order", T0 - 1)  # the quarter hour before: bucket 94
    await send_at(api, "order", T0 - 15 * MINUTE)  # its first instant: also 94

    body = await stats(api, "day")

    assert body["window"] == "day"
    assert body["bucket_seconds"] == 900
    assert len(body["buckets"]) == 96
    assert body["start"] == format_us(first)
    assert series(body) == {"signup": {0: 1, 95: 3}, "order": {94: 2}}
    signup = body["triggers"][0]
    assert signup["events_per_minute"][95] == 0.2  # 3 events over 15 minutes
    assert signup["events_per_minute"][0] == round(1 / 15, 2)
    assert body["totals"]["total"] == 6
    # The hour sees the last 60 minutes of them, a minute to a bucket.
    assert series(await stats(api, "hour")) == {"signup": {59: 3}, "order": {44: 1, 58: 1}}


async def test_an_empty_project_has_zeroes(world: World) -> None:
    body = await stats(world.api)
    assert body["triggers"] == []
    assert body["totals"] == {"counts": [0] * 60, "events_per_minute": [0.0] * 60, "total": 0}
    assert body["consumers"] == []
    assert (body["pending_backlog"], body["failing_deliveries"]) == (0, 0)
    assert body["oldest_pending_at"] is None


async def test_consumer_backlog_success_rate_and_failing_deliveries(world: World) -> None:
    api, clock = world.api, world.clock
    made = await api.post("/v1/consumers", {"name": "warehouse", "kind": "pull"})
    assert made.status_code == 201, made.text
    consumer = made.json()["id"]
    first_pending_at = clock.now_us()
    for _ in range(5):
        await api.send("signup")
    clock.advance(5)
    claimed = await api.post(f"/v1/consumers/{consumer}/claim", {"limit": 3})
    done, bad, _busy = (t["id"] for t in claimed.json()["data"])
    for txn, state in ((done, "finished"), (bad, "failed")):
        reported = await api.client.patch(
            f"/v1/transactions/{txn}", json={"state": state}, headers=api.auth()
        )
        assert reported.status_code == 200, reported.text
    clock.advance(115)

    body = await stats(api)

    assert body["pending_backlog"] == 3  # two still pending and one being processed
    assert body["failing_deliveries"] == 1
    assert body["oldest_pending_at"] == format_us(first_pending_at)
    [row] = body["consumers"]
    assert row == {
        "consumer": consumer,
        "name": "warehouse",
        "kind": "pull",
        "state": "enabled",
        "pending": 3,
        "oldest_pending_at": format_us(first_pending_at),
        "oldest_pending_age_seconds": 120,
        "attempts": 0,
        "failures": 1,
        "failing_deliveries": 1,
        "success_rate": 0.5,
    }
    # An hour later the outcomes have left the window; the backlog has not.
    clock.advance(3600)
    later = await stats(api)
    assert (later["pending_backlog"], later["failing_deliveries"]) == (3, 0)
    assert later["consumers"][0]["success_rate"] is None
    # The day still holds them.
    day = await stats(api, "day")
    assert (day["failing_deliveries"], day["consumers"][0]["success_rate"]) == (1, 0.5)


async def test_a_key_sees_only_its_project_and_environment(world: World) -> None:
    api = world.api
    await api.post("/v1/consumers", {"name": "test puller", "kind": "pull"})
    await send_at(api, "secret_trigger", NOW)
    assert (await stats(api))["totals"]["total"] == 1

    for key, who in (
        (api.live_key, world.api),
        (world.other.test_key, world.other),
        (world.other.live_key, world.other),
    ):
        body = await stats(who, key=key)
        assert body["triggers"] == []
        assert body["totals"]["total"] == 0
        assert body["consumers"] == []
        assert body["pending_backlog"] == 0
        assert "secret_trigger" not in str(body)


@pytest.mark.parametrize("query", [{"window": "week"}, {"window": "HOUR"}, {"window": "1h"}])
async def test_an_unknown_window_is_refused_with_the_choices(
    world: World, query: dict[str, str]
) -> None:
    got = await world.api.get("/v1/stats", params=query)
    assert got.status_code == 400
    problem = got.json()
    assert problem["code"] == "invalid_request"
    assert "window must be one of: hour, day" in problem["message"]
    assert repr(query["window"]) in problem["message"]


async def test_unknown_parameters_are_refused_and_hour_is_the_default(world: World) -> None:
    got = await world.api.get("/v1/stats", params={"windows": "day"})
    assert got.status_code == 400
    assert "'windows'" in got.json()["message"]
    plain = await world.api.get("/v1/stats")
    assert plain.status_code == 200
    assert plain.json()["window"] == "hour"


async def test_a_read_key_may_read_stats(world: World) -> None:
    made = await world.api.post("/v1/keys", {"scopes": ["read"], "name": "reader"})
    assert made.status_code == 201, made.text
    body = await stats(world.api, key=made.json()["key"])
    assert body["window"] == "hour"
