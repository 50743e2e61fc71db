"""Pull consumers through the client's consume loop, against a real server on each backend.

What a user would check: the states their reports leave, as `GET /v1/events/{id}` shows
them; that a transaction held for longer than its lease stays theirs; that leaving the loop
hands back what it claimed and did not hand out; that a failing claim does not end the loop;
that one slow report does not hold up the other transactions' renewals.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import json
import logging
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from eventyard_client import AsyncClient, Client, Conflict, Resource, ServerError, _async, _sync
from eventyard_client.consume import ConsumeOptions, PulledTransaction, failure_output

from tests.client.conftest import RunningServer, start_server

# No loop in these tests may outlive its test; each one's end is asserted too.
LOOP_DEADLINE = 30.0


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[RunningServer]:
    """For tests of what the client decides, where the backend plays no part."""
    running = start_server(f"sqlite:///{tmp_path}/eventyard.db", tmp_path / "server.log")
    try:
        yield running
    finally:
        running.process.stop()


def steps(txn: Resource) -> list[tuple[str | None, str]]:
    return [(h["exit_state"], h["enter_state"]) for h in txn["history"]]


def transaction_of(client: Client, event_id: str) -> Resource:
    (txn,) = client.events.get(event_id)["transactions"]
    return txn


def pull_consumer(client: Client, trigger: str = "order_paid") -> str:
    return str(client.consumers.create("worker", "pull", triggers=[trigger]).id)


class FlakyClaims(httpx.BaseTransport):
    """The network between client and server: the first claims fail as a restarting server
    fails them (no connection, then 503 with Retry-After: 0), the rest pass through."""

    def __init__(self, failures: list[int | None]) -> None:
        self._real = httpx.HTTPTransport()
        self._failures = failures  # None: connection refused; a number: that status

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/claim") and self._failures:
            status = self._failures.pop(0)
            if status is None:
                raise httpx.ConnectError("connection refused", request=request)
            return httpx.Response(
                status,
                headers={"retry-after": "0"},
                json={"code": "unavailable", "message": "restarting"},
            )
        return self._real.handle_request(request)

    def close(self) -> None:
        self._real.close()


def test_a_consume_loop_reports_states_survives_failed_claims_and_releases_on_break(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eventyard_client")
    with Client(server.url, server.live_key) as client:
        consumer_id = pull_consumer(client)
        sent = [client.send("order_paid", f"u{n}", {"n": n}).id for n in range(5)]
        client.send("signup", "u9")  # another trigger: not this consumer's

        handed_out: list[PulledTransaction] = []
        for txn in client.consume(consumer_id, batch_size=2, wait_seconds=0, stop_when_empty=True):
            handed_out.append(txn)
            assert txn.state == "processing"
            assert steps(txn.resource) == [(None, "pending"), ("pending", "processing")]
            n = txn.event.payload["n"]
            if n == 1:
                try:
                    raise ValueError("card declined")
                except ValueError as exc:
                    txn.fail(exc, output={"attempted": True})
            elif n == 2:
                txn.set_state("shipping", {"carrier": "dhl"})
            else:
                txn.finish({"invoice": f"inv_{n}"})

        # Every event, once, in the order they were sent, each with its own event.
        assert [t.event.id for t in handed_out] == sent
        assert {t.consumer_id for t in handed_out} == {consumer_id}
        assert [t.state for t in handed_out] == [
            "finished",
            "failed",
            "shipping",
            "finished",
            "finished",
        ]

        finished = client.events.get(sent[0])
        assert finished["transactions"][0]["output"] == {"invoice": "inv_0"}
        assert steps(finished["transactions"][0]) == [
            (None, "pending"),
            ("pending", "processing"),
            ("processing", "finished"),
        ]
        assert all(h["by"].startswith("key_") for h in finished["transactions"][0]["history"][1:])
        assert finished["processing"]["is_completed"] is True

        failed = transaction_of(client, sent[1])
        assert failed["state"] == "failed"
        assert failed["output"] == {"attempted": True, "error": "ValueError: card declined"}

        shipping = client.events.get(sent[2])
        assert shipping["transactions"][0]["state"] == "shipping"
        assert shipping["transactions"][0]["output"] == {"carrier": "dhl"}
        assert shipping["processing"]["has_future_transactions"] is True
        assert shipping["processing"]["is_completed"] is False
        # A state of one's own is not claimable, and has no lease to run out: still ours.
        assert client.consumers.claim(consumer_id, wait_seconds=0) == []
        held = handed_out[2]
        assert held.finish({"delivered": True}).state == "finished"
        assert client.events.get(sent[2])["processing"]["is_completed"] is True
        assert steps(transaction_of(client, sent[2]))[-2:] == [
            ("processing", "shipping"),
            ("shipping", "finished"),
        ]
        # A finished transaction takes no more reports.
        with pytest.raises(Conflict):
            held.fail("too late")
        assert transaction_of(client, sent[2])["state"] == "finished"

        # Through a network whose first claims fail (a server restarting), a loop left after
        # one transaction, with three more claimed and not handed out.
        more = [client.send("order_paid", f"v{n}").id for n in range(4)]

        flaky = FlakyClaims([None, 503, 503])
        with Client(server.url, server.live_key, max_retries=0, transport=flaky) as consumer:
            for txn in consumer.consume(consumer_id, batch_size=4, wait_seconds=0):
                first = txn
                break  # with three more claimed and not handed out
        assert first.event.id == more[0]
        failures = [r for r in caplog.records if "claiming failed" in r.getMessage()]
        assert len(failures) == 3
        assert all(r.levelno == logging.WARNING for r in failures)
        assert "trying again in 0.0 s" in failures[2].getMessage()  # as Retry-After said
        assert any("works again after 3" in r.getMessage() for r in caplog.records)

        # The three the loop never handed out are pending again at once, for anyone.
        again = client.consumers.claim(consumer_id, limit=10, wait_seconds=0)
        assert [t.event.id for t in again] == more[1:]
        assert steps(again[0]) == [
            (None, "pending"),
            ("pending", "processing"),
            ("processing", "pending"),
            ("pending", "processing"),
        ]
        # The one handed out and never reported stays with its holder until the lease runs
        # out; the loop says so.
        assert transaction_of(client, more[0])["state"] == "processing"
        assert any(
            r.levelno == logging.WARNING and first.id in r.getMessage() for r in caplog.records
        )


def test_renewal_holds_a_transaction_past_its_lease_while_another_loop_waits(
    server: RunningServer,
) -> None:
    lease = 2
    with Client(server.url, server.live_key) as client:
        consumer_id = pull_consumer(client)
        kept_id = client.send("order_paid", "u1").id
        control_id = client.send("order_paid", "u2").id

        # Another consumer process: it takes whatever becomes pending again.
        other = client.consume(consumer_id, lease_seconds=lease, wait_seconds=1)
        taken: list[str] = []

        def run_other() -> None:
            for txn in other:
                taken.append(txn.event.id)
                txn.finish()

        thread = threading.Thread(target=run_other)
        with client.consume(consumer_id, lease_seconds=lease, batch_size=1, wait_seconds=0) as mine:
            txn = next(mine)
            assert txn.event.id == kept_id
            first_lease = txn.lease_expires_at
            # The control: claimed with the same lease, never renewed.
            (control,) = client.consumers.claim(consumer_id, limit=1, lease_seconds=lease)
            assert control.event.id == control_id
            thread.start()
            # Long work: several leases long, and until the control's lease has run out and
            # the other loop has taken it, which proves leases do run out here meanwhile.
            started = time.monotonic()
            while time.monotonic() - started < 3 * lease or control_id not in taken:
                assert time.monotonic() - started < LOOP_DEADLINE
                time.sleep(0.2)
            assert kept_id not in taken
            assert transaction_of(client, kept_id)["state"] == "processing"
            assert txn.lease_expires_at is not None
            assert first_lease is not None
            assert txn.lease_expires_at > first_lease
            txn.finish({"took": "long"})
        other.stop()
        thread.join(LOOP_DEADLINE)
        assert not thread.is_alive()

        assert taken == [control_id]
        # Renewals move the lease without adding to the history: no expiry, no second claim.
        assert steps(transaction_of(client, kept_id)) == [
            (None, "pending"),
            ("pending", "processing"),
            ("processing", "finished"),
        ]
        control_history = transaction_of(client, control_id)["history"]
        assert (control_history[2]["exit_state"], control_history[2]["by"]) == (
            "processing",
            "worker",
        )


def test_async_consume_reports_renews_and_releases_on_an_exception(
    server: RunningServer,
) -> None:
    async def main() -> dict[str, Any]:
        async with AsyncClient(server.url, server.live_key) as client:
            consumer = await client.consumers.create("worker", "pull", triggers=["order_paid"])
            sent = [(await client.send("order_paid", f"u{n}", {"n": n})).id for n in range(4)]
            seen: list[str] = []
            leases: list[str] = []  # the first one's lease: as claimed, then after long work

            async def work() -> None:
                async with client.consume(
                    consumer.id, batch_size=4, lease_seconds=2, wait_seconds=0
                ) as txns:
                    async for txn in txns:
                        seen.append(txn.event.id)
                        n = txn.event.payload["n"]
                        if n == 0:
                            leases.append(txn.lease_expires_at)
                            await asyncio.sleep(3)  # long work: a lease and a half
                            current = await client.transactions.get(txn.id)
                            leases.append(current.lease_expires_at)
                            await txn.finish({"n": n})
                        elif n == 1:
                            await txn.fail("no stock")
                        else:
                            raise RuntimeError("stuck")

            with pytest.raises(RuntimeError, match="stuck"):
                await work()
            after = await client.consumers.claim(consumer.id, limit=10, wait_seconds=0)
            events = {i: await client.events.get(i) for i in sent}
            return {"sent": sent, "seen": seen, "after": after, "events": events, "leases": leases}

    result = asyncio.run(main())
    sent, events = result["sent"], result["events"]
    assert result["seen"] == sent[:3]
    claimed_until, renewed_until = (datetime.fromisoformat(t) for t in result["leases"])
    assert renewed_until - claimed_until >= timedelta(seconds=1.5)
    first = events[sent[0]]["transactions"][0]
    assert first["state"] == "finished"
    assert first["output"] == {"n": 0}
    assert steps(first) == [
        (None, "pending"),
        ("pending", "processing"),
        ("processing", "finished"),
    ]
    assert events[sent[1]]["transactions"][0]["output"] == {"error": "no stock"}
    # The third raised in the loop's body: handed out, so left to its lease; the fourth was
    # never handed out, so it was released and is claimable at once.
    assert events[sent[2]]["transactions"][0]["state"] == "processing"
    assert [t.event.id for t in result["after"]] == [sent[3]]


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ({"batch_size": 0}, "batch_size must be from 1 to 1000"),
        ({"lease_seconds": 1.5}, "lease_seconds must be whole seconds"),
        ({"wait_seconds": 31}, "wait_seconds must be from 0 to 30"),
    ],
)
def test_options_out_of_the_servers_range_are_refused_before_any_claim(
    option: dict[str, Any], message: str
) -> None:
    with (
        Client("http://127.0.0.1:9", "sk_live_x") as client,
        pytest.raises(ValueError, match=message),
    ):
        client.consume("con_x", **option)


def test_a_failure_is_recorded_in_the_output_beside_what_was_given() -> None:
    assert failure_output(None, {"a": 1}) == {"a": 1}
    assert failure_output("no stock", None) == {"error": "no stock"}
    assert failure_output(KeyError("sku"), {"a": 1}) == {"a": 1, "error": "KeyError: 'sku'"}
    assert failure_output("no stock", [1, 2]) == {"error": "no stock", "output": [1, 2]}


class SlowReportAndBusyProxy(httpx.BaseTransport):
    """The network edge: the report of `slow_id` takes until `gate` opens (a slow network
    under one user thread), and the first renewal of `busy_id` is answered 503 with
    Retry-After: 30 by a proxy. Renewals that reach the server are recorded."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.gate = threading.Event()
        self.slow_id: str | None = None
        self.busy_id: str | None = None
        self.renewed: list[str] = []
        self._refused = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "PATCH":
            txn_id = request.url.path.rsplit("/", 1)[-1]
            if json.loads(request.read())["state"] != "processing":
                if txn_id == self.slow_id:
                    self.gate.wait(LOOP_DEADLINE)
            elif txn_id == self.busy_id and not self._refused:
                self._refused = True
                return httpx.Response(
                    503, headers={"retry-after": "30"}, json={"code": "unavailable"}
                )
            else:
                self.renewed.append(txn_id)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_a_slow_report_and_a_busy_proxy_do_not_hold_up_other_renewals(
    sqlite_server: RunningServer,
) -> None:
    server = sqlite_server
    network = SlowReportAndBusyProxy()
    with Client(server.url, server.live_key, transport=network) as client:
        consumer_id = pull_consumer(client)
        for n in range(2):
            client.send("order_paid", f"u{n}")
        with client.consume(consumer_id, batch_size=2, lease_seconds=6, wait_seconds=0) as txns:
            slow, other = next(txns), next(txns)
            first_lease = other.lease_expires_at
            network.slow_id, network.busy_id = slow.id, other.id
            reporting = threading.Thread(target=slow.finish)
            reporting.start()  # and it hangs until the gate opens
            try:
                # The renewer skips the transaction being reported, sends the other's
                # renewal once (no 30 s Retry-After slept) and tries again a round later.
                deadline = time.monotonic() + 10
                while other.id not in network.renewed:
                    assert time.monotonic() < deadline, "the other lease was not renewed"
                    time.sleep(0.02)
            finally:
                network.gate.set()
            reporting.join(LOOP_DEADLINE)
            assert slow.state == "finished"
            current = client.transactions.get(other.id)
            assert current.state == "processing"
            assert first_lease is not None
            assert current.lease_expires_at > first_lease
            other.finish()


