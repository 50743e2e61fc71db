"""`track()`'s background queue against a real server on each backend: batching, retrying
through restarts and crashes without losing or doubling an event, the exit hook, a bounded
queue, rejected events, forks, and the async twin. The only fakes sit at the network edge: a
port nobody listens on, transports that lose an answer after the server has acted on it or
cut one process off, and, where only the client's decisions matter, a transport answering
for the server.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from eventyard_client import AsyncClient, Client
from eventyard_client._batching import Batch, Buffer, Outcome, encode_event, refused
from eventyard_client._core import QueueOptions
from eventyard_client.errors import error_class
from eventyard_client.queue import RejectedEvent

from tests.client.conftest import RunningServer, start_server
from tests.e2e.server import free_port

# Small intervals keep the suite fast; the defaults are 0.5 s and 30 s.
FAST = {"flush_interval": 0.05, "max_backoff": 0.3}
# One batch for what a test tracks, however slow the machine: only flush() sends it.
ONE_BATCH = {**FAST, "flush_interval": 30.0}


@pytest.fixture
def sqlite_server(tmp_path: Path) -> Iterator[RunningServer]:
    """For tests of what the client decides: the backend shows only where the server
    crashes under a batch or answers a repeat, and those tests run on both."""
    running = start_server(f"sqlite:///{tmp_path}/eventyard.db", tmp_path / "server.log")
    try:
        yield running
    finally:
        running.process.stop()


def stored_keys(server: RunningServer, trigger: str) -> list[str]:
    with Client(server.url, server.live_key) as reader:
        return [e.idempotency_key for e in reader.events.iter(trigger=trigger)]


def wait_until(predicate: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def test_events_tracked_while_the_server_restarts_and_crashes_arrive_exactly_once(
    server: RunningServer,
) -> None:
    threads, each = 4, 750
    total = threads * each
    keys: list[str] = []
    client = Client(server.url, server.live_key, batch_size=50, **FAST)

    def track_all(thread: int) -> None:
        for i in range(each):
            keys.append(client.track("page_view", f"user-{thread}", {"n": i}))
            time.sleep(0.002)

    trackers = [threading.Thread(target=track_all, args=(t,)) for t in range(threads)]
    for tracker in trackers:
        tracker.start()
    wait_until(lambda: len(keys) >= 500)
    server.process.stop()  # SIGTERM: a deploy
    server.process.start()
    wait_until(lambda: len(keys) >= 1500)
    server.process.kill()  # SIGKILL: a crash, perhaps with a batch in flight
    server.process.start()
    for tracker in trackers:
        tracker.join()

    assert client.flush(timeout=30)
    stats = client.queue_stats()
    client.close()

    stored = stored_keys(server, "page_view")
    assert len(stored) == total
    assert set(stored) == set(keys)
    assert stats.sent + stats.duplicates == total
    assert (stats.queued, stats.rejected, stats.dropped) == (0, 0, 0)
    assert stats.retries >= 2  # the server really was away, twice
    with pytest.raises(RuntimeError, match="closed"):
        client.track("page_view", "user-1")


class LosesOneAnswer(httpx.BaseTransport):
    """The network edge misbehaving: the first batch is refused with 429 and Retry-After;
    the second reaches the server, which stores it, and its answer is lost."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.batch_times: list[float] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/events/batch":
            return self.inner.handle_request(request)
        self.batch_times.append(time.monotonic())
        if len(self.batch_times) == 1:
            return httpx.Response(429, headers={"retry-after": "1"}, json={"code": "slow_down"})
        response = self.inner.handle_request(request)
        response.read()
        if len(self.batch_times) == 2:
            raise httpx.ReadError("connection reset after the server answered")
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_lost_answer_is_sent_again_and_counted_as_duplicates_after_retry_after(
    server: RunningServer,
) -> None:
    transport = LosesOneAnswer()
    with Client(server.url, server.live_key, transport=transport, **ONE_BATCH) as client:
        keys = [client.track("signup", f"u{i}") for i in range(20)]
        assert client.flush(timeout=10)
        stats = client.queue_stats()

    assert (stats.sent, stats.duplicates, stats.retries) == (0, 20, 2)
    assert sorted(stored_keys(server, "signup")) == sorted(keys)
    first, second, _third = transport.batch_times
    assert second - first >= 0.95  # Retry-After: 1, though max_backoff is 0.3


SCRIPT = textwrap.dedent(
    """
    import logging, os, sys
    from eventyard_client import Client

    logging.basicConfig(level=logging.WARNING)
    client = Client(os.environ["URL"], shutdown_timeout=float(os.environ["SHUTDOWN"]),
                    batch_size=1000, flush_interval=60, max_backoff=0.2)
    for i in range(250):
        client.track("script_run", "user-1", {"n": i})
    # No flush() and no close(): the exit hook sends them.
    """
)


