"""A webhook consumer receives a signed event, retried on failure with the same webhook-id."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
import standardwebhooks

from eventyard.api.app import create_app
from eventyard.clock import FrozenClock, SystemClock
from eventyard.delivery.worker import DeliveryWorker
from eventyard.services.container import build_services
from eventyard.settings import Settings
from eventyard.store import Store
from tests.conftest import Api, make_api
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(
    store: Store, settings: Settings
) -> AsyncIterator[tuple[Api, DeliveryWorker, FrozenClock]]:
    clock = FrozenClock(SystemClock().now_us())  # signatures are checked against real time
    services = build_services(store, settings.replace(webhook_allow_private=True), clock)
    worker = DeliveryWorker(store, services.settings, clock, services.notifier, services.metrics)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://eventyard.test") as c:
        yield await make_api(c, services, "acme"), worker, clock
    await worker.stop()


async def test_failing_twice_then_answering_delivers_on_the_third_attempt(world) -> None:  # type: ignore[no-untyped-def]
    api, worker, clock = world
    async with Receiver() as receiver:
        receiver.enqueue(Reply(500), Reply(503))
        created = await api.post(
            "/v1/consumers", {"name": "hook", "kind": "webhook", "url": receiver.url("/hook")}
        )
        assert created.status_code == 201, created.text
        consumer = created.json()
        assert consumer["secret"].startswith("whsec_")

        sent = await api.send("order_paid", "u1", payload={"total": 5})
        event_id = sent.json()["id"]

        for wait in (0, 5.5, 330):  # the schedule: at once, 5 s, 5 min (with ±10 % jitter)
            clock.advance(wait)
            assert await worker.run_once() == 1
            await worker.drain()
        requests = await receiver.wait_for(3)
        ids = {r.headers["webhook-id"] for r in requests}
        assert len(ids) == 1
        # The first attempt is signed at the real time (later ones at the test clock's).
        first = requests[0]
        wh = standardwebhooks.Webhook(consumer["secret"])
        verified = wh.verify(first.body, dict(first.headers))
        assert verified["id"] == event_id
        assert requests[-1].body == first.body

        event = (await api.get(f"/v1/events/{event_id}")).json()
        (txn,) = event["transactions"]
        assert txn["state"] == "finished"
        assert [a["status_code"] for a in txn["delivery_attempts"]] == [500, 503, 200]
        assert [(h["exit_state"], h["enter_state"]) for h in txn["history"]] == [
            (None, "pending"),
            ("pending", "finished"),
        ]
        assert event["processing"]["is_completed"] is True
