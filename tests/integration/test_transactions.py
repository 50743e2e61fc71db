"""Transactions: read, retry, list per consumer; the event view's summary and filters; erasure."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from eventyard.store import Store
from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def patch(api: Api, txn_id: str, body: dict[str, Any]) -> httpx.Response:
    return await api.client.patch(f"/v1/transactions/{txn_id}", json=body, headers=api.auth())


async def pull_consumer(api: Api, name: str = "worker", **body: Any) -> str:
    made = await api.post("/v1/consumers", {"name": name, "kind": "pull", **body})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def send(api: Api, trigger: str = "order_paid", user: str = "u1") -> str:
    sent = await api.send(trigger, user, payload={"total": 5})
    assert sent.status_code == 201, sent.text
    return str(sent.json()["id"])


async def claim(api: Api, consumer: str, limit: int = 10) -> list[dict[str, Any]]:
    claimed = await api.post(f"/v1/consumers/{consumer}/claim", {"limit": limit})
    assert claimed.status_code == 200, claimed.text
    data: list[dict[str, Any]] = claimed.json()["data"]
    return data


async def txn_of(api: Api, consumer: str, event: str) -> dict[str, Any]:
    view = (await api.get(f"/v1/events/{event}")).json()
    [txn] = [t for t in view["transactions"] if t["consumer_id"] == consumer]
    return txn


async def listed_ids(api: Api, **params: str) -> list[str]:
    answer = await api.get("/v1/events", params=params)
    assert answer.status_code == 200, answer.text
    return [e["id"] for e in answer.json()["data"]]


# --- one transaction -----------------------------------------------------------------------


async def test_a_transaction_reads_with_history_attempts_and_output(api: Api) -> None:
    consumer = await pull_consumer(api)
    event = await send(api)
    [claimed] = await claim(api, consumer)
    await patch(api, claimed["id"], {"state": "finished", "output": {"rows": [1, 2]}})
    read = await api.get(f"/v1/transactions/{claimed['id']}")
    assert read.status_code == 200
    body = read.json()
    assert body["id"] == claimed["id"]
    assert body["event_id"] == event
    assert body["consumer_id"] == consumer
    assert body["state"] == "finished"
    assert body["output"] == {"rows": [1, 2]}
    assert body["delivery_attempts"] == []  # a pull consumer's work is not a delivery
    assert [h["enter_state"] for h in body["history"]] == ["pending", "processing", "finished"]


async def test_an_unknown_transaction_is_404(api: Api) -> None:
    answer = await api.get("/v1/transactions/txn_01JAAAAAAAAAAAAAAAAAAAAAAA")
    assert answer.status_code == 404
    assert answer.json()["code"] == "transaction_not_found"
    assert (await patch(api, "txn_nope", {"state": "finished"})).status_code == 404
    assert (await api.post("/v1/transactions/txn_nope/retry")).status_code == 404


@pytest.mark.parametrize("who", ["other project", "other environment"])
async def test_another_project_or_environment_cannot_read_or_report(
    api: Api, other_api: Api, who: str
) -> None:
    consumer = await pull_consumer(api)
    await send(api)
    [txn] = await claim(api, consumer)
    key = other_api.test_key if who == "other project" else api.live_key
    path = f"/v1/transactions/{txn['id']}"
    assert (await api.get(path, key=key)).status_code == 404
    finished = await api.client.patch(
        path, json={"state": "finished"}, headers={"Authorization": f"Bearer {key}"}
    )
    assert finished.status_code == 404
    assert (await api.post(f"{path}/retry", key=key)).status_code == 404
    assert (await api.get(path)).json()["state"] == "processing"


async def test_retry_reopens_a_closed_transaction_and_refuses_an_open_one(api: Api) -> None:
    consumer = await pull_consumer(api)
    await send(api)
    txn = (await api.get(f"/v1/consumers/{consumer}/transactions")).json()["data"][0]
    path = f"/v1/transactions/{txn['id']}"
    pending = await api.post(f"{path}/retry")
    assert pending.status_code == 409
    [claimed] = await claim(api, consumer)
    assert (await api.post(f"{path}/retry")).status_code == 409  # processing
    await patch(api, claimed["id"], {"state": "failed", "output": "boom"})
    retried = await api.post(f"{path}/retry")
    assert retried.status_code == 200, retried.text
    assert retried.json()["state"] == "pending"
    assert [h["enter_state"] for h in retried.json()["history"]] == [
        "pending",
        "processing",
        "failed",
        "pending",
    ]
    [again] = await claim(api, consumer)
    assert again["id"] == txn["id"]


async def test_a_consumers_transactions_filter_by_state_and_page(api: Api) -> None:
    consumer = await pull_consumer(api)
    events = [await send(api, user=f"u{i}") for i in range(7)]
    claimed = await claim(api, consumer, limit=3)
    for txn in claimed[:2]:
        await patch(api, txn["id"], {"state": "finished"})
    path = f"/v1/consumers/{consumer}/transactions"

    everything = (await api.get(path)).json()
    assert sorted(t["event_id"] for t in everything["data"]) == sorted(events)
    ids = [t["id"] for t in everything["data"]]
    assert ids == sorted(ids, reverse=True)  # newest first
    assert everything["next_after"] is None

    by_state = {
        state: sorted(
            t["event_id"] for t in (await api.get(path, params={"state": state})).json()["data"]
        )
        for state in ("pending", "processing", "finished", "failed")
    }
    assert by_state == {
        "pending": sorted(events[3:]),
        "processing": [claimed[2]["event_id"]],
        "finished": sorted(t["event_id"] for t in claimed[:2]),
        "failed": [],
    }
    finished = (await api.get(path, params={"state": "finished"})).json()["data"]
    assert all(len(t["history"]) == 3 for t in finished)  # listed with their history

    pages, after = [], None
    while True:
        params = {"limit": "3", **({"after": after} if after else {})}
        page = (await api.get(path, params=params)).json()
        pages.append([t["id"] for t in page["data"]])
        after = page["next_after"]
        if after is None:
            break
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == ids
    for bad in ("0", "1001", "x"):
        assert (await api.get(path, params={"limit": bad})).status_code == 400


# --- the event view ------------------------------------------------------------------------


async def test_an_event_without_consumers_has_no_transactions(api: Api) -> None:
    event = await send(api)
    view = (await api.get(f"/v1/events/{event}")).json()
    assert view["transactions"] == []
    assert view["processing"] == {
        "has_transactions": False,
        "total_transactions": 0,
        "has_future_transactions": False,
        "is_completed": False,
    }


async def test_the_event_view_summarizes_each_consumers_progress(api: Api) -> None:
    first = await pull_consumer(api, "first")
    second = await pull_consumer(api, "second")
    event = await send(api)

    def processing(view: dict[str, Any]) -> dict[str, Any]:
        return dict(view["processing"])

    view = (await api.get(f"/v1/events/{event}")).json()
    assert {t["consumer_id"]: t["state"] for t in view["transactions"]} == {
        first: "pending",
        second: "pending",
    }
    assert processing(view) == {
        "has_transactions": True,
        "total_transactions": 2,
        "has_future_transactions": True,
        "is_completed": False,
    }

    [a] = await claim(api, first)
    await patch(api, a["id"], {"state": "finished", "output": {"ok": 1}})
    view = (await api.get(f"/v1/events/{event}")).json()
    mine = {t["consumer_id"]: t for t in view["transactions"]}
    assert mine[first]["state"] == "finished"
    assert mine[first]["output"] == {"ok": 1}
    assert mine[second]["state"] == "pending"
    assert processing(view)["has_future_transactions"] is True
    assert processing(view)["is_completed"] is False

    [b] = await claim(api, second)
    await patch(api, b["id"], {"state": "shipping"})  # a consumer's own state is still open
    view = (await api.get(f"/v1/events/{event}")).json()
    assert processing(view)["is_completed"] is False
    await patch(api, b["id"], {"state": "failed"})
    view = (await api.get(f"/v1/events/{event}")).json()
    assert processing(view) == {
        "has_transactions": True,
        "total_transactions": 2,
        "has_future_transactions": False,
        "is_completed": True,
    }


async def test_events_filter_by_a_consumers_transaction_state(api: Api, other_api: Api) -> None:
    older = await send(api, user="before")
    consumer = await pull_consumer(api)
    events = [await send(api, user=f"u{i}") for i in range(3)]
    [done] = await claim(api, consumer, limit=1)
    await patch(api, done["id"], {"state": "finished"})
    newest_first = list(reversed(events))

    assert await listed_ids(api, consumer=consumer) == newest_first
    assert await listed_ids(api, consumer=consumer, state="finished") == [events[0]]
    assert await listed_ids(api, consumer=consumer, state="pending") == newest_first[:2]
    assert await listed_ids(api, consumer=consumer, state="processing") == []
    assert await listed_ids(api, consumer=consumer, state="none") == [older]
    assert await listed_ids(api, consumer=consumer, state="pending", user_id="u2") == [events[2]]
    page = await api.get(
        "/v1/events", params={"consumer": consumer, "state": "pending", "limit": 1}
    )
    assert [e["id"] for e in page.json()["data"]] == [events[2]]
    rest = await api.get(
        "/v1/events",
        params={"consumer": consumer, "state": "pending", "cursor": page.json()["next_cursor"]},
    )
    assert [e["id"] for e in rest.json()["data"]] == [events[1]]

    refused = await api.get("/v1/events", params={"state": "pending"})
    assert refused.status_code == 400
    assert "consumer" in refused.json()["message"]
    # Another project naming this consumer is told it does not exist, with or without a state.
    await other_api.send("order_paid", "u9")
    for params in ({"consumer": consumer}, {"consumer": consumer, "state": "none"}):
        refused_elsewhere = await other_api.get("/v1/events", params=params)
        assert refused_elsewhere.status_code == 404
        assert refused_elsewhere.json()["code"] == "consumer_not_found"


# --- erasure -------------------------------------------------------------------------------


async def test_erasing_a_user_removes_their_transactions_and_history(
    api: Api, store: Store
) -> None:
    consumer = await pull_consumer(api)
    erased = [await send(api, user="erase-me"), await send(api, "other_trigger", "erase-me")]
    kept = await send(api, user="keep-me")
    for txn in await claim(api, consumer):
        await patch(api, txn["id"], {"state": "finished", "output": {"pii": "erase-me"}})
    txn_ids = {e: (await txn_of(api, consumer, e))["id"] for e in [*erased, kept]}

    answer = await api.client.delete("/v1/users/erase-me", headers=api.auth())
    assert answer.status_code == 200, answer.text
    assert answer.json()["deleted"]["events"] == 2

    def leftovers(db: Any) -> dict[str, int]:
        marks = ", ".join("?" for _ in erased)
        gone = [txn_ids[e] for e in erased]
        return {
            "transactions": len(
                db.all(f"SELECT id FROM transactions WHERE event_id IN ({marks})", erased)
            ),
            "history": len(
                db.all(
                    f"SELECT id FROM transaction_history WHERE transaction_id IN ({marks})", gone
                )
            ),
        }

    assert await store.read(leftovers) == {"transactions": 0, "history": 0}
    for event in erased:
        assert (await api.get(f"/v1/events/{event}")).status_code == 404
    for txn_id in (txn_ids[e] for e in erased):
        assert (await api.get(f"/v1/transactions/{txn_id}")).status_code == 404
    survivor = (await api.get(f"/v1/transactions/{txn_ids[kept]}")).json()
    assert survivor["state"] == "finished"
    assert len(survivor["history"]) == 3
    listed = (await api.get(f"/v1/consumers/{consumer}/transactions")).json()["data"]
    assert [t["event_id"] for t in listed] == [kept]
