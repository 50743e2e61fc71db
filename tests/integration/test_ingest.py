"""Sending one event with POST /v1/events: the stored event, idempotency (and its window),
event time, and concurrent sends. The path route, triggers, schemas and erasure are in
test_ingest_routes.py."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from eventyard.api.app import create_app
from eventyard.clock import FrozenClock
from eventyard.services.container import build_services
from eventyard.settings import Settings
from eventyard.store import Store
from tests.conftest import Api, make_api

pytestmark = pytest.mark.anyio

ISO_US = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"


async def listed(api: Api, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/v1/events", key=key, params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


# --- the stored event ----------------------------------------------------------------------


async def test_send_answers_201_with_the_stored_event(api: Api) -> None:
    sent = await api.send(
        "successful_payment",
        "user123",
        payload={"value": 19.99, "currency": "EUR", "items": [1, 2]},
        timestamp="2026-11-23T10:00:00Z",
    )
    assert sent.status_code == 201, sent.text
    assert sent.headers["content-type"].startswith("application/json")
    event = sent.json()
    assert event["id"].startswith("evt_")
    assert event["trigger"] == "successful_payment"
    assert event["user_id"] == "user123"
    assert event["payload"] == {"value": 19.99, "currency": "EUR", "items": [1, 2]}
    assert event["timestamp"] == "2026-11-23T10:00:00.000000Z"
    assert event["received_at"] != event["timestamp"]
    assert re.match(ISO_US, event["received_at"])
    assert event["source"] == "api"
    assert event["environment"] == "test"
    assert event["idempotency_key"] is None

    read = await api.get(f"/v1/events/{event['id']}")
    assert read.status_code == 200
    assert {k: read.json()[k] for k in event} == event  # (it adds its transactions)


async def test_a_live_key_stores_live_events_that_the_test_key_does_not_see(api: Api) -> None:
    sent = await api.send("signup", "u1", key=api.live_key)
    assert sent.status_code == 201
    assert sent.json()["environment"] == "live"
    assert [e["id"] for e in await listed(api, key=api.live_key)] == [sent.json()["id"]]
    assert await listed(api) == []


async def test_payload_may_be_left_out_or_null(api: Api) -> None:
    left_out = await api.send("signup", "u1")
    null = await api.send("signup", "u2", payload=None)
    assert left_out.status_code == 201
    assert null.status_code == 201
    assert left_out.json()["payload"] == {}
    assert null.json()["payload"] == {}


async def test_unicode_and_escaped_nul_in_the_payload_round_trip(api: Api) -> None:
    payload = {"text": "a\u0000b", "k\u0000": 1, "emoji": "🎉", "jp": "日本", "big": 2**63}
    sent = await api.send("signup", "u1", payload=payload)
    assert sent.status_code == 201, sent.text
    assert sent.json()["payload"] == payload
    assert (await listed(api))[0]["payload"] == payload


async def test_user_id_at_the_length_limit_is_accepted(api: Api) -> None:
    long_id = "u" * 256
    sent = await api.send("signup", long_id)
    assert sent.status_code == 201, sent.text
    assert [e["user_id"] for e in await listed(api)] == [long_id]


# --- idempotency ---------------------------------------------------------------------------


async def test_same_body_key_and_body_gives_200_with_the_original(api: Api) -> None:
    first = await api.send("signup", "u1", payload={"plan": "pro"}, idempotency_key="k-1")
    again = await api.send("signup", "u1", payload={"plan": "pro"}, idempotency_key="k-1")
    assert first.status_code == 201
    assert again.status_code == 200, again.text
    assert again.json() == first.json()
    assert first.json()["idempotency_key"] == "k-1"
    assert [e["id"] for e in await listed(api)] == [first.json()["id"]]


async def test_same_header_key_and_body_gives_200_with_the_original(api: Api) -> None:
    body = {"trigger": "signup", "user_id": "u1", "payload": {"plan": "pro"}}
    headers = {"Idempotency-Key": "hdr-1"}
    first = await api.post("/v1/events", body, headers=headers)
    again = await api.post("/v1/events", body, headers=headers)
    assert first.status_code == 201
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["idempotency_key"] == "hdr-1"
    assert len(await listed(api)) == 1


async def test_a_unicode_header_key_is_the_same_key_as_in_the_body(api: Api) -> None:
    key = "commande-é-日本"
    body = {"trigger": "signup", "user_id": "u1", "payload": {"plan": "pro"}}
    first = await api.post(
        "/v1/events",
        body,
        headers={"Idempotency-Key": key.encode()},  # raw UTF-8 bytes
    )
    assert first.status_code == 201, first.text
    assert first.json()["idempotency_key"] == key
    again = await api.post("/v1/events", {**body, "idempotency_key": key})
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]


async def test_one_instant_written_two_ways_is_the_same_body(api: Api) -> None:
    first = await api.send("signup", "u1", timestamp="2026-01-02T03:04:05Z", idempotency_key="k")
    again = await api.send(
        "signup", "u1", timestamp="2026-01-02T05:04:05+02:00", idempotency_key="k"
    )
    assert first.status_code == 201, first.text
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]


async def test_a_repeat_stating_the_time_the_server_gave_the_first_is_the_same_event(
    api: Api,
) -> None:
    # An event sent without a timestamp, exported (with the time it was given) and imported
    # back with its key: the same event, not a reuse of the key for another body.
    first = await api.send("signup", "u1", payload={"plan": "pro"}, idempotency_key="k")
    stored = first.json()
    again = await api.send(
        "signup", "u1", payload={"plan": "pro"}, timestamp=stored["timestamp"], idempotency_key="k"
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == stored["id"]
    # Any other time is still another body.
    other = await api.send(
        "signup",
        "u1",
        payload={"plan": "pro"},
        timestamp="2020-01-01T00:00:00Z",
        idempotency_key="k",
    )
    assert other.status_code == 409, other.text
    # And the repeat of a batch item is recognised the same way.
    batch = await api.post(
        "/v1/events/batch",
        {
            "events": [
                {
                    "trigger": "signup",
                    "user_id": "u1",
                    "payload": {"plan": "pro"},
                    "timestamp": stored["timestamp"],
                    "idempotency_key": "k",
                }
            ]
        },
    )
    assert batch.json()["results"][0]["status"] == "duplicate", batch.text


async def test_a_body_key_and_the_same_header_key_are_one_key(api: Api) -> None:
    first = await api.send("signup", "u1", idempotency_key="k-1")
    again = await api.post(
        "/v1/events", {"trigger": "signup", "user_id": "u1"}, headers={"Idempotency-Key": "k-1"}
    )
    assert again.status_code == 200, again.text
    assert again.json()["id"] == first.json()["id"]


@pytest.mark.parametrize(
    "change",
    [
        {"payload": {"plan": "free"}},
        {"user_id": "u2"},
        {"trigger": "login"},
        {"timestamp": "2026-01-01T00:00:00Z"},
    ],
    ids=["payload", "user", "trigger", "timestamp"],
)
async def test_same_key_with_a_different_body_is_409(api: Api, change: dict[str, Any]) -> None:
    body: dict[str, Any] = {"trigger": "signup", "user_id": "u1", "payload": {"plan": "pro"}}
    first = await api.post("/v1/events", {**body, "idempotency_key": "k-1"})
    clash = await api.post("/v1/events", {**body, **change, "idempotency_key": "k-1"})
    assert clash.status_code == 409, clash.text
    assert clash.headers["content-type"] == "application/problem+json"
    problem = clash.json()
    assert problem["code"] == "idempotency_key_reused"
    assert first.json()["id"] in problem["message"]
    assert problem["errors"][0]["path"] == "$.idempotency_key"
    assert [e["id"] for e in await listed(api)] == [first.json()["id"]]


async def test_body_key_and_header_key_that_disagree_are_422(api: Api) -> None:
    response = await api.post(
        "/v1/events",
        {"trigger": "signup", "user_id": "u1", "idempotency_key": "a"},
        headers={"Idempotency-Key": "b"},
    )
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["path"] == "$.idempotency_key"
    assert await listed(api) == []


async def test_keys_are_per_environment(api: Api) -> None:
    test = await api.send("signup", "u1", idempotency_key="k-1")
    live = await api.send("signup", "u1", idempotency_key="k-1", key=api.live_key)
    assert test.status_code == 201
    assert live.status_code == 201
    assert test.json()["id"] != live.json()["id"]


async def test_keys_are_per_project(api: Api, other_api: Api) -> None:
    mine = await api.send("signup", "u1", idempotency_key="k-1")
    theirs = await other_api.send("signup", "u1", idempotency_key="k-1")
    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine.json()["id"]


@pytest.fixture
async def frozen(store: Store, settings: Settings) -> AsyncIterator[tuple[Api, FrozenClock]]:
    clock = FrozenClock()
    services = build_services(store, settings.replace(idempotency_window_seconds=60), clock)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://eventyard.test") as c:
        yield await make_api(c, services, "frozen"), clock


async def test_a_key_reused_after_the_window_creates_a_new_event(
    frozen: tuple[Api, FrozenClock],
) -> None:
    api, clock = frozen
    first = await api.send("signup", "u1", idempotency_key="k-1")
    clock.advance(59)
    inside = await api.send("signup", "u1", idempotency_key="k-1")
    assert inside.status_code == 200
    assert inside.json()["id"] == first.json()["id"]
    clock.advance(2)  # 61 s after the first use: the 60 s window is over
    after = await api.send("signup", "u1", idempotency_key="k-1")
    assert after.status_code == 201, after.text
    assert after.json()["id"] != first.json()["id"]
    # The key now points at the new event, for a new window; a different body is a conflict.
    clock.advance(30)
    repeat = await api.send("signup", "u1", idempotency_key="k-1")
    assert repeat.status_code == 200
    assert repeat.json()["id"] == after.json()["id"]
    clash = await api.send("signup", "u1", payload={"x": 1}, idempotency_key="k-1")
    assert clash.status_code == 409
    ids = {e["id"] for e in await listed(api)}
    assert ids == {first.json()["id"], after.json()["id"]}


async def test_after_the_window_a_different_body_is_a_new_event_not_409(
    frozen: tuple[Api, FrozenClock],
) -> None:
    api, clock = frozen
    await api.send("signup", "u1", idempotency_key="k-1")
    clock.advance(61)
    other = await api.send("login", "u2", idempotency_key="k-1")
    assert other.status_code == 201, other.text
    assert len(await listed(api)) == 2


# --- event time ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("2026-11-23T10:00:00Z", "2026-11-23T10:00:00.000000Z"),
        ("2026-11-23T10:00:00.123456+02:00", "2026-11-23T08:00:00.123456Z"),
        ("2026-11-23T10:00:00-05:30", "2026-11-23T15:30:00.000000Z"),
        ("2026-11-23T10:00:00", "2026-11-23T10:00:00.000000Z"),
        ("2026-11-23T10:00:00.5", "2026-11-23T10:00:00.500000Z"),
        (1795428000123, "2026-11-23T10:00:00.123000Z"),
        (0, "1970-01-01T00:00:00.000000Z"),
    ],
)
async def test_event_time_is_kept_in_utc(api: Api, sent: object, stored: str) -> None:
    response = await api.send("signup", "u1", timestamp=sent)
    assert response.status_code == 201, response.text
    assert response.json()["timestamp"] == stored
    (event,) = await listed(api)
    assert event["timestamp"] == stored


async def test_without_a_timestamp_event_time_is_receipt_time(api: Api) -> None:
    response = await api.send("signup", "u1")
    event = response.json()
    assert event["timestamp"] == event["received_at"]


@pytest.mark.parametrize(
    "bad",
    [
        *["yesterday", "2026-13-01T00:00:00Z", "", True, 1.5, {}, [], -1],
        *["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", 2**63 - 1],
    ],
    ids=["word", "month13", "empty", "bool", "float", "obj", "arr", "neg", "year1", "year10000",
         "max-int"],
)  # fmt: skip
async def test_an_invalid_timestamp_is_422_naming_the_field(api: Api, bad: object) -> None:
    response = await api.send("signup", "u1", timestamp=bad)
    assert response.status_code == 422, response.text
    assert [e["path"] for e in response.json()["errors"]] == ["$.timestamp"]
    assert await listed(api) == []


# --- concurrency ---------------------------------------------------------------------------


async def test_concurrent_repeats_of_one_key_store_one_event(api: Api) -> None:
    responses = await asyncio.gather(
        *(api.send("signup", "u1", idempotency_key="same") for _ in range(20))
    )
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 19 + [201]
    assert len({r.json()["id"] for r in responses}) == 1
    assert len(await listed(api)) == 1


async def test_concurrent_first_uses_of_a_trigger_all_succeed(api: Api) -> None:
    responses = await asyncio.gather(*(api.send("brand_new", f"u{i}") for i in range(20)))
    assert [r.status_code for r in responses] == [201] * 20
    triggers = (await api.get("/v1/triggers")).json()["data"]
    assert [t["id"] for t in triggers] == ["brand_new"]
    assert len(await listed(api)) == 20
