"""Webhooks cannot be pointed at the server's own network (SSRF), by any road.

With EVENTYARD_WEBHOOK_ALLOW_PRIVATE off (the default) a real receiver listens on
127.0.0.1 and nothing may reach it: creating or changing a consumer refuses its address
with a 422 naming it, whether written as a literal, in one of the numeric forms the
resolver also reads (`2130706433`, `127.1`, `0x7f.1`), as an IPv6 form embedding it, or
as a name that really resolves to it (`localhost`); a consumer made while private
destinations were allowed is refused at every attempt; a name that resolved to a public
address at creation and to a private one at delivery (DNS rebinding) is refused at
delivery. A receiver's redirect is never followed: a 3xx is a failed attempt that says so,
and the redirect's target receives nothing. Each attempt resolves the name once and
connects to the address it vetted.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from eventyard.delivery.sender import WebhookSender
from eventyard.delivery.worker import DeliveryWorker
from eventyard.settings import Settings
from eventyard.store import Store
from tests.integration.delivery_fixtures import World, open_world
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.anyio

PUBLIC = "93.184.215.14"  # a public address; nothing here ever connects to it
HINT = "EVENTYARD_WEBHOOK_ALLOW_PRIVATE=true"


def private_urls(port: int) -> list[tuple[str, str]]:
    """(URL, the refused address its message names), all of them leading to 127.0.0.1 or
    to another private, link-local or metadata address."""
    return [
        (f"http://127.0.0.1:{port}/hook", "127.0.0.1 is a loopback address"),
        (f"http://localhost:{port}/hook", "localhost resolves to"),
        (f"http://[::1]:{port}/hook", "::1 is a loopback address"),
        (f"http://[::ffff:127.0.0.1]:{port}/hook", "embedding 127.0.0.1"),
        (f"http://2130706433:{port}/hook", "resolves to 127.0.0.1"),  # 127.0.0.1 as one number
        (f"http://127.1:{port}/hook", "resolves to 127.0.0.1"),
        (f"http://0x7f.1:{port}/hook", "resolves to 127.0.0.1"),
        (f"http://0.0.0.0:{port}/hook", "unspecified"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://[fd00:ec2::254]/latest/meta-data/", "a cloud metadata address"),
        ("https://10.0.0.5/hook", "a private address"),
        ("https://192.168.1.1/hook", "a private address"),
        ("https://100.64.0.1/hook", "not a public address"),
    ]


async def consumers_of(world: World) -> list[dict[str, Any]]:
    listed = await world.api.get("/v1/consumers")
    assert listed.status_code == 200, listed.text
    data: list[dict[str, Any]] = listed.json()["data"]
    return data


async def test_creating_a_consumer_for_a_private_destination_is_a_clear_422(
    store: Store, settings: Settings
) -> None:
    async with (
        open_world(store, settings, webhook_allow_private=False) as world,
        Receiver() as receiver,
    ):
        for url, named in private_urls(receiver.port):
            body = {"name": "hook", "kind": "webhook", "url": url}
            refused = await world.api.post("/v1/consumers", body)
            assert refused.status_code == 422, (url, refused.text)
            problem = refused.json()
            (error,) = problem["errors"]
            assert error["path"] == "$.url", problem
            assert "blocked destination" in error["message"], (url, error)
            assert named in error["message"], (url, error)
            assert HINT in error["message"]
        assert await consumers_of(world) == []
        assert receiver.requests == []


async def test_changing_a_consumer_to_a_private_destination_is_a_422(
    store: Store, settings: Settings
) -> None:
    async with (
        open_world(store, settings, webhook_allow_private=False) as world,
        Receiver() as receiver,
    ):
        hook = await world.hook(f"http://{PUBLIC}/hook")
        changed = await world.api.client.patch(
            f"/v1/consumers/{hook['id']}",
            json={"url": receiver.url("/hook")},
            headers=world.api.auth(),
        )
        assert changed.status_code == 422, changed.text
        assert "127.0.0.1 is a loopback address" in changed.text
        assert (await world.consumer(hook["id"]))["url"] == f"http://{PUBLIC}/hook"


async def test_private_destinations_are_accepted_when_the_operator_allows_them(
    store: Store, settings: Settings
) -> None:
    async with open_world(store, settings) as world, Receiver() as receiver:
        for url, _ in private_urls(receiver.port)[:3]:
            made = await world.api.post(
                "/v1/consumers", {"name": url, "kind": "webhook", "url": url}
            )
            assert made.status_code == 201, made.text


async def deliver_with(world: World, settings: Settings) -> None:
    """Run a worker with `settings` (another server's) until nothing more is due."""
    worker = DeliveryWorker(
        world.services.store,
        settings,
        world.clock,
        world.services.notifier,
        world.services.metrics,
    )
    try:
        while await worker.run_once():
            await worker.drain()
    finally:
        await worker.stop(grace_seconds=5)


async def test_a_consumer_made_while_private_was_allowed_is_refused_at_delivery(
    store: Store, settings: Settings
) -> None:
    # The operator turned EVENTYARD_WEBHOOK_ALLOW_PRIVATE off after the consumer was made.
    async with open_world(store, settings) as world, Receiver() as receiver:
        hook = await world.hook(receiver.url("/hook"))
        event_id = await world.send()
        await deliver_with(world, world.services.settings.replace(webhook_allow_private=False))
        assert receiver.requests == []
        txn = await world.transaction(hook["id"], event_id)
        (attempt,) = txn["delivery_attempts"]
        assert attempt["status_code"] is None
        assert attempt["error"].startswith("blocked destination: 127.0.0.1 is a loopback")
        assert txn["state"] != "finished"


async def test_a_name_rebound_to_a_private_address_after_creation_is_refused_at_delivery(
    store: Store, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: public when the consumer is made, loopback when the event goes out."""
    answers = [PUBLIC]
    loop = asyncio.get_running_loop()
    real = loop.getaddrinfo

    async def resolver(host: str, port: int, **kwargs: Any) -> Any:
        if host != "rebind.example.test":
            return await real(host, port, **kwargs)
        address = answers[-1]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(loop, "getaddrinfo", resolver)
    async with (
        open_world(store, settings, webhook_allow_private=False) as world,
        Receiver() as receiver,
    ):
        hook = await world.hook(receiver.url("/hook", host="rebind.example.test"))
        answers.append("127.0.0.1")
        event_id = await world.send()
        assert await world.deliver() == 1
        assert receiver.requests == []
        (attempt,) = (await world.transaction(hook["id"], event_id))["delivery_attempts"]
        assert attempt["status_code"] is None
        assert "rebind.example.test resolves to 127.0.0.1, a loopback address" in attempt["error"]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
async def test_a_redirect_is_never_followed(store: Store, settings: Settings, status: int) -> None:
    # Private destinations are allowed here so the first hop (a local receiver) is reached;
    # its redirect to another local address must still go nowhere.
    async with (
        open_world(store, settings) as world,
        Receiver() as internal,
        Receiver() as redirecting,
    ):
        target = internal.url("/admin")
        redirecting.enqueue(Reply(status, headers={"location": target}))
        hook = await world.hook(redirecting.url("/hook"))
        event_id = await world.send()
        assert await world.deliver() == 1
        await asyncio.sleep(0.1)  # time for a followed redirect to arrive, if one were
        assert len(redirecting.requests) == 1
        assert internal.requests == []
        txn = await world.transaction(hook["id"], event_id)
        (attempt,) = txn["delivery_attempts"]
        assert attempt["status_code"] == status
        assert attempt["error"] == f"redirect ({status} to {target}) not followed"
        assert txn["state"] != "finished"


async def test_an_attempt_resolves_once_and_connects_to_the_address_it_checked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """No second lookup between the check and the connection: a resolver that would answer
    differently the second time is never asked twice."""
    lookups: list[str] = []
    loop = asyncio.get_running_loop()

    async def resolver(host: str, port: int, **kwargs: Any) -> Any:
        lookups.append(host)
        address = "127.0.0.1" if len(lookups) == 1 else "192.0.2.1"  # TEST-NET: unreachable
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(loop, "getaddrinfo", resolver)
    sender = WebhookSender(allow_private=True)
    try:
        async with Receiver() as receiver:
            url = receiver.url("/hook", host="hooks.example.test")
            result = await sender.send(url, b"{}", {"content-type": "application/json"}, 5)
            assert result.ok, result
            assert lookups == ["hooks.example.test"]
            (request,) = receiver.requests
            assert request.headers["host"] == f"hooks.example.test:{receiver.port}"
    finally:
        await sender.aclose()
