"""Consumers: create, read, change and delete them; transactions made by construction."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from eventyard.store import Store
from tests.conftest import Api

pytestmark = pytest.mark.anyio

HOOK_URL = "https://hooks.example.com/eventyard"


async def call(
    api: Api, method: str, path: str, key: str | None = None, **kw: Any
) -> httpx.Response:
    return await api.client.request(method, path, headers=api.auth(key), **kw)


async def create(api: Api, key: str | None = None, **body: Any) -> dict[str, Any]:
    made = await api.post("/v1/consumers", body, key=key)
    assert made.status_code == 201, made.text
    result: dict[str, Any] = made.json()
    return result


async def pull(api: Api, name: str = "worker", **body: Any) -> dict[str, Any]:
    return await create(api, name=name, kind="pull", **body)


async def event_ids(api: Api, *triggers: str, user: str = "u1") -> list[str]:
    ids = []
    for trigger in triggers:
        sent = await api.send(trigger, user)
        assert sent.status_code == 201, sent.text
        ids.append(sent.json()["id"])
    return ids


async def txn_rows(store: Store, consumer_id: str) -> list[tuple[str, str]]:
    rows = await store.read(
        lambda db: db.all(
            "SELECT event_id, state FROM transactions WHERE consumer_id = ? ORDER BY event_id",
            (consumer_id,),
        )
    )
    return [(r["event_id"], r["state"]) for r in rows]


# --- CRUD ----------------------------------------------------------------------------------


async def test_a_webhook_consumer_shows_its_secret_only_at_creation(api: Api) -> None:
    made = await create(
        api,
        name="billing hook",
        kind="webhook",
        url=HOOK_URL,
        triggers=["order_paid"],
        retry_schedule=[0, 10, 60],
        timeout_seconds=7.5,
    )
    assert made["id"].startswith("con_")
    assert made["secret"].startswith("whsec_")
    assert len(made["secret"]) > 20
    assert made["kind"] == "webhook"
    assert made["url"] == HOOK_URL
    assert made["triggers"] == ["order_paid"]
    assert made["retry_schedule"] == [0, 10, 60]
    assert made["timeout_seconds"] == 7.5
    assert made["state"] == "enabled"
    assert made["environment"] == "test"

    read = await api.get(f"/v1/consumers/{made['id']}")
    assert read.status_code == 200
    assert "secret" not in read.json()
    assert made["secret"] not in read.text
    listed = await api.get("/v1/consumers")
    assert [c["id"] for c in listed.json()["data"]] == [made["id"]]
    assert made["secret"] not in listed.text
    assert {k: v for k, v in made.items() if k not in {"secret", "previous_secret_expires_at"}} == (
        read.json()
    )


async def test_a_pull_consumer_has_no_url_and_no_secret(api: Api) -> None:
    made = await pull(api)
    assert made["kind"] == "pull"
    assert made["url"] is None
    assert made["secret"] is None
    assert made["triggers"] is None  # every trigger
    refused = await api.post("/v1/consumers", {"name": "p", "kind": "pull", "url": HOOK_URL})
    assert refused.status_code == 422
    assert [e["path"] for e in refused.json()["errors"]] == ["$.url"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"name": "x"}, "$.kind"),
        ({"name": "x", "kind": "ftp"}, "$.kind"),
        ({"name": "x", "kind": "webhook"}, "$.url"),
        ({"name": "x", "kind": "webhook", "url": "ftp://hooks.example.com/x"}, "$.url"),
        ({"name": "x", "kind": "webhook", "url": "https://me:pw@hooks.example.com/x"}, "$.url"),
        ({"name": "x", "kind": "webhook", "url": 42}, "$.url"),
        ({"kind": "pull"}, "$.name"),
        ({"name": "x", "kind": "pull", "triggers": ["ok", "Not A Slug!"]}, "$.triggers[1]"),
        ({"name": "x", "kind": "pull", "triggers": []}, "$.triggers"),
        (
            {"name": "x", "kind": "webhook", "url": HOOK_URL, "retry_schedule": [0, -5]},
            "$.retry_schedule",
        ),
        (
            {"name": "x", "kind": "webhook", "url": HOOK_URL, "retry_schedule": [1] * 51},
            "$.retry_schedule",
        ),
        (
            {"name": "x", "kind": "webhook", "url": HOOK_URL, "retry_schedule": [1.5]},
            "$.retry_schedule",
        ),
        (
            {"name": "x", "kind": "webhook", "url": HOOK_URL, "retry_schedule": ["5"]},
            "$.retry_schedule",
        ),
        (
            {"name": "x", "kind": "webhook", "url": HOOK_URL, "timeout_seconds": 0},
            "$.timeout_seconds",
        ),
        (
            {"name": "x", "kind": "webhook", "url": HOOK_URL, "timeout_seconds": 500},
            "$.timeout_seconds",
        ),
        (
            {"name": "x", "kind": "webhook", "url": HOOK_URL, "timeout_seconds": True},
            "$.timeout_seconds",
        ),
        ({"name": "x", "kind": "pull", "state": "sleeping"}, "$.state"),
        ({"name": "x", "kind": "pull", "colour": "red"}, "$.colour"),
    ],
)
async def test_an_invalid_consumer_is_refused_with_the_failing_path(
    api: Api, body: dict[str, Any], path: str
) -> None:
    refused = await api.post("/v1/consumers", body)
    assert refused.status_code == 422, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert path in [e["path"] for e in refused.json()["errors"]]
    assert (await api.get("/v1/consumers")).json()["data"] == []


async def test_patch_changes_what_it_names_and_keeps_the_rest(api: Api) -> None:
    made = await create(api, name="hook", kind="webhook", url=HOOK_URL, triggers=["a"])
    path = f"/v1/consumers/{made['id']}"
    changed = await call(
        api,
        "PATCH",
        path,
        json={
            "name": "renamed",
            "triggers": ["a", "b"],
            "retry_schedule": [0, 30],
            "timeout_seconds": 3,
            "state": "paused",
        },
    )
    assert changed.status_code == 200, changed.text
    body = changed.json()
    assert body["name"] == "renamed"
    assert body["triggers"] == ["a", "b"]
    assert body["retry_schedule"] == [0, 30]
    assert body["timeout_seconds"] == 3
    assert body["state"] == "paused"
    assert body["url"] == HOOK_URL
    assert "secret" not in body
    assert (await api.get(path)).json() == body

    everything = await call(api, "PATCH", path, json={"triggers": None, "state": "enabled"})
    assert everything.json()["triggers"] is None
    assert everything.json()["state"] == "enabled"

    refused = await call(api, "PATCH", path, json={"kind": "pull", "timeout_seconds": 0})
    assert refused.status_code == 422
    assert sorted(e["path"] for e in refused.json()["errors"]) == ["$.kind", "$.timeout_seconds"]
    assert (await api.get(path)).json()["kind"] == "webhook"


async def test_disabling_by_the_operator_records_why(api: Api) -> None:
    made = await pull(api)
    disabled = await call(api, "PATCH", f"/v1/consumers/{made['id']}", json={"state": "disabled"})
    assert disabled.json()["state"] == "disabled"
    assert disabled.json()["disabled_reason"] == "operator"
    resumed = await api.post(f"/v1/consumers/{made['id']}/resume")
    assert resumed.json()["state"] == "enabled"
    assert resumed.json()["disabled_reason"] is None


async def test_delete_hides_the_consumer_and_closes_its_open_transactions(
    api: Api, store: Store
) -> None:
    made = await pull(api)
    [first, second] = await event_ids(api, "a", "b")
    claimed = await api.post(f"/v1/consumers/{made['id']}/claim", {"limit": 1})
    assert [t["event_id"] for t in claimed.json()["data"]] == [first]

    deleted = await call(api, "DELETE", f"/v1/consumers/{made['id']}")
    assert deleted.status_code == 200
    gone = await api.get(f"/v1/consumers/{made['id']}")
    assert gone.status_code == 404
    assert gone.json()["code"] == "consumer_not_found"
    assert (await api.get("/v1/consumers")).json()["data"] == []
    assert (await call(api, "DELETE", f"/v1/consumers/{made['id']}")).status_code == 404

    assert await txn_rows(store, made["id"]) == sorted([(first, "failed"), (second, "failed")])
    # The closing is part of each transaction's history like any other step.
    view = (await api.get(f"/v1/events/{second}")).json()
    [txn] = view["transactions"]
    assert [(h["exit_state"], h["enter_state"]) for h in txn["history"]] == [
        (None, "pending"),
        ("pending", "failed"),
    ]
    assert view["processing"]["is_completed"] is True
    claimed_txn = (await api.get(f"/v1/transactions/{claimed.json()['data'][0]['id']}")).json()
    assert [(h["exit_state"], h["enter_state"]) for h in claimed_txn["history"]][-1] == (
        "processing",
        "failed",
    )
    assert claimed_txn["lease_expires_at"] is None
    assert claimed_txn["history"][-1]["by"] == claimed_txn["history"][-2]["by"]  # the same key
    # New events no longer make transactions for it.
    [third] = await event_ids(api, "a")
    assert (await api.get(f"/v1/events/{third}")).json()["transactions"] == []


async def test_a_read_key_lists_but_cannot_create_change_or_delete(api: Api) -> None:
    made = await pull(api)
    key = await api.post("/v1/keys", {"scopes": ["read"]})
    reader = key.json()["key"]
    assert (await api.get("/v1/consumers", key=reader)).status_code == 200
    assert (await api.get(f"/v1/consumers/{made['id']}", key=reader)).status_code == 200
    refused = await api.post("/v1/consumers", {"name": "x", "kind": "pull"}, key=reader)
    assert refused.status_code == 403
    path = f"/v1/consumers/{made['id']}"
    assert (await call(api, "PATCH", path, reader, json={"name": "y"})).status_code == 403
    assert (await call(api, "DELETE", path, reader)).status_code == 403
    assert (await api.post(f"{path}/claim", {}, key=reader)).status_code == 403
    assert [c["name"] for c in (await api.get("/v1/consumers")).json()["data"]] == ["worker"]


@pytest.mark.parametrize("who", ["other project", "other environment"])
async def test_another_project_or_environment_cannot_see_or_touch_a_consumer(
    api: Api, other_api: Api, who: str
) -> None:
    made = await pull(api)
    [event] = await event_ids(api, "a")
    key = other_api.test_key if who == "other project" else api.live_key
    path = f"/v1/consumers/{made['id']}"
    assert (await api.get("/v1/consumers", key=key)).json()["data"] == []
    for method, url, body in [
        ("GET", path, None),
        ("PATCH", path, {"name": "stolen"}),
        ("POST", f"{path}/claim", {}),
        ("POST", f"{path}/pause", None),
        ("GET", f"{path}/transactions", None),
        ("DELETE", path, None),
    ]:
        answer = await call(api, method, url, key, json=body)
        assert answer.status_code == 404, (method, url, answer.text)
        assert made["id"] in answer.json()["message"]  # says which id, not whose it is
    # Nothing changed, and the transaction was not claimed.
    still = (await api.get(path)).json()
    assert (still["name"], still["state"]) == ("worker", "enabled")
    own = (await api.get(f"/v1/events/{event}")).json()["transactions"]
    assert [t["state"] for t in own] == ["pending"]


# --- transactions by construction ----------------------------------------------------------


async def test_consumers_existing_before_events_get_a_pending_transaction_for_each_match(
    api: Api, store: Store
) -> None:
    every = await pull(api, "every")
    only_a = await pull(api, "only a", triggers=["a"])
    paused = await pull(api, "paused", state="paused")
    disabled = await pull(api, "disabled", state="disabled")

    [a1, b1] = await event_ids(api, "a", "b")
    batch = await api.post(
        "/v1/events/batch",
        {"events": [{"trigger": "a", "user_id": "u2"}, {"trigger": "c", "user_id": "u2"}]},
    )
    assert batch.status_code == 200
    a2, c1 = (r["id"] for r in batch.json()["results"])
    by_path = await api.post("/v1/triggers/a/users/team%2Fu%40x/events", {"payload": {}})
    assert by_path.status_code == 201
    a3 = by_path.json()["id"]
    everything = sorted([a1, b1, a2, c1, a3])

    assert await txn_rows(store, every["id"]) == [(e, "pending") for e in everything]
    assert await txn_rows(store, only_a["id"]) == [(e, "pending") for e in sorted([a1, a2, a3])]
    assert await txn_rows(store, paused["id"]) == [(e, "pending") for e in everything]
    assert await txn_rows(store, disabled["id"]) == []

    view = (await api.get(f"/v1/events/{a3}")).json()
    assert {t["consumer_id"] for t in view["transactions"]} == {
        every["id"],
        only_a["id"],
        paused["id"],
    }
    for txn in view["transactions"]:
        assert txn["state"] == "pending"
        assert txn["event_id"] == a3
        assert [(h["exit_state"], h["enter_state"]) for h in txn["history"]] == [(None, "pending")]


async def test_a_consumer_created_after_events_gets_none_for_them(api: Api, store: Store) -> None:
    [old] = await event_ids(api, "a")
    late = await pull(api, "late")
    [new] = await event_ids(api, "a")
    assert await txn_rows(store, late["id"]) == [(new, "pending")]
    assert old != new


async def test_a_test_consumer_gets_no_transactions_for_live_events(api: Api, store: Store) -> None:
    consumer = await pull(api)
    live = await api.send("a", "u1", key=api.live_key)
    assert live.status_code == 201
    assert await txn_rows(store, consumer["id"]) == []


async def test_concurrent_writers_never_miss_a_consumer(api: Api, store: Store) -> None:
    first = await pull(api, "one")
    second = await create(api, name="two", kind="webhook", url=HOOK_URL, state="paused")

    async def writer(n: int) -> list[str]:
        ids = []
        for i in range(10):
            sent = await api.send(f"t{i % 3}", f"user-{n}-{i}")
            assert sent.status_code == 201, sent.text
            ids.append(sent.json()["id"])
        return ids

    sent = [e for chunk in await asyncio.gather(*(writer(n) for n in range(20))) for e in chunk]
    assert len(set(sent)) == 200
    rows = await store.read(
        lambda db: db.all(
            "SELECT event_id, COUNT(*) AS n, COUNT(DISTINCT consumer_id) AS consumers"
            " FROM transactions GROUP BY event_id"
        )
    )
    counts = {r["event_id"]: (r["n"], r["consumers"]) for r in rows}
    assert counts == {e: (2, 2) for e in sent}
    assert len(await txn_rows(store, first["id"])) == 200
    assert len(await txn_rows(store, second["id"])) == 200
