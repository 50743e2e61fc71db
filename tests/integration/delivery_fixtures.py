"""A delivery world for webhook tests: the API, a delivery worker and a clock, on one store.

`open_world(store, settings, **overrides)` builds the services with the given setting
overrides (webhook_allow_private=True unless said otherwise, since receivers live on
loopback), an API client with a project, and a `DeliveryWorker` sharing the services'
notifier and metrics. The clock is a `FrozenClock` started at the real time (the
`standardwebhooks` library checks `webhook-timestamp` against the wall clock), unless a
clock is given. Schedules are walked by `advance()`: move the clock, then run the worker's
rounds until nothing more is due — nothing sleeps on a retry schedule.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx

from eventyard.api.app import create_app
from eventyard.clock import Clock, FrozenClock, SystemClock
from eventyard.delivery.worker import DeliveryWorker
from eventyard.services.container import Services, build_services
from eventyard.settings import Settings
from eventyard.store import Store
from tests.conftest import Api, make_api
from tests.receiver import ReceivedRequest

# The default schedule, and how far to move the clock so each delay is surely due (+10 %
# jitter at most) and surely not yet (-10 % at least).
DEFAULT_SCHEDULE = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
PAST_JITTER = 1.11
BEFORE_JITTER = 0.89


def delivered_id(request: ReceivedRequest) -> str:
    """The id of the event a webhook request carries."""
    body = request.json()
    assert isinstance(body, dict)
    return str(body["id"])


@dataclass
class World:
    api: Api
    worker: DeliveryWorker
    clock: Clock
    services: Services

    @property
    def frozen(self) -> FrozenClock:
        assert isinstance(self.clock, FrozenClock)
        return self.clock

    async def hook(self, url: str, **fields: Any) -> dict[str, Any]:
        """Create a webhook consumer (named `hook` unless said otherwise); its JSON."""
        body = {"name": "hook", "kind": "webhook", "url": url, **fields}
        created = await self.api.post("/v1/consumers", body)
        assert created.status_code == 201, created.text
        consumer: dict[str, Any] = created.json()
        return consumer

    async def send(self, trigger: str = "signup", user_id: str = "u1", **fields: Any) -> str:
        """Post one event; its id."""
        sent = await self.api.send(trigger, user_id, **fields)
        assert sent.status_code == 201, sent.text
        event_id: str = sent.json()["id"]
        return event_id

    async def deliver(self) -> int:
        """Run worker rounds until nothing more is due now; how many attempts were made."""
        total = 0
        while started := await self.worker.run_once():
            total += started
            await self.worker.drain()
        return total

    async def advance(self, seconds: float) -> int:
        """Move the frozen clock, then deliver what fell due; the number of attempts."""
        self.frozen.advance(seconds)
        return await self.deliver()

    async def event(self, event_id: str) -> dict[str, Any]:
        got = await self.api.get(f"/v1/events/{event_id}")
        assert got.status_code == 200, got.text
        event: dict[str, Any] = got.json()
        return event

    async def transaction(self, consumer_id: str, event_id: str) -> dict[str, Any]:
        """The consumer's transaction for the event (it must have exactly one)."""
        event = await self.event(event_id)
        (txn,) = [t for t in event["transactions"] if t["consumer_id"] == consumer_id]
        return dict(txn)

    async def consumer(self, consumer_id: str) -> dict[str, Any]:
        got = await self.api.get(f"/v1/consumers/{consumer_id}")
        assert got.status_code == 200, got.text
        consumer: dict[str, Any] = got.json()
        return consumer


@contextlib.asynccontextmanager
async def open_world(
    store: Store, settings: Settings, *, clock: Clock | None = None, **overrides: Any
) -> AsyncIterator[World]:
    overrides.setdefault("webhook_allow_private", True)
    clock = clock or FrozenClock(SystemClock().now_us())
    services = build_services(store, settings.replace(**overrides), clock)
    worker = DeliveryWorker(store, services.settings, clock, services.notifier, services.metrics)
    transport = httpx.ASGITransport(app=create_app(services))  # type: ignore[arg-type]
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://eventyard.test") as c:
            yield World(await make_api(c, services, "acme"), worker, clock, services)
    finally:
        await worker.stop(grace_seconds=5)


@contextlib.asynccontextmanager
async def worker_running(world: World, grace_seconds: float = 0) -> AsyncIterator[None]:
    """The world's worker running its loop for the block, stopped and gone after it."""
    running = asyncio.create_task(world.worker.run())
    try:
        yield
    finally:
        await world.worker.stop(grace_seconds=grace_seconds)
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
