"""POST /v1/events/batch: per-item results in order, valid items stored beside bad ones."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from eventyard.api.app import create_app
from eventyard.clock import SystemClock
from eventyard.services.container import build_services
from eventyard.settings import Settings
from eventyard.store import Store
from tests.conftest import Api, make_api

pytestmark = pytest.mark.anyio

PURCHASE = {
    "id": "purchase",
    "name": "Purchase",
    "attributes": [{"name": "amount", "type": "number", "required": True}],
}


async def listed(api: Api) -> list[dict[str, Any]]:
    response = await api.get("/v1/events", params={"limit": 1000})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


async def batch(api: Api, events: Any) -> httpx.Response:
    return await api.post("/v1/events/batch", {"events": events})


async def test_mixed_batch_answers_per_item_in_order_and_stores_the_valid(api: Api) -> None:
    assert (await api.post("/v1/triggers", PURCHASE)).status_code == 201
    original = await api.send("purchase", "u0", payload={"amount": 1}, idempotency_key="k-0")
    assert original.status_code == 201
    events = [
        {"trigger": "purchase", "user_id": "u1", "payload": {"amount": 5}},
        {"trigger": "purchase", "user_id": "u2", "payload": {"amount": "five"}},
        {
            "trigger": "purchase",
            "user_id": "u0",
            "payload": {"amount": 1},
            "idempotency_key": "k-0",
        },
        {"trigger": "purchase", "payload": {"amount": 2}},
        "not an event",
        {"trigger": "signup", "user_id": "u3", "timestamp": "2026-01-01T00:00:00Z"},
        {"trigger": "purchase", "user_id": "u4", "payload": {"amount": 9}, "colour": "red"},
    ]
    response = await batch(api, events)
    assert response.status_code == 200, response.text
    body = response.json()
    results = body["results"]
    assert [r["index"] for r in results] == list(range(7))
    assert [r["status"] for r in results] == [
        "accepted", "rejected", "duplicate", "rejected", "rejected", "accepted", "rejected",
    ]  # fmt: skip
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 4)
    assert results[0]["id"].startswith("evt_")
    assert results[2]["id"] == original.json()["id"]
    assert [e["path"] for e in results[1]["errors"]] == ["$.events[1].payload.amount"]
    assert results[1]["code"] == "validation_failed"
    assert [e["path"] for e in results[3]["errors"]] == ["$.events[3].user_id"]
    assert [e["path"] for e in results[4]["errors"]] == ["$.events[4]"]
    assert [e["path"] for e in results[6]["errors"]] == ["$.events[6].colour"]
    assert all(e["message"] for r in results if r["status"] == "rejected" for e in r["errors"])

    stored = {e["id"]: e for e in await listed(api)}
    assert set(stored) == {original.json()["id"], results[0]["id"], results[5]["id"]}
    assert stored[results[0]["id"]]["payload"] == {"amount": 5}
    assert stored[results[5]["id"]]["timestamp"] == "2026-01-01T00:00:00.000000Z"
    assert stored[results[5]["id"]]["source"] == "api"
    one = await api.get(f"/v1/events/{results[0]['id']}")
    assert one.status_code == 200
    assert one.json()["user_id"] == "u1"


async def test_a_repeated_key_in_one_batch_with_the_same_body_is_a_duplicate(api: Api) -> None:
    item = {"trigger": "signup", "user_id": "u1", "idempotency_key": "k-1"}
    results = (await batch(api, [item, item])).json()["results"]
    assert [r["status"] for r in results] == ["accepted", "duplicate"]
    assert results[1]["id"] == results[0]["id"]
    assert [e["id"] for e in await listed(api)] == [results[0]["id"]]
    # And the key is remembered for later requests.
    again = await api.send("signup", "u1", idempotency_key="k-1")
    assert again.status_code == 200
    assert again.json()["id"] == results[0]["id"]


async def test_a_repeated_key_in_one_batch_with_another_body_is_rejected(api: Api) -> None:
    first = {"trigger": "signup", "user_id": "u1", "idempotency_key": "k-1"}
    second = {**first, "user_id": "u2"}
    results = (await batch(api, [first, second])).json()["results"]
    assert [r["status"] for r in results] == ["accepted", "rejected"]
    assert results[1]["code"] == "idempotency_key_reused"
    assert results[1]["errors"][0]["path"] == "$.events[1].idempotency_key"
    assert results[0]["id"] in results[1]["errors"][0]["message"]
    assert [e["user_id"] for e in await listed(api)] == ["u1"]


async def test_strict_and_archived_triggers_reject_only_their_items(api: Api) -> None:
    assert (await api.send("old", "u0")).status_code == 201
    assert (await api.client.delete("/v1/triggers/old", headers=api.auth())).status_code == 200
    patch = await api.client.patch("/v1/project", json={"mode": "strict"}, headers=api.auth())
    assert patch.status_code == 200
    assert (await api.post("/v1/triggers", {"id": "known", "name": "Known"})).status_code == 201
    events = [
        {"trigger": "known", "user_id": "u1"},
        {"trigger": "unknown", "user_id": "u2"},
        {"trigger": "old", "user_id": "u3"},
    ]
    results = (await batch(api, events)).json()["results"]
    assert [(r["status"], r.get("code")) for r in results] == [
        ("accepted", None),
        ("rejected", "trigger_not_found"),
        ("rejected", "trigger_archived"),
    ]
    assert results[1]["errors"][0]["path"] == "$.events[1].trigger"
    assert sorted(e["user_id"] for e in await listed(api)) == ["u0", "u1"]


async def test_an_oversized_item_is_rejected_alone(api: Api) -> None:
    events = [
        {"trigger": "signup", "user_id": "u1", "payload": {"blob": "x" * 40_000}},
        {"trigger": "signup", "user_id": "u2"},
    ]
    results = (await batch(api, events)).json()["results"]
    assert [r["status"] for r in results] == ["rejected", "accepted"]
    assert results[0]["code"] == "payload_too_large"
    assert results[0]["errors"][0]["path"] == "$.events[0].payload"
    assert "32,768" in results[0]["errors"][0]["message"]
    assert [e["user_id"] for e in await listed(api)] == ["u2"]


async def test_a_full_batch_of_1000_is_stored(api: Api) -> None:
    events = [{"trigger": "signup", "user_id": f"u{i}"} for i in range(1000)]
    response = await batch(api, events)
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 1000
    ids = [r["id"] for r in response.json()["results"]]
    assert len(set(ids)) == 1000
    assert {e["id"] for e in await listed(api)} == set(ids)


async def test_a_batch_of_1001_is_413_stating_limit_and_count(api: Api) -> None:
    events = [{"trigger": "signup", "user_id": f"u{i}"} for i in range(1001)]
    response = await batch(api, events)
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "batch_too_large"
    assert "1,000" in problem["message"]
    assert "1,001" in problem["message"]
    assert (problem["limit"], problem["size"]) == (1000, 1001)
    assert await listed(api) == []
    assert (await api.get("/v1/triggers")).json()["data"] == []


@pytest.fixture
async def small(store: Store, settings: Settings) -> AsyncIterator[Api]:
    services = build_services(store, settings.replace(max_batch_events=3), SystemClock())
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://eventyard.test") as c:
        yield await make_api(c, services, "small")


async def test_the_batch_limit_is_configurable(small: Api) -> None:
    four = [{"trigger": "signup", "user_id": f"u{i}"} for i in range(4)]
    over = await batch(small, four)
    assert over.status_code == 413
    assert "limit is 3" in over.json()["message"]
    assert "4" in over.json()["message"]
    assert await listed(small) == []
    fits = await batch(small, four[:3])
    assert fits.status_code == 200
    assert fits.json()["accepted"] == 3
    assert len(await listed(small)) == 3


async def test_an_empty_batch_stores_nothing(api: Api) -> None:
    response = await batch(api, [])
    assert response.status_code == 200, response.text
    assert response.json()["results"] == []
    assert await listed(api) == []


@pytest.mark.parametrize(
    "body",
    [{}, {"events": None}, {"events": "x"}, {"events": {"trigger": "a"}}, {"events": 3}],
    ids=["missing", "null", "string", "object", "number"],
)
async def test_events_missing_or_not_an_array_is_422(api: Api, body: dict[str, Any]) -> None:
    response = await api.post("/v1/events/batch", body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "$.events" in [e["path"] for e in response.json()["errors"]]
    assert await listed(api) == []


async def test_unknown_batch_fields_are_422(api: Api) -> None:
    response = await api.post(
        "/v1/events/batch", {"events": [{"trigger": "a", "user_id": "u"}], "extra": 1}
    )
    assert response.status_code == 422
    assert [e["path"] for e in response.json()["errors"]] == ["$.extra"]
    assert await listed(api) == []
