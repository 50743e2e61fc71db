"""No route lets a key see outside its own project and environment — proved for every route.

The cases are generated from the application's route table: every route that needs a key is
called (a) with no key, (b) with project A's *test* admin key and (c) with project B's admin
keys, while project A's *live* environment holds an event, a key, a user and a trigger.
None of those calls may show or change A's live data. A route added to the table without an
entry in `CASES` fails this file, and so does a new PUBLIC route not in `PUBLIC_ROUTES`.

Triggers and the project's settings belong to the project, shared by both environments
(DESIGN.md section 2), so A's test key may read and edit them; project B may not.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from eventyard.api.app import all_routes
from eventyard.api.routing import PUBLIC, Route
from eventyard.ids import new_id
from tests.conftest import Api

pytestmark = pytest.mark.anyio

PUBLIC_ROUTES = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/metrics"),  # Prometheus scrapes without a key (DESIGN.md section 3)
}
# Dashboard pages open to a browser with no session: the sign-in form and the static files.
# Every other dashboard route has the session guard (tests/dashboard/test_guard.py).
PUBLIC_PAGES = {
    ("GET", "/dashboard/login"),
    ("POST", "/dashboard/login"),
    ("GET", "/dashboard/static/{name}"),
}

EVENT_MARKER = "A-LIVE-PAYLOAD-MARKER"
TRIGGER_MARKER = "A-TRIGGER-DESCRIPTION-MARKER"
TRIGGER_ID = "a_secret_trigger"
USER_ID = "a-live-victim@example.com"


@dataclass(frozen=True)
class Case:
    """How to call one route, and what it answers a key of A-test and of project B."""

    own_project: int  # project A's test key: project-level data yes, live data never
    other_project: int  # project B's keys
    body: dict[str, Any] | None = None
    query: dict[str, str] | None = None


_EVENT = {"trigger": TRIGGER_ID, "user_id": USER_ID, "payload": {"probe": True}}
CASES: dict[tuple[str, str], Case] = {
    ("POST", "/v1/events"): Case(201, 201, body=_EVENT),
    ("POST", "/v1/triggers/{trigger_id}/users/{user_id}/events"): Case(
        201, 201, body={"payload": {"probe": True}}
    ),
    ("POST", "/v1/events/batch"): Case(200, 200, body={"events": [_EVENT]}),
    ("GET", "/v1/events"): Case(200, 200, query={"user_id": USER_ID}),
    ("GET", "/v1/events/{event_id}"): Case(404, 404),
    # From the beginning of time, for half a second: A's live event must not come through.
    ("GET", "/v1/events/stream"): Case(
        200, 200, query={"since_id": "evt_" + "0" * 26, "max_seconds": "0.5"}
    ),
    ("POST", "/v1/triggers"): Case(201, 201, body={"name": "Probe"}),
    ("GET", "/v1/triggers"): Case(200, 200, query={"archived": "true"}),
    ("GET", "/v1/triggers/{trigger_id}"): Case(200, 404),
    ("PATCH", "/v1/triggers/{trigger_id}"): Case(200, 404, body={"name": "Renamed"}),
    ("DELETE", "/v1/triggers/{trigger_id}"): Case(200, 404),
    ("POST", "/v1/keys"): Case(201, 201, body={"scopes": ["read"]}),
    ("GET", "/v1/keys"): Case(200, 200),
    ("GET", "/v1/keys/{key_id}"): Case(404, 404),
    ("DELETE", "/v1/keys/{key_id}"): Case(404, 404),
    ("GET", "/v1/project"): Case(200, 200),
    ("PATCH", "/v1/project"): Case(200, 200, body={"mode": "strict"}),
    ("DELETE", "/v1/users/{user_id}"): Case(200, 200),
    ("GET", "/v1/erasures"): Case(200, 200),
    ("POST", "/v1/consumers"): Case(201, 201, body={"name": "probe", "kind": "pull"}),
    ("GET", "/v1/consumers"): Case(200, 200),
    ("GET", "/v1/consumers/{consumer_id}"): Case(404, 404),
    ("PATCH", "/v1/consumers/{consumer_id}"): Case(404, 404, body={"name": "Renamed"}),
    ("DELETE", "/v1/consumers/{consumer_id}"): Case(404, 404),
    ("POST", "/v1/consumers/{consumer_id}/pause"): Case(404, 404),
    ("POST", "/v1/consumers/{consumer_id}/resume"): Case(404, 404),
    ("POST", "/v1/consumers/{consumer_id}/rotate-secret"): Case(404, 404),
    ("POST", "/v1/consumers/{consumer_id}/replay"): Case(404, 404, body={"since": 0}),
    ("POST", "/v1/consumers/{consumer_id}/claim"): Case(404, 404, body={}),
    ("GET", "/v1/consumers/{consumer_id}/transactions"): Case(404, 404),
    ("GET", "/v1/transactions/{transaction_id}"): Case(404, 404),
    ("PATCH", "/v1/transactions/{transaction_id}"): Case(404, 404, body={"state": "finished"}),
    ("POST", "/v1/transactions/{transaction_id}/retry"): Case(404, 404),
    ("GET", "/v1/stats"): Case(200, 200, query={"window": "day"}),
    ("GET", "/v1/status"): Case(200, 200),
}

# Native routes, reached with `Authorization: Bearer`; each adapter's door is checked with
# its own credentials in tests/adapters/.
KEYED_ROUTES = [r for r in all_routes() if r.scope is not PUBLIC and r.path.startswith("/v1/")]
CALLERS = ["no key", "A test admin", "B live admin", "B test admin"]


@dataclass
class World:
    a: Api
    b: Api
    event_id: str
    key_id: str
    key_prefix: str
    trigger: dict[str, Any]
    consumer_id: str
    transaction_id: str

    def params(self) -> dict[str, str]:
        return {
            "event_id": self.event_id,
            "trigger_id": TRIGGER_ID,
            "key_id": self.key_id,
            "user_id": USER_ID,
            "consumer_id": self.consumer_id,
            "transaction_id": self.transaction_id,
        }

    def live_markers(self) -> list[str]:
        return [
            self.event_id,
            self.key_id,
            self.key_prefix,
            self.consumer_id,
            self.transaction_id,
            EVENT_MARKER,
        ]

    def project_markers(self) -> list[str]:
        return [self.a.project_id, self.trigger["uuid"], TRIGGER_MARKER]


@pytest.fixture
async def world(api: Api, other_api: Api) -> World:
    made = await api.post(
        "/v1/triggers", {"name": "A secret", "id": TRIGGER_ID, "description": TRIGGER_MARKER}
    )
    assert made.status_code == 201, made.text
    consumer = await api.post(
        "/v1/consumers", {"name": "A puller", "kind": "pull"}, key=api.live_key
    )
    assert consumer.status_code == 201, consumer.text
    consumer_id = consumer.json()["id"]
    sent = await api.send(TRIGGER_ID, USER_ID, key=api.live_key, payload={"m": EVENT_MARKER})
    assert sent.status_code == 201, sent.text
    key = await api.post("/v1/keys", {"scopes": ["read"], "name": "live reader"}, key=api.live_key)
    assert key.status_code == 201, key.text
    txns = await api.get(f"/v1/consumers/{consumer_id}/transactions", key=api.live_key)
    assert len(txns.json()["data"]) == 1, txns.text
    return World(
        a=api,
        b=other_api,
        event_id=sent.json()["id"],
        key_id=key.json()["id"],
        key_prefix=key.json()["prefix"],
        trigger=made.json(),
        consumer_id=consumer_id,
        transaction_id=txns.json()["data"][0]["id"],
    )


def fill(path: str, params: dict[str, str]) -> str:
    for name, value in params.items():
        path = path.replace("{" + name + "}", quote(value, safe=""))
    return path


def route_id(route: Route) -> str:
    return f"{route.method} {route.path}"


@pytest.mark.parametrize("caller", CALLERS)
@pytest.mark.parametrize("route", KEYED_ROUTES, ids=route_id)
async def test_no_route_crosses_a_project_or_environment(
    world: World, route: Route, caller: str
) -> None:
    case = CASES.get((route.method, route.path))
    if case is None:
        pytest.fail(f"{route_id(route)} has no isolation case: add it to CASES")
    key, expected, forbidden = {
        "no key": (None, 401, world.live_markers() + world.project_markers()),
        "A test admin": (world.a.test_key, case.own_project, world.live_markers()),
        "B live admin": (
            world.b.live_key,
            case.other_project,
            world.live_markers() + world.project_markers(),
        ),
        "B test admin": (
            world.b.test_key,
            case.other_project,
            world.live_markers() + world.project_markers(),
        ),
    }[caller]
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = await world.a.client.request(
        route.method,
        fill(route.path, world.params()),
        headers=headers,
        json=case.body,
        params=case.query,
    )
    assert response.status_code == expected, response.text
    echoed = str(response.request.url)  # an id the caller sent may come back in the message
    for marker in forbidden:
        if marker not in echoed:
            assert marker not in response.text, f"{route_id(route)} showed {marker!r} to {caller}"
    if expected == 401:
        assert response.json()["code"] == "unauthenticated"
    if expected == 404:
        # The refusal must not tell "exists elsewhere" from "does not exist at all".
        made_up = {
            **world.params(),
            "event_id": new_id("evt"),
            "key_id": new_id("key"),
            "consumer_id": new_id("con"),
            "transaction_id": new_id("txn"),
            "trigger_id": "no_such_trigger",
        }
        unknown = await world.a.client.request(
            route.method, fill(route.path, made_up), headers=headers, json=case.body
        )
        assert unknown.status_code == 404
        hide = {world.params()[k]: v for k, v in made_up.items() if k != "user_id"}
        seen = response.text
        for real, fake in hide.items():
            seen = seen.replace(real, fake)
        assert seen == unknown.text
    await assert_a_live_untouched(world, others=caller != "A test admin")


async def assert_a_live_untouched(world: World, *, others: bool) -> None:
    a, live = world.a, world.a.live_key
    event = await a.get(f"/v1/events/{world.event_id}", key=live)
    assert event.status_code == 200, "A's live event is gone"
    assert event.json()["payload"] == {"m": EVENT_MARKER}
    listed = await a.get("/v1/events", key=live, params={"limit": "100"})
    assert [e["id"] for e in listed.json()["data"]] == [world.event_id]
    key = await a.get(f"/v1/keys/{world.key_id}", key=live)
    assert key.status_code == 200
    assert key.json()["revoked"] is False
    consumer = await a.get(f"/v1/consumers/{world.consumer_id}", key=live)
    assert consumer.status_code == 200
    assert (consumer.json()["name"], consumer.json()["state"]) == ("A puller", "enabled")
    txns = await a.get(f"/v1/consumers/{world.consumer_id}/transactions", key=live)
    assert [(t["id"], t["state"]) for t in txns.json()["data"]] == [
        (world.transaction_id, "pending")
    ]
    if not others:
        return
    trigger = await a.get(f"/v1/triggers/{TRIGGER_ID}", key=live)
    assert trigger.json() == world.trigger
    triggers = await a.get("/v1/triggers", key=live, params={"archived": "true"})
    assert [t["id"] for t in triggers.json()["data"]] == [TRIGGER_ID]
    project = await a.get("/v1/project", key=live)
    assert project.json()["mode"] == "open"


async def test_a_test_key_reads_only_test_data_of_its_own_project(world: World) -> None:
    """The positive side: each key does see what it wrote, so the 404s above mean something."""
    mine = await world.a.send(TRIGGER_ID, USER_ID)
    assert (await world.a.get(f"/v1/events/{mine.json()['id']}")).status_code == 200
    theirs = await world.b.send(TRIGGER_ID, USER_ID, key=world.b.live_key)
    assert (
        await world.b.get(f"/v1/events/{theirs.json()['id']}", key=world.b.live_key)
    ).status_code == 200
    assert (
        await world.a.get(f"/v1/events/{theirs.json()['id']}", key=world.a.live_key)
    ).status_code == 404
    erased = await world.a.client.delete(f"/v1/users/{USER_ID}", headers=world.a.auth())
    assert erased.json()["deleted"]["events"] == 1
    await assert_a_live_untouched(world, others=True)


def test_every_keyed_route_has_a_case() -> None:
    table = {(r.method, r.path) for r in KEYED_ROUTES}
    assert table == set(CASES), "CASES and the route table disagree"


def test_public_routes_are_exactly_the_allow_list() -> None:
    public = {(r.method, r.path) for r in all_routes() if r.scope is PUBLIC and r.guard is None}
    assert public == PUBLIC_ROUTES | PUBLIC_PAGES


@pytest.mark.parametrize("route", sorted(PUBLIC_ROUTES))
async def test_public_routes_answer_without_a_key(
    client: httpx.AsyncClient, route: tuple[str, str]
) -> None:
    method, path = route
    response = await client.request(method, path)
    assert response.status_code == 200