def run_script(url: str, key: str, shutdown_timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "URL": url, "EVENTYARD_KEY": key, "SHUTDOWN": str(shutdown_timeout)}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def test_a_script_that_exits_without_flushing_still_sends_its_events(
    sqlite_server: RunningServer,
) -> None:
    server = sqlite_server
    done = run_script(server.url, server.live_key, shutdown_timeout=10)
    assert done.returncode == 0, done.stderr
    assert (done.stdout, done.stderr) == ("", "")
    assert len(stored_keys(server, "script_run")) == 250


def test_at_exit_an_unreachable_server_costs_the_shutdown_timeout_and_a_logged_count() -> None:
    started = time.monotonic()
    done = run_script(f"http://127.0.0.1:{free_port()}", "sk_live_x", shutdown_timeout=1)
    assert done.returncode == 0, done.stderr
    assert time.monotonic() - started < 8
    assert "250 queued events were not sent" in done.stderr
    assert "sk_live_x" not in done.stderr


def test_a_full_queue_drops_new_events_with_one_warning_and_a_count(
    caplog: pytest.LogCaptureFixture,
) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens: every send fails
    with Client(url, "sk_live_x", max_queue_size=5, shutdown_timeout=0.2, **FAST) as client:
        with pytest.raises(TypeError, match="cannot send"):  # in the caller, not the sender
            client.track("t", "u", {"when": object()})
        keys = [client.track("t", f"u{i}") for i in range(8)]
        assert len(set(keys)) == 8  # a dropped event still gets its key back
        stats = client.queue_stats()
        assert (stats.queued, stats.dropped) == (5, 3)
    assert client.queue_stats().queued == 5  # never sent, and said so
    warnings = [r for r in caplog.records if "queue is full" in r.getMessage()]
    assert len(warnings) == 1  # three drops, one warning
    assert "dropped 1 event" in warnings[0].getMessage()
    assert any("5 queued events were not sent" in r.getMessage() for r in caplog.records)


def test_a_full_queue_with_on_full_block_waits_for_the_server(
    sqlite_server: RunningServer,
) -> None:
    server = sqlite_server
    server.process.stop()
    client = Client(
        server.url, server.live_key, max_queue_size=3, batch_size=3, on_full="block", **FAST
    )
    keys: list[str] = []
    tracker = threading.Thread(
        target=lambda: keys.extend(client.track("blocked", f"u{i}") for i in range(6))
    )
    tracker.start()
    tracker.join(timeout=0.5)
    assert tracker.is_alive()  # blocked on the fourth event
    assert client.queue_stats().queued == 3

    server.process.start()
    tracker.join(timeout=10)
    assert not tracker.is_alive()
    assert client.flush(timeout=10)
    assert client.queue_stats().dropped == 0
    client.close()
    assert sorted(stored_keys(server, "blocked")) == sorted(keys)


