"""Pull consumers: claim with a lease, report states and output, leases that run out, long-poll."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from eventyard.api.app import create_app
from eventyard.clock import FrozenClock, SystemClock, format_us
from eventyard.delivery.worker import DeliveryWorker
from eventyard.services.container import Services, build_services
from eventyard.settings import Settings
from eventyard.store import Store
from eventyard.store import transactions as txn_sql
from tests.conftest import Api, make_api

pytestmark = pytest.mark.anyio

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


async def patch(
    api: Api, txn_id: str, body: dict[str, Any], key: str | None = None
) -> httpx.Response:
    return await api.client.patch(f"/v1/transactions/{txn_id}", json=body, headers=api.auth(key))


async def key_id(api: Api, secret: str | None = None) -> str:
    secret = secret or api.test_key
    keys = (await api.get("/v1/keys")).json()["data"]  # listing keys takes an admin key
    [match] = [k for k in keys if secret.startswith(k["prefix"]) and not k["revoked"]]
    return str(match["id"])


async def pull_consumer(api: Api, **body: Any) -> str:
    made = await api.post("/v1/consumers", {"name": "worker", "kind": "pull", **body})
    assert made.status_code == 201, made.text
    return str(made.json()["id"])


async def claim(
    api: Api, consumer_id: str, key: str | None = None, **body: Any
) -> list[dict[str, Any]]:
    claimed = await api.post(f"/v1/consumers/{consumer_id}/claim", body, key=key)
    assert claimed.status_code == 200, claimed.text
    data: list[dict[str, Any]] = claimed.json()["data"]
    return data


async def send_many(api: Api, n: int, trigger: str = "order_paid") -> list[str]:
    ids = []
    for i in range(n):
        sent = await api.send(trigger, f"user-{i}", payload={"n": i})
        assert sent.status_code == 201, sent.text
        ids.append(sent.json()["id"])
    return ids


def steps(txn: dict[str, Any]) -> list[tuple[str | None, str]]:
    return [(h["exit_state"], h["enter_state"]) for h in txn["history"]]


async def test_claim_report_finished_and_the_history_shows_every_step(api: Api) -> None:
    consumer = await pull_consumer(api)
    sent = await send_many(api, 7)
    worker_key = (await api.post("/v1/keys", {"scopes": ["write", "read"]})).json()["key"]
    worker_id = await key_id(api, worker_key)

    first = await claim(api, consumer, key=worker_key, limit=5, lease_seconds=30)
    assert [t["event_id"] for t in first] == sent[:5]  # oldest first
    for txn in first:
        assert txn["state"] == "processing"
        assert txn["consumer_id"] == consumer
        assert txn["event"]["id"] == txn["event_id"]
        assert txn["event"]["trigger"] == "order_paid"
        assert txn["event"]["payload"] == {"n": sent.index(txn["event_id"])}
        assert ISO.match(txn["lease_expires_at"])
        lease_left = datetime.fromisoformat(txn["lease_expires_at"]) - datetime.fromisoformat(
            txn["history"][-1]["at"]
        )
        assert lease_left.total_seconds() == 30
        assert steps(txn) == [(None, "pending"), ("pending", "processing")]
        assert txn["history"][-1]["by"] == worker_id

    second = await claim(api, consumer, key=worker_key, limit=5, lease_seconds=30)
    assert [t["event_id"] for t in second] == sent[5:]
    assert await claim(api, consumer, limit=5) == []

    txn = first[0]
    done = await patch(
        api, txn["id"], {"state": "finished", "output": {"shipped": True, "n": 1}}, worker_key
    )
    assert done.status_code == 200, done.text
    body = done.json()
    assert body["state"] == "finished"
    assert body["output"] == {"shipped": True, "n": 1}
    assert body["lease_expires_at"] is None
    assert steps(body) == [(None, "pending"), ("pending", "processing"), ("processing", "finished")]
    assert [h["by"] for h in body["history"][1:]] == [worker_id, worker_id]
    assert all(ISO.match(h["at"]) for h in body["history"])
    assert body["history"] == sorted(body["history"], key=lambda h: h["at"])
    assert (await api.get(f"/v1/transactions/{txn['id']}")).json() == body

    again = await patch(api, txn["id"], {"state": "processing"})
    assert again.status_code == 409
    assert again.json()["code"] == "transaction_closed"
    assert (await api.get(f"/v1/transactions/{txn['id']}")).json()["state"] == "finished"


async def test_a_consumer_reports_its_own_lowercase_states(api: Api) -> None:
    consumer = await pull_consumer(api)
    await send_many(api, 1)
    [txn] = await claim(api, consumer)
    for bad in ("Shipping", "in transit", "", "9lives", "x" * 65):
        refused = await patch(api, txn["id"], {"state": bad})
        assert refused.status_code == 422, bad
        assert [e["path"] for e in refused.json()["errors"]] == ["$.state"]
    shipping = await patch(api, txn["id"], {"state": "shipping", "output": {"carrier": "ups"}})
    assert shipping.status_code == 200, shipping.text
    assert shipping.json()["state"] == "shipping"
    delivered = await patch(api, txn["id"], {"state": "out_for-delivery2"})
    assert delivered.json()["output"] == {"carrier": "ups"}  # kept when not reported
    failed = await patch(api, txn["id"], {"state": "failed", "output": {"reason": "lost"}})
    assert steps(failed.json())[1:] == [
        ("pending", "processing"),
        ("processing", "shipping"),
        ("shipping", "out_for-delivery2"),
        ("out_for-delivery2", "failed"),
    ]
    assert failed.json()["output"] == {"reason": "lost"}


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"state": "finished", "colour": "red"}, "$.colour"),
        ({"output": {}}, "$.state"),
        ({"state": "processing", "lease_seconds": 0}, "$.lease_seconds"),
        ({"state": "processing", "lease_seconds": 1.5}, "$.lease_seconds"),
    ],
)
async def test_an_invalid_report_changes_nothing(api: Api, body: dict[str, Any], path: str) -> None:
    consumer = await pull_consumer(api)
    await send_many(api, 1)
    [txn] = await claim(api, consumer)
    refused = await patch(api, txn["id"], body)
    assert refused.status_code == 422
    assert path in [e["path"] for e in refused.json()["errors"]]
    assert (await api.get(f"/v1/transactions/{txn['id']}")).json()["state"] == "processing"


async def test_two_reports_at_once_cannot_both_close_a_transaction(api: Api) -> None:
    consumer = await pull_consumer(api)
    await send_many(api, 1)
    [txn] = await claim(api, consumer)
    finished, failed = await asyncio.gather(
        patch(api, txn["id"], {"state": "finished", "output": "a"}),
        patch(api, txn["id"], {"state": "failed", "output": "b"}),
    )
    assert sorted([finished.status_code, failed.status_code]) == [200, 409]
    winner, loser = (finished, failed) if finished.status_code == 200 else (failed, finished)
    assert loser.json()["code"] == "transaction_closed"
    final = (await api.get(f"/v1/transactions/{txn['id']}")).json()
    assert final["state"] == winner.json()["state"]
    assert final["output"] == winner.json()["output"]
    assert [s for _, s in steps(final)].count(final["state"]) == 1
    assert len(final["history"]) == 3


async def test_claiming_is_only_for_pull_consumers(api: Api) -> None:
    hook = await api.post(
        "/v1/consumers", {"name": "hook", "kind": "webhook", "url": "https://hooks.example.com/x"}
    )
    await send_many(api, 1)
    refused = await api.post(f"/v1/consumers/{hook.json()['id']}/claim", {"limit": 1})
    assert refused.status_code == 409
    [txn] = (await api.get(f"/v1/consumers/{hook.json()['id']}/transactions")).json()["data"]
    assert txn["state"] == "pending"
    reported = await patch(api, txn["id"], {"state": "finished"})
    assert reported.status_code == 409
    assert (await api.get(f"/v1/transactions/{txn['id']}")).json()["state"] == "pending"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"limit": 0}, "$.limit"),
        ({"limit": 5000}, "$.limit"),
        ({"limit": "5"}, "$.limit"),
        ({"limit": 2.5}, "$.limit"),
        ({"lease_seconds": 0}, "$.lease_seconds"),
        ({"lease_seconds": 3601}, "$.lease_seconds"),
        ({"wait_seconds": -1}, "$.wait_seconds"),
        ({"wait_seconds": 31}, "$.wait_seconds"),
        ({"limit": 1, "batch": 2}, "$.batch"),
    ],
)
async def test_an_invalid_claim_claims_nothing(api: Api, body: dict[str, Any], path: str) -> None:
    consumer = await pull_consumer(api)
    await send_many(api, 1)
    refused = await api.post(f"/v1/consumers/{consumer}/claim", body)
    assert refused.status_code == 422
    assert [e["path"] for e in refused.json()["errors"]] == [path]
    assert len(await claim(api, consumer)) == 1


async def test_a_paused_consumer_claims_nothing_until_resumed(api: Api) -> None:
    consumer = await pull_consumer(api, state="paused")
    await send_many(api, 2)
    assert await claim(api, consumer) == []
    await api.post(f"/v1/consumers/{consumer}/resume")
    assert len(await claim(api, consumer)) == 2


# --- leases, with a clock the test moves -----------------------------------------------------


@pytest.fixture
async def frozen(
    store: Store, settings: Settings
) -> AsyncIterator[tuple[Api, Services, FrozenClock]]:
    clock = FrozenClock(SystemClock().now_us())
    services = build_services(store, settings, clock)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://eventyard.test") as c:
        yield await make_api(c, services, "frozen"), services, clock


async def test_processing_renews_the_lease(frozen: tuple[Api, Services, FrozenClock]) -> None:
    api, services, clock = frozen
    consumer = await pull_consumer(api)
    await send_many(api, 1)
    start = clock.now_us()
    [txn] = await claim(api, consumer, lease_seconds=30)
    assert txn["lease_expires_at"] == format_us(start + 30_000_000)
    clock.advance(20)
    renewed = await patch(api, txn["id"], {"state": "processing", "lease_seconds": 600})
    assert renewed.status_code == 200
    assert renewed.json()["lease_expires_at"] == format_us(start + 620_000_000)
    assert len(renewed.json()["history"]) == 2  # the same state again is no new step
    clock.advance(300)  # past the first lease, inside the renewed one
    assert (
        await services.store.write(lambda db: txn_sql.release_expired_leases(db, clock.now_us()))
        == 0
    )
    assert (await api.get(f"/v1/transactions/{txn['id']}")).json()["state"] == "processing"


async def test_an_expired_lease_returns_the_transaction_to_pending(
    frozen: tuple[Api, Services, FrozenClock],
) -> None:
    api, services, clock = frozen
    consumer = await pull_consumer(api)
    [event] = await send_many(api, 1)
    [txn] = await claim(api, consumer, lease_seconds=30)
    clock.advance(29)
    assert (
        await services.store.write(lambda db: txn_sql.release_expired_leases(db, clock.now_us()))
        == 0
    )
    assert await claim(api, consumer) == []
    clock.advance(2)
    worker = DeliveryWorker(
        services.store, services.settings, clock, services.notifier, services.metrics
    )
    await worker.housekeeping()
    back = (await api.get(f"/v1/transactions/{txn['id']}")).json()
    assert back["state"] == "pending"
    assert back["lease_expires_at"] is None
    assert steps(back)[-1] == ("processing", "pending")
    assert back["history"][-1]["by"] == "worker"
    assert back["history"][-1]["at"] == format_us(clock.now_us())

    [again] = await claim(api, consumer, lease_seconds=30)
    assert again["id"] == txn["id"]
    assert again["event"]["id"] == event
    assert steps(again) == [
        (None, "pending"),
        ("pending", "processing"),
        ("processing", "pending"),
        ("pending", "processing"),
    ]
    await worker.stop()


# --- long-poll -----------------------------------------------------------------------------


async def test_a_waiting_claim_returns_as_soon_as_an_event_arrives(api: Api) -> None:
    consumer = await pull_consumer(api)
    waiting = asyncio.ensure_future(claim(api, consumer, limit=5, wait_seconds=5))
    await asyncio.sleep(0.3)
    assert not waiting.done()
    sent_at = time.monotonic()
    [event] = await send_many(api, 1)
    claimed = await asyncio.wait_for(waiting, 4)
    took = time.monotonic() - sent_at
    assert [t["event_id"] for t in claimed] == [event]
    assert claimed[0]["state"] == "processing"
    assert took < 1.0, took


async def test_a_waiting_claim_with_nothing_to_do_returns_empty_after_its_wait(api: Api) -> None:
    consumer = await pull_consumer(api)
    started = time.monotonic()
    assert await claim(api, consumer, wait_seconds=0.3) == []
    took = time.monotonic() - started
    assert 0.25 <= took < 1.5, took


async def test_replay_leaves_work_in_a_state_of_the_consumers_own_alone(api: Api) -> None:
    consumer = await pull_consumer(api)
    await send_many(api, 2)
    first, second = await claim(api, consumer, limit=2)
    await patch(api, first["id"], {"state": "shipping"})
    await patch(api, second["id"], {"state": "finished"})
    replayed = await api.post(f"/v1/consumers/{consumer}/replay", {"since": "2000-01-01T00:00:00Z"})
    assert replayed.json() == {"requeued": 1, "created": 0}, replayed.text
    shipping = await api.get(f"/v1/transactions/{first['id']}")
    assert shipping.json()["state"] == "shipping"
    finished = await api.get(f"/v1/transactions/{second['id']}")
    assert finished.json()["state"] == "pending"


async def test_whole_numbers_written_as_floats_are_taken(api: Api) -> None:
    # JSON Schema counts 2.0 as an integer, as the OpenAPI document's `integer` says.
    consumer = await pull_consumer(api)
    await send_many(api, 3)
    claimed = await claim(api, consumer, limit=2.0, lease_seconds=30.0)
    assert len(claimed) == 2
    reported = await patch(api, claimed[0]["id"], {"state": "processing", "lease_seconds": 60.0})
    assert reported.status_code == 200, reported.text
