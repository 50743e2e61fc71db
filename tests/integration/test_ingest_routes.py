"""Sending one event, continued: the path route, open and strict projects, archived
triggers, schemas, and erasing a user with DELETE /v1/users/{user_id}."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def listed(api: Api, key: str | None = None, **params: Any) -> list[dict[str, Any]]:
    response = await api.get("/v1/events", key=key, params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


# --- the path route ------------------------------------------------------------------------

ODD_USER_IDS = [
    "a/b",
    "/leading/and/trailing/",
    "user@example.com",
    "100%",
    "%2F",
    "with space",
    "a+b",
    "q?x=1&y=2#frag",
    "café",
    "日本",
    "🎉 party",
    "back\\slash",
    "'quotes\"",
]


@pytest.mark.parametrize("user_id", ODD_USER_IDS)
async def test_path_route_user_id_round_trips_exactly(api: Api, user_id: str) -> None:
    path = f"/v1/triggers/signup/users/{quote(user_id, safe='')}/events"
    sent = await api.post(path, {"payload": {"n": 1}})
    assert sent.status_code == 201, sent.text
    assert sent.json()["user_id"] == user_id
    assert sent.json()["trigger"] == "signup"
    found = await listed(api, user_id=user_id)
    assert [e["id"] for e in found] == [sent.json()["id"]]
    assert found[0]["user_id"] == user_id
    erased = await api.client.delete(f"/v1/users/{quote(user_id, safe='')}", headers=api.auth())
    assert erased.status_code == 200, erased.text
    assert erased.json()["user_id"] == user_id
    assert erased.json()["deleted"]["events"] == 1
    assert await listed(api) == []


async def test_path_route_accepts_an_empty_object_and_no_body(api: Api) -> None:
    empty = await api.post("/v1/triggers/signup/users/u1/events", {})
    nothing = await api.client.post("/v1/triggers/signup/users/u2/events", headers=api.auth())
    assert empty.status_code == 201, empty.text
    assert nothing.status_code == 201, nothing.text
    assert nothing.json()["payload"] == {}
    assert {e["user_id"] for e in await listed(api)} == {"u1", "u2"}


async def test_path_route_takes_payload_timestamp_and_idempotency(api: Api) -> None:
    path = "/v1/triggers/purchase/users/u1/events"
    body = {"payload": {"amount": 5}, "timestamp": 0, "idempotency_key": "p-1"}
    first = await api.post(path, body)
    again = await api.post(path, body)
    assert first.status_code == 201
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert first.json()["timestamp"] == "1970-01-01T00:00:00.000000Z"
    # The same key sent through POST /v1/events with the same content is the same event.
    same = await api.send(
        "purchase", "u1", payload={"amount": 5}, timestamp=0, idempotency_key="p-1"
    )
    assert same.status_code == 200
    assert same.json()["id"] == first.json()["id"]


async def test_path_route_refuses_a_body_that_repeats_the_path(api: Api) -> None:
    response = await api.post("/v1/triggers/signup/users/u1/events", {"user_id": "u2"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["path"] == "$.user_id"
    assert await listed(api) == []


# --- open and strict projects, archived triggers -------------------------------------------


async def set_mode(api: Api, mode: str) -> None:
    response = await api.client.patch("/v1/project", json={"mode": mode}, headers=api.auth())
    assert response.status_code == 200, response.text
    assert response.json()["mode"] == mode


async def trigger_ids(api: Api) -> list[str]:
    response = await api.get("/v1/triggers")
    assert response.status_code == 200
    return [t["id"] for t in response.json()["data"]]


async def test_an_open_project_creates_an_unknown_trigger_on_first_use(api: Api) -> None:
    assert await trigger_ids(api) == []
    assert (await api.send("first_login", "u1")).status_code == 201
    assert (await api.send("first_login", "u2")).status_code == 201
    assert await trigger_ids(api) == ["first_login"]
    one = await api.get("/v1/triggers/first_login")
    assert one.status_code == 200
    assert one.json()["archived"] is False


async def test_a_strict_project_refuses_an_unknown_trigger(api: Api) -> None:
    await set_mode(api, "strict")
    for response in (
        await api.send("nope", "u1"),
        await api.post("/v1/triggers/nope/users/u1/events", {}),
    ):
        assert response.status_code == 404, response.text
        assert response.json()["code"] == "trigger_not_found"
        assert "nope" in response.json()["message"]
    assert await listed(api) == []
    assert await trigger_ids(api) == []

    created = await api.post("/v1/triggers", {"id": "nope", "name": "Nope"})
    assert created.status_code == 201, created.text
    assert (await api.send("nope", "u1")).status_code == 201
    await set_mode(api, "open")
    assert (await api.send("another", "u1")).status_code == 201


async def test_an_archived_trigger_refuses_events(api: Api) -> None:
    kept = await api.send("signup", "u1")
    archived = await api.client.delete("/v1/triggers/signup", headers=api.auth())
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    for response in (
        await api.send("signup", "u2"),
        await api.post("/v1/triggers/signup/users/u2/events"),
    ):
        assert response.status_code == 409, response.text
        assert response.json()["code"] == "trigger_archived"
    assert [e["id"] for e in await listed(api)] == [kept.json()["id"]]


# --- schemas -------------------------------------------------------------------------------

PURCHASE = {
    "id": "purchase",
    "name": "Purchase",
    "attributes": [
        {"name": "amount", "type": "number", "required": True},
        {"name": "email", "type": "email"},
        {"name": "plan", "type": "enum", "values": ["free", "pro"]},
        {"name": "seats", "type": "integer"},
    ],
}


@pytest.fixture
async def purchase(api: Api) -> Api:
    created = await api.post("/v1/triggers", PURCHASE)
    assert created.status_code == 201, created.text
    return api


@pytest.mark.parametrize(
    ("payload", "paths"),
    [
        ({}, ["$.payload.amount"]),
        ({"amount": None}, ["$.payload.amount"]),
        ({"amount": "10"}, ["$.payload.amount"]),
        ({"amount": True}, ["$.payload.amount"]),
        ({"amount": 1, "email": "not-an-email"}, ["$.payload.email"]),
        ({"amount": 1, "plan": "gold"}, ["$.payload.plan"]),
        ({"amount": 1, "seats": 1.5}, ["$.payload.seats"]),
        (
            {"amount": "x", "email": 5, "plan": "gold"},
            ["$.payload.amount", "$.payload.email", "$.payload.plan"],
        ),
    ],
)
async def test_schema_violations_are_422_by_json_path(
    purchase: Api, payload: dict[str, Any], paths: list[str]
) -> None:
    api = purchase
    response = await api.send("purchase", "u1", payload=payload)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "validation_failed"
    assert sorted(e["path"] for e in response.json()["errors"]) == paths
    assert all(e["message"] for e in response.json()["errors"])
    assert await listed(api) == []


async def test_a_payload_that_fits_the_schema_is_stored(purchase: Api) -> None:
    api = purchase
    payload = {"amount": 19.99, "email": "a@example.com", "plan": "pro", "seats": 3, "extra": 1}
    response = await api.send("purchase", "u1", payload=payload)
    assert response.status_code == 201, response.text
    assert (await listed(api))[0]["payload"] == payload


# --- erasing a user ------------------------------------------------------------------------


async def test_erasing_a_user_removes_only_their_events_here(api: Api, other_api: Api) -> None:
    for _ in range(2):
        assert (await api.send("signup", "alice")).status_code == 201
    bob = await api.send("signup", "bob")
    live_alice = await api.send("signup", "alice", key=api.live_key)
    other_alice = await other_api.send("signup", "alice")

    response = await api.client.delete("/v1/users/alice", headers=api.auth())
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["user_id"] == "alice"
    assert body["deleted"]["events"] == 2
    assert "erased_at" in body

    assert [e["id"] for e in await listed(api)] == [bob.json()["id"]]
    assert [e["id"] for e in await listed(api, key=api.live_key)] == [live_alice.json()["id"]]
    assert [e["id"] for e in await listed(other_api)] == [other_alice.json()["id"]]

    again = await api.client.delete("/v1/users/alice", headers=api.auth())
    assert again.status_code == 200
    assert again.json()["deleted"]["events"] == 0


async def test_an_erased_events_idempotency_key_can_be_reused(api: Api) -> None:
    first = await api.send("signup", "alice", idempotency_key="k-1")
    kept = await api.send("signup", "bob", idempotency_key="k-2")
    await api.client.delete("/v1/users/alice", headers=api.auth())
    reused = await api.send("signup", "alice", idempotency_key="k-1")
    assert reused.status_code == 201, reused.text
    assert reused.json()["id"] != first.json()["id"]
    # bob's key is untouched: still a duplicate of his event.
    still = await api.send("signup", "bob", idempotency_key="k-2")
    assert still.status_code == 200
    assert still.json()["id"] == kept.json()["id"]