def test_rejected_events_are_logged_counted_and_not_retried_and_do_not_hold_back_others(
    sqlite_server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    server = sqlite_server
    rejected: list[RejectedEvent] = []
    with Client(server.url, server.live_key, on_error=rejected.append, **ONE_BATCH) as client:
        client.triggers.create(
            "Paid", attributes=[{"name": "amount", "type": "number", "required": True}]
        )
        good = [client.track("paid", "u1", {"amount": n}) for n in range(3)]
        bad = [client.track("paid", "u1", {"amount": "lots"}), client.track("paid", "u2")]
        good.append(client.track("paid", "u3", {"amount": 4}))
        assert client.flush(timeout=10)
        stats = client.queue_stats()
    assert (stats.sent, stats.rejected, stats.retries, stats.queued) == (4, 2, 0, 0)
    assert sorted(stored_keys(server, "paid")) == sorted(good)
    assert [r.event["idempotency_key"] for r in rejected] == bad
    assert {r.code for r in rejected} == {"validation_failed"}
    assert rejected[0].errors[0].path == "$.payload.amount"
    logged = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "rejected 2 of 6 events" in logged
    assert "validation_failed" in logged
    assert "$.payload.amount" in logged

    # A refusal of the whole batch (a wrong key) is given up on at once, and logged
    # without the key.
    caplog.clear()
    with Client(server.url, "sk_live_wrong", **FAST) as stranger:
        stranger.track("paid", "u1", {"amount": 1})
        assert stranger.flush(timeout=10)
        assert stranger.queue_stats().rejected == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "401 unauthenticated" in errors[0]
    assert "sk_live_wrong" not in caplog.text


def test_async_client_queues_retries_through_a_crash_and_flushes(
    sqlite_server: RunningServer,
) -> None:
    server = sqlite_server

    async def main() -> tuple[list[str], Any]:
        client = AsyncClient(server.url, server.live_key, batch_size=25, **FAST)
        keys = [await client.track("async_view", f"u{i}") for i in range(200)]
        server.process.kill()
        keys += [await client.track("async_view", f"u{i}") for i in range(200, 400)]
        await asyncio.sleep(0.3)  # sends fail meanwhile
        await asyncio.to_thread(server.process.start)
        assert await client.flush(timeout=15)
        stats = client.queue_stats()
        await client.close()
        with pytest.raises(RuntimeError, match="closed"):
            await client.track("async_view", "u1")
        return keys, stats

    keys, stats = asyncio.run(main())
    assert sorted(stored_keys(server, "async_view")) == sorted(keys)
    assert stats.sent + stats.duplicates == 400
    assert stats.retries >= 1
    assert (stats.queued, stats.rejected, stats.dropped) == (0, 0, 0)


def test_async_full_queue_drops_or_blocks() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    async def main() -> None:
        async with AsyncClient(url, "sk_live_x", max_queue_size=2, shutdown_timeout=0, **FAST) as c:
            for i in range(5):
                await c.track("t", f"u{i}")
            assert (c.queue_stats().queued, c.queue_stats().dropped) == (2, 3)
        async with AsyncClient(
            url, "sk_live_x", max_queue_size=2, on_full="block", shutdown_timeout=0, **FAST
        ) as c:
            await c.track("t", "u1")
            await c.track("t", "u2")
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(c.track("t", "u3"), 0.3)
            assert not await c.flush(timeout=0.2)

    asyncio.run(main())


def test_batches_stop_short_of_the_request_limit_and_split_when_refused_as_too_large() -> None:
    buffer = Buffer(QueueOptions(batch_size=100))
    for i in range(10):
        buffer.add(encode_event({"n": i, "pad": "x" * 99_980}), now=0.0)  # 100 KB each
    assert buffer.due(now=0.0)  # a full request's worth waits: no need to wait the interval
    batch = buffer.take()
    assert [e["n"] for e in batch.events] == [0, 1, 2]  # 300 KB, under the 384 KB cap

    # A 413 for a batch says the server's limit is lower: the same events go out first, in
    # batches of half the size from then on.
    buffer.finish(batch, Outcome(split=True))
    assert [e["n"] for e in buffer.take().events] == [0]
    assert len(buffer) == 10


class LosesTheFirstAnswer(httpx.BaseTransport):
    """The first batch reaches the server, which stores it, and its answer is lost; before
    the retry, `meanwhile` runs (the caller's thread changing what it tracked)."""

    def __init__(self, meanwhile: Callable[[], None]) -> None:
        self.inner = httpx.HTTPTransport()
        self.meanwhile = meanwhile
        self.bodies: list[bytes] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path != "/v1/events/batch":
            return self.inner.handle_request(request)
        self.bodies.append(request.read())
        response = self.inner.handle_request(request)
        response.read()
        if len(self.bodies) == 1:
            self.meanwhile()
            raise httpx.ReadError("connection reset after the server answered")
        return response

    def close(self) -> None:
        self.inner.close()


def test_a_payload_changed_after_track_changes_nothing_sent_even_between_retries(
    sqlite_server: RunningServer,
) -> None:
    server = sqlite_server
    cart: dict[str, Any] = {"items": [{"sku": "a", "qty": 1}], "total": 10}
    transport = LosesTheFirstAnswer(lambda: cart["items"].append({"sku": "b", "qty": 1}))
    with Client(server.url, server.live_key, transport=transport, **ONE_BATCH) as client:
        key = client.track("checkout", "u1", cart)
        cart["items"][0]["qty"] = 5  # after track(), before the batch goes out
        assert client.flush(timeout=10)
        stats = client.queue_stats()

    # The retry is the same request, so the server knows it for a repeat, not a reuse of
    # the key with another body (which it would refuse, and the event would be lost).
    first, retry = transport.bodies
    assert retry == first
    assert (stats.sent, stats.duplicates, stats.rejected, stats.retries) == (0, 1, 0, 1)
    with Client(server.url, server.live_key) as reader:
        (event,) = reader.events.iter(trigger="checkout")
    assert event.idempotency_key == key
    assert event.payload == {"items": [{"sku": "a", "qty": 1}], "total": 10}


def test_on_error_may_track_into_a_full_blocking_queue_without_deadlocking_the_sender() -> None:
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        # Answering for the server: only what the client does with the answer matters here.
        events = json.loads(request.content)["events"]
        sent.extend(e["trigger"] for e in events)
        rejected = {"status": "rejected", "code": "validation_failed", "errors": []}
        results = [rejected if e["trigger"] == "bad" else {"status": "accepted"} for e in events]
        return httpx.Response(200, json={"results": results})

    def dead_letter(rejected: RejectedEvent) -> None:
        # Two events from the sending thread into a queue of one: the second finds it full.
        for n in range(2):
            client.track("dead_letter", rejected.event["user_id"], {"n": n})

    client = Client(
        "http://eventyard.test",
        "sk_live_x",
        transport=httpx.MockTransport(answer),
        max_queue_size=1,
        batch_size=1,
        on_full="block",
        on_error=dead_letter,
        shutdown_timeout=1,
        **FAST,
    )
    with client:
        client.track("bad", "u1")
        wait_until(lambda: client.queue_stats().sent == 2, timeout=5)
        assert client.flush(timeout=5)
        stats = client.queue_stats()
    assert sent == ["bad", "dead_letter", "dead_letter"]
    assert (stats.rejected, stats.dropped, stats.queued) == (1, 0, 0)


FORK_SCRIPT = textwrap.dedent(
    """
    import json, os, sys, time
    import httpx
    from eventyard_client import Client

    class CutOff(httpx.BaseTransport):
        # The network edge: the parent's network is down until told otherwise; a forked
        # child's is up.
        def __init__(self):
            self.down_for = os.getpid()
            self.inner = httpx.HTTPTransport()

        def handle_request(self, request):
            if os.getpid() == self.down_for:
                raise httpx.ConnectError("the parent's network is down", request=request)
            return self.inner.handle_request(request)

    network = CutOff()
    options = dict(transport=network, max_queue_size=3, batch_size=3, flush_interval=0.01,
                   max_backoff=0.05, shutdown_timeout=5)
    clients = [Client(on_full="drop", **options), Client(on_full="block", **options)]
    for client in clients:
        for i in range(3):
            client.track("before_fork", f"p{i}")  # a full queue, its sender retrying
    time.sleep(0.2)

    pid = os.fork()
    if pid == 0:
        results = []
        for client in clients:
            for i in range(2):
                client.track("in_child", f"c{i}")
            flushed = client.flush(timeout=10)
            stats = client.queue_stats()
            results.append([flushed, stats.sent, stats.duplicates, stats.dropped])
        print(json.dumps({"child": results}), flush=True)
        os._exit(0)

    deadline = time.monotonic() + 15
    while os.waitpid(pid, os.WNOHANG) == (0, 0):
        if time.monotonic() > deadline:
            os.kill(pid, 9)
            print(json.dumps({"child": "stuck"}), flush=True)
            os.waitpid(pid, 0)
            break
        time.sleep(0.02)
    network.down_for = None  # the parent's network is back
    results = []
    for client in clients:
        flushed = client.flush(timeout=10)
        stats = client.queue_stats()
        results.append([flushed, stats.sent, stats.duplicates, stats.dropped])
        client.close()
    print(json.dumps({"parent": results}), flush=True)
    """
)


def test_a_forked_child_sends_what_it_tracks_and_leaves_the_parents_queue_to_the_parent(
    sqlite_server: RunningServer,
) -> None:
    server = sqlite_server
    env = {**os.environ, "EVENTYARD_URL": server.url, "EVENTYARD_KEY": server.live_key}
    done = subprocess.run(
        [sys.executable, "-c", FORK_SCRIPT],
        capture_output=True,
        text=True,
        env=env,
        timeout=45,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    reports = {k: v for line in done.stdout.splitlines() for k, v in json.loads(line).items()}
    # flushed, sent, duplicates, dropped: for the dropping client, then the blocking one.
    # The child's queue starts empty and works: the full queue it inherited neither drops
    # nor blocks what it tracks, and it does not send the parent's events.
    assert reports["child"] == [[True, 2, 0, 0], [True, 2, 0, 0]]
    # The parent sends its own, once: the server had not seen them (no duplicates).
    assert reports["parent"] == [[True, 3, 0, 0], [True, 3, 0, 0]]
    assert len(stored_keys(server, "in_child")) == 4
    assert len(stored_keys(server, "before_fork")) == 6


def _batch_of_one() -> Batch:
    buffer = Buffer(QueueOptions())
    buffer.add(encode_event({"trigger": "t", "user_id": "u", "idempotency_key": "k"}), now=0.0)
    return buffer.take()


@pytest.mark.parametrize(
    ("status", "retried"),
    [(status, True) for status in (408, 425, 429, 500, 502, 503, 504, 507, 520, 522, 599)]
    + [(status, False) for status in (400, 401, 403, 404, 422, 501, 505)],
)
def test_a_refused_batch_is_sent_again_only_for_a_transient_status(
    status: int, retried: bool
) -> None:
    batch = _batch_of_one()
    outcome = refused(batch, error_class(status)(status, "code", "message"))
    assert outcome.retry is retried
    if not retried:
        assert [r.event["idempotency_key"] for r in outcome.rejected] == ["k"]
        assert outcome.rejected[0].status == status
