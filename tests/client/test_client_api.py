"""The client's management API and error mapping, against a real server on each backend."""

from __future__ import annotations

import asyncio
import json

import pytest
from eventyard_client import (
    AsyncClient,
    AuthenticationError,
    Client,
    Conflict,
    NotFound,
    TransportError,
    ValidationFailed,
)

from tests.client.conftest import RunningServer
from tests.e2e.server import free_port


@pytest.fixture
def server(shared_server: RunningServer) -> RunningServer:
    return shared_server


def test_send_returns_the_stored_event_and_a_repeat_returns_the_first(
    server: RunningServer,
) -> None:
    with Client(server.url, server.live_key) as client:
        first = client.send("signup", "user/1 é", {"plan": "pro"}, idempotency_key="k-1")
        again = client.send("signup", "user/1 é", {"plan": "pro"}, idempotency_key="k-1")
        assert again.id == first.id
        assert first.user_id == "user/1 é"
        assert first.payload == {"plan": "pro"}
        # Without a key of our own the client makes one, so every event carries one.
        generated = client.send("signup", 42)
        assert generated.idempotency_key
        assert generated.user_id == "42"
        stored = client.events.get(first.id)
        assert stored["processing"]["has_transactions"] is False


def test_server_refusals_raise_typed_errors_with_code_message_and_fields(
    server: RunningServer,
) -> None:
    with Client(server.url, server.live_key) as client:
        client.triggers.create(
            "Paid", attributes=[{"name": "amount", "type": "number", "required": True}]
        )
        with pytest.raises(ValidationFailed) as invalid:
            client.send("paid", "u1", {"amount": "lots"})
        assert invalid.value.status == 422
        assert invalid.value.code == "validation_failed"
        assert [e.path for e in invalid.value.errors] == ["$.payload.amount"]
        assert "must be a number" in str(invalid.value)

        with pytest.raises(Conflict) as taken:
            client.triggers.create("Paid")
        assert taken.value.code == "trigger_exists"
        with pytest.raises(NotFound):
            client.events.get("evt_01M842NG37RV5YDVT1V2DC5NJZ")
        client.send("paid", "u1", {"amount": 1}, idempotency_key="same")
        with pytest.raises(Conflict) as reused:
            client.send("paid", "u1", {"amount": 2}, idempotency_key="same")
        assert reused.value.code == "idempotency_key_reused"

    with Client(server.url, "sk_live_wrong") as stranger, pytest.raises(AuthenticationError):
        stranger.triggers.list()


def test_a_server_that_is_not_there_is_a_transport_error_after_retries() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with Client(url, "sk_live_x", max_retries=1) as client, pytest.raises(TransportError):
        client.triggers.list()


def test_triggers_keys_and_consumers_round_trip(server: RunningServer) -> None:
    with Client(server.url, server.live_key) as client:
        trigger = client.triggers.create("Order shipped", description="left the warehouse")
        assert trigger.id == "order_shipped"
        assert client.triggers.update("order_shipped", description="out").description == "out"
        assert [t.id for t in client.triggers.list()] == ["order_shipped"]
        assert client.triggers.archive("order_shipped").archived is True
        assert client.triggers.list() == []
        assert [t.id for t in client.triggers.list(archived=True)] == ["order_shipped"]

        key = client.keys.create("ingest", ["write"])
        assert key.key.startswith("sk_live_")
        assert key.id in {k.id for k in client.keys.list()}
        client.keys.revoke(key.id)
        with Client(server.url, key.key) as revoked, pytest.raises(AuthenticationError):
            revoked.send("signup", "u")

        consumer = client.consumers.create("jobs", "pull", triggers=["signup"])
        assert consumer.secret is None
        assert consumer.kind == "pull"
        assert client.consumers.pause(consumer.id).state == "paused"
        assert client.consumers.resume(consumer.id).state == "enabled"
        assert [c.id for c in client.consumers.list()] == [consumer.id]
        client.consumers.delete(consumer.id)
        with pytest.raises(NotFound):
            client.consumers.get(consumer.id)


def test_iterating_events_walks_every_page(server: RunningServer) -> None:
    with Client(server.url, server.test_key) as client:
        result = client.send_batch(
            [{"trigger": "signup", "user_id": f"u{i}", "payload": {"n": i}} for i in range(25)]
        )
        assert result.accepted == 25
        seen = [e.payload["n"] for e in client.events.iter(trigger="signup", limit=7)]
        assert sorted(seen) == list(range(25))
        assert client.events.list(limit=5, user_id="u3")["data"][0].payload == {"n": 3}
    with Client(server.url, server.live_key) as live:
        assert live.events.list()["data"] == []  # test events stay in the test environment


def test_async_client_does_the_same(server: RunningServer) -> None:
    async def main() -> list[str]:
        async with AsyncClient(server.url, server.live_key) as client:
            sent = await asyncio.gather(
                *(client.send("signup", f"u{i}", idempotency_key=f"a{i}") for i in range(10))
            )
            again = await client.send("signup", "u0", idempotency_key="a0")
            assert again.id == sent[0].id
            with pytest.raises(ValidationFailed):
                await client.send("Bad Trigger!", "u1")
            return [e.user_id async for e in client.events.iter(limit=3)]

    users = asyncio.run(main())
    assert sorted(users) == sorted(f"u{i}" for i in range(10))


def test_resources_are_plain_json(server: RunningServer) -> None:
    with Client(server.url, server.live_key) as client:
        event = client.send("signup", "u1", {"a": [1, {"b": None}]})
        assert json.loads(json.dumps(event))["payload"] == {"a": [1, {"b": None}]}
        assert event.payload["a"][1] == {"b": None}
        with pytest.raises(AttributeError, match="no field 'nope'"):
            _ = event.nope