def test_a_claim_is_tried_again_after_a_transient_status_only() -> None:
    def answers(*statuses: int) -> httpx.MockTransport:
        # Answering for the server: only what the loop does with a status matters here.
        left = list(statuses)

        def answer(request: httpx.Request) -> httpx.Response:
            status = left.pop(0) if left else 200
            if status == 200:
                return httpx.Response(200, json={"data": []})
            return httpx.Response(status, headers={"retry-after": "0"}, json={"code": "no"})

        return httpx.MockTransport(answer)

    url = "http://eventyard.test"
    with Client(url, "sk_live_x", max_retries=0, transport=answers(408, 425, 502, 522)) as client:
        assert list(client.consume("con_x", wait_seconds=0, stop_when_empty=True)) == []
    with (
        Client(url, "sk_live_x", max_retries=0, transport=answers(501)) as client,
        pytest.raises(ServerError),
    ):
        list(client.consume("con_x", wait_seconds=0, stop_when_empty=True))


def test_both_shells_spell_out_the_consume_options_with_their_defaults() -> None:
    expected = {f.name: f.default for f in dataclasses.fields(ConsumeOptions)}
    for shell in (_sync.Client, _async.AsyncClient):
        parameters = list(inspect.signature(shell.consume).parameters.values())[2:]
        assert {p.name: p.default for p in parameters} == expected, shell
        assert {p.kind for p in parameters} == {inspect.Parameter.KEYWORD_ONLY}
