"""Webhook delivery as a user sees it: what arrives, signed how, for which consumer, when.

Every test runs on SQLite and PostgreSQL with a real receiver on loopback. Schedules use a
frozen clock (see delivery_fixtures.py); the isolation test runs in real time, since what it
shows is that one consumer's hanging endpoint does not hold up another's deliveries.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator

import pytest
import standardwebhooks

from eventyard.clock import SystemClock
from eventyard.settings import Settings
from eventyard.store import Store
from tests.integration.delivery_fixtures import World, delivered_id, open_world, worker_running
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.anyio


@pytest.fixture
async def world(store: Store, settings: Settings) -> AsyncIterator[World]:
    async with open_world(store, settings) as w:
        yield w


def _stored_event(event: dict[str, object]) -> dict[str, object]:
    """The event as GET /v1/events/{id} shows it, without its transactions."""
    return {k: v for k, v in event.items() if k not in ("transactions", "processing")}


# --- what arrives ------------------------------------------------------------------------------


async def test_each_event_arrives_once_per_matching_consumer_signed_with_its_secret(
    world: World,
) -> None:
    async with Receiver() as first, Receiver() as second, Receiver() as only_a:
        hook_1 = await world.hook(first.url("/one"), name="one")
        hook_2 = await world.hook(second.url("/two"), name="two")
        hook_a = await world.hook(only_a.url("/a"), name="only-a", triggers=["a"])
        a_id = await world.send("a", "user/1", payload={"amount": 19.99, "tags": ["x"]})
        b_id = await world.send("b", "u2", payload={})

        assert await world.deliver() == 5
        assert await world.advance(3600) == 0  # nothing more, however long we wait

        for receiver, hook in ((first, hook_1), (second, hook_2)):
            assert len(receiver.requests) == 2
            by_event: dict[str, dict[str, object]] = {}
            for request in receiver.requests:
                assert request.method == "POST"
                assert request.headers["content-type"] == "application/json"
                body = standardwebhooks.Webhook(hook["secret"]).verify(
                    request.body, request.headers
                )
                by_event[body["id"]] = body
            assert set(by_event) == {a_id, b_id}
            for event_id in (a_id, b_id):
                assert by_event[event_id] == _stored_event(await world.event(event_id))
            # Each consumer's deliveries carry its own secret's signature only.
            other = hook_2 if hook is hook_1 else hook_1
            with pytest.raises(standardwebhooks.WebhookVerificationError):
                standardwebhooks.Webhook(other["secret"]).verify(
                    receiver.requests[0].body, receiver.requests[0].headers
                )
        assert by_event[a_id]["trigger"] == "a"
        assert by_event[a_id]["user_id"] == "user/1"
        assert by_event[a_id]["payload"] == {"amount": 19.99, "tags": ["x"]}

        (request,) = only_a.requests  # the consumer for `a` gets nothing for `b`
        assert (
            standardwebhooks.Webhook(hook_a["secret"]).verify(request.body, request.headers)["id"]
            == a_id
        )
        assert request.path == "/a"
        b_event = await world.event(b_id)
        assert {t["consumer_id"] for t in b_event["transactions"]} == {hook_1["id"], hook_2["id"]}
        for event_id in (a_id, b_id):
            event = await world.event(event_id)
            assert {t["state"] for t in event["transactions"]} == {"finished"}
            assert event["processing"]["is_completed"] is True
        # The webhook-id is the transaction's id: one per (consumer, event).
        ids = {r.headers["webhook-id"] for r in [*first.requests, *second.requests]}
        assert len(ids) == 4


async def test_a_paused_consumer_collects_pending_transactions_and_gets_them_on_resume(
    world: World,
) -> None:
    async with Receiver() as receiver:
        hook = await world.hook(receiver.url("/hook"))
        paused = await world.api.post(f"/v1/consumers/{hook['id']}/pause")
        assert paused.status_code == 200, paused.text
        assert paused.json()["state"] == "paused"
        sent = [await world.send(user_id=f"u{i}") for i in range(3)]

        assert await world.deliver() == 0
        assert await world.advance(600) == 0
        assert receiver.requests == []
        for event_id in sent:
            assert (await world.transaction(hook["id"], event_id))["state"] == "pending"

        resumed = await world.api.post(f"/v1/consumers/{hook['id']}/resume")
        assert resumed.status_code == 200, resumed.text
        assert resumed.json()["state"] == "enabled"
        assert await world.deliver() == 3
        assert sorted(delivered_id(r) for r in receiver.requests) == sorted(sent)
        for event_id in sent:
            assert (await world.transaction(hook["id"], event_id))["state"] == "finished"


async def test_an_operator_disabled_consumer_gets_no_new_transactions(world: World) -> None:
    async with Receiver() as receiver:
        hook = await world.hook(receiver.url("/hook"))
        before = await world.send(user_id="before")
        disabled = await world.api.client.patch(
            f"/v1/consumers/{hook['id']}", json={"state": "disabled"}, headers=world.api.auth()
        )
        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["disabled_reason"] == "operator"
        after = await world.send(user_id="after")

        assert await world.deliver() == 0
        assert receiver.requests == []
        assert (await world.event(after))["transactions"] == []
        # What it had before waits, and goes out once it is enabled again.
        assert (await world.transaction(hook["id"], before))["state"] == "pending"
        assert (await world.api.post(f"/v1/consumers/{hook['id']}/resume")).status_code == 200
        assert await world.deliver() == 1
        assert [delivered_id(r) for r in receiver.requests] == [before]


# --- operators ---------------------------------------------------------------------------------


async def test_retrying_a_failed_transaction_sends_it_again_with_the_same_webhook_id(
    world: World,
) -> None:
    async with Receiver(default=Reply(500)) as receiver:
        hook = await world.hook(receiver.url("/hook"), retry_schedule=[0])
        event_id = await world.send()
        assert await world.deliver() == 1
        txn = await world.transaction(hook["id"], event_id)
        assert txn["state"] == "failed"

        receiver.default = Reply(204)
        retried = await world.api.post(f"/v1/transactions/{txn['id']}/retry")
        assert retried.status_code == 200, retried.text
        assert retried.json()["state"] == "pending"
        again = await world.api.post(f"/v1/transactions/{txn['id']}/retry")
        assert again.status_code == 409, again.text  # still pending: nothing to retry yet
        assert await world.deliver() == 1

        first, second = receiver.requests
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == txn["id"]
        assert first.body == second.body
        txn = await world.transaction(hook["id"], event_id)
        assert txn["state"] == "finished"
        assert [a["status_code"] for a in txn["delivery_attempts"]] == [500, 204]
        assert [(h["exit_state"], h["enter_state"]) for h in txn["history"]] == [
            (None, "pending"),
            ("pending", "failed"),
            ("failed", "pending"),
            ("pending", "finished"),
        ]


async def test_replay_requeues_only_failed_or_everything_and_fills_in_older_events(
    world: World,
) -> None:
    async with Receiver() as receiver:
        older = await world.send(user_id="older")  # stored before the consumer existed
        hook = await world.hook(receiver.url("/hook"), retry_schedule=[0])
        receiver.enqueue(Reply(200), Reply(500))
        ok = await world.send(user_id="ok")
        assert await world.deliver() == 1
        bad = await world.send(user_id="bad")
        assert await world.deliver() == 1
        assert (await world.transaction(hook["id"], ok))["state"] == "finished"
        assert (await world.transaction(hook["id"], bad))["state"] == "failed"
        assert (await world.event(older))["transactions"] == []
        since = (await world.event(older))["timestamp"]
        path = f"/v1/consumers/{hook['id']}/replay"

        replayed = await world.api.post(path, {"since": since, "only_failed": True})
        assert replayed.status_code == 200, replayed.text
        assert replayed.json() == {"requeued": 1, "created": 0}
        assert await world.deliver() == 1
        assert delivered_id(receiver.requests[-1]) == bad
        assert (await world.transaction(hook["id"], bad))["state"] == "finished"

        replayed = await world.api.post(path, {"since": since})
        assert replayed.status_code == 200, replayed.text
        assert replayed.json() == {"requeued": 2, "created": 1}
        assert await world.deliver() == 3
        assert sorted(delivered_id(r) for r in receiver.requests[-3:]) == sorted([older, ok, bad])
        for event_id in (older, ok, bad):
            assert (await world.transaction(hook["id"], event_id))["state"] == "finished"

        # `since` is a bound: a replay from after the last event queues nothing.
        later = await world.api.post(path, {"since": "2999-01-01T00:00:00Z"})
        assert later.json() == {"requeued": 0, "created": 0}
        assert await world.deliver() == 0


async def test_a_rotated_secret_signs_alongside_the_new_one_for_the_overlap_only(
    world: World,
) -> None:
    async with Receiver() as receiver:
        hook = await world.hook(receiver.url("/hook"))
        old_secret = hook["secret"]
        rotated = await world.api.post(
            f"/v1/consumers/{hook['id']}/rotate-secret", {"overlap_seconds": 60}
        )
        assert rotated.status_code == 200, rotated.text
        new_secret = rotated.json()["secret"]
        assert new_secret.startswith("whsec_")
        assert new_secret != old_secret

        await world.send(user_id="during")
        assert await world.deliver() == 1
        during = receiver.requests[-1]
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        for secret in (old_secret, new_secret):
            assert standardwebhooks.Webhook(secret).verify(during.body, during.headers)

        # After the overlap (61 s: still within the receivers' 5-minute timestamp tolerance).
        world.frozen.advance(61)
        await world.send(user_id="after")
        assert await world.deliver() == 1
        after = receiver.requests[-1]
        assert len(after.headers["webhook-signature"].split(" ")) == 1
        assert standardwebhooks.Webhook(new_secret).verify(after.body, after.headers)
        with pytest.raises(standardwebhooks.WebhookVerificationError):
            standardwebhooks.Webhook(old_secret).verify(after.body, after.headers)


# --- destinations, isolation and metrics -------------------------------------------------------


# Private destinations (refused at creation and at every attempt, redirects not followed):
# tests/integration/test_webhook_destinations.py.


async def test_a_hanging_endpoint_does_not_hold_up_another_consumer(
    store: Store, settings: Settings
) -> None:
    # Real time: two attempts may be in flight to one consumer, four in all.
    async with (
        open_world(
            store, settings, clock=SystemClock(), consumer_concurrency=2, worker_concurrency=4
        ) as world,
        Receiver(default=Reply(hang=True)) as slow,
        Receiver() as fast,
    ):
        await world.hook(slow.url("/slow"), name="slow", timeout_seconds=5)
        await world.hook(fast.url("/fast"), name="fast")
        async with worker_running(world, grace_seconds=0):
            started = time.monotonic()
            batch = await world.api.post(
                "/v1/events/batch",
                {"events": [{"trigger": "signup", "user_id": f"u{i}"} for i in range(30)]},
            )
            assert batch.status_code == 200, batch.text
            sent = [item["id"] for item in batch.json()["results"]]
            arrived = await fast.wait_for(30, within=5)
            elapsed = time.monotonic() - started
            assert elapsed < 2.5, f"the fast consumer's 30 deliveries took {elapsed:.1f} s"
            assert sorted(delivered_id(r) for r in arrived) == sorted(sent)
            assert len(fast.requests) == 30
            # Meanwhile the slow one has its two attempts hanging, and no more.
            assert len(slow.requests) == 2
            assert time.monotonic() - started < 5  # before any of them timed out


async def test_slow_endpoints_filling_the_worker_do_not_starve_a_fast_one(
    store: Store, settings: Settings
) -> None:
    # Two hanging consumers could fill all four of the worker's slots between them; the
    # fast one, created last (its id sorts last), must still get its turn at once.
    async with (
        open_world(
            store, settings, clock=SystemClock(), consumer_concurrency=2, worker_concurrency=4
        ) as world,
        Receiver(default=Reply(hang=True)) as slow,
        Receiver() as fast,
    ):
        await world.hook(slow.url("/slow-1"), name="slow-1", timeout_seconds=10)
        await world.hook(slow.url("/slow-2"), name="slow-2", timeout_seconds=10)
        await world.hook(fast.url("/fast"), name="fast")
        async with worker_running(world, grace_seconds=0):
            started = time.monotonic()
            sent = [await world.send(user_id=f"u{i}") for i in range(10)]
            arrived = await fast.wait_for(10, within=5)
            elapsed = time.monotonic() - started
            assert elapsed < 3, f"the fast consumer's 10 deliveries took {elapsed:.1f} s"
            assert sorted(delivered_id(r) for r in arrived) == sorted(sent)
            assert len(slow.requests) <= 3  # four slots: the fast consumer keeps one


async def test_an_attempt_in_flight_does_not_keep_the_worker_busy(
    store: Store, settings: Settings
) -> None:
    # While an attempt hangs, the worker has nothing to do until it ends: it must sleep, not
    # poll the database in a tight loop (its leased delivery is not due again before then).
    async with (
        open_world(store, settings, clock=SystemClock()) as world,
        Receiver(default=Reply(hang=True)) as slow,
    ):
        await world.hook(slow.url("/slow"), timeout_seconds=10)
        await world.send()
        async with worker_running(world, grace_seconds=0):
            await slow.wait_for(1)
            cpu = time.process_time()
            await asyncio.sleep(1.5)
            busy = time.process_time() - cpu
            assert busy < 0.3, f"the idle worker used {busy:.2f} s of CPU in 1.5 s"
            assert len(slow.requests) == 1


async def test_metrics_count_attempts_by_outcome_and_show_the_oldest_pending_age(
    world: World,
) -> None:
    async with Receiver() as receiver:
        await world.hook(receiver.url("/hook"), name="live")
        backlog = await world.hook(receiver.url("/paused"), name="backlog")
        assert (await world.api.post(f"/v1/consumers/{backlog['id']}/pause")).status_code == 200
        receiver.enqueue(Reply(500))
        for i in range(3):
            await world.send(user_id=f"u{i}")
        assert await world.deliver() == 3
        world.frozen.advance(42)

        scraped = await world.api.client.get("/metrics")  # public: no key
        assert scraped.status_code == 200
        text = scraped.text
        assert re.search(r'^eventyard_webhook_attempts_total\{outcome="success"\} 2$', text, re.M)
        assert re.search(r'^eventyard_webhook_attempts_total\{outcome="retry"\} 1$', text, re.M)
        age = re.search(
            rf'^eventyard_oldest_pending_seconds\{{consumer="{backlog["id"]}"\}} ([0-9.]+)$',
            text,
            re.M,
        )
        assert age is not None, text
        assert 42 <= float(age.group(1)) < 43
        pending = rf'^eventyard_pending_transactions\{{consumer="{backlog["id"]}"\}} 3$'
        assert re.search(pending, text, re.M), text
