"""SIGKILL in the middle of a load loses no acknowledged event and duplicates none.

Several client threads send events with idempotency keys and record every 2xx. The server
is killed with SIGKILL at a random moment, restarted, and checked: every acknowledged event
is there, exactly once; retrying the unacknowledged ones with the same keys stores each once.
Each test runs several cycles on SQLite and on PostgreSQL (`db_url`).

With a webhook consumer created before the load, the deliveries pending (or in flight) at
each kill survive it: after the last restart every stored event reaches the receiver, each
transaction ends `finished` once, with one successful attempt, and a webhook arrives more
often than its attempts were recorded only for an attempt a kill cut off.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from eventyard.delivery.presence import WorkerPresence
from tests.e2e.faults import all_events, check_delivered_once, create_webhook, wait_all_finished
from tests.e2e.server import ServerProcess, init_project
from tests.e2e.threaded_receiver import ThreadedReceiver
from tests.receiver import Reply

WORKERS = 8
CYCLES = 3
ACKS_PER_CYCLE = 50
ENV = {"EVENTYARD_WEBHOOK_ALLOW_PRIVATE": "true"}


def _load(
    url: str,
    key: str,
    prefix: str,
    acked: dict[str, str],
    tried: set[str],
    stop: threading.Event,
    lock: threading.Lock,
) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=url, headers=auth, timeout=5) as client:
        n = 0
        while not stop.is_set():
            idem = f"{prefix}-{n}"
            n += 1
            with lock:
                tried.add(idem)
            try:
                r = client.post("/v1/events", json=_body(idem))
            except httpx.HTTPError:
                return  # the server is gone
            if r.status_code in (200, 201):
                with lock:
                    acked[idem] = r.json()["id"]


def _body(idem: str) -> dict[str, object]:
    return {
        "trigger": "checkout",
        "user_id": "u-" + idem.split("-")[1],
        "payload": {"n": idem},
        "idempotency_key": idem,
    }


def _kill_cycles(
    db_url: str,
    key: str,
    server_factory: type[ServerProcess],
    tmp_path: Path,
    acked: dict[str, str],
    tried: set[str],
    env: dict[str, str] | None = None,
) -> ServerProcess:
    """CYCLES times: start the server, load it, SIGKILL it at a random moment once
    ACKS_PER_CYCLE more events were acknowledged. Then start it once more and return it."""
    rng = random.Random()
    lock = threading.Lock()
    for cycle in range(CYCLES):
        server = server_factory(db_url, tmp_path / f"server-{cycle}.log", env)
        server.start()
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=_load,
                args=(server.url, key, f"c{cycle}w{w}-{cycle}{w}", acked, tried, stop, lock),
            )
            for w in range(WORKERS)
        ]
        for t in threads:
            t.start()
        # Kill at a random moment once the load is really flowing (however slow the machine).
        wanted = len(acked) + ACKS_PER_CYCLE
        deadline = time.monotonic() + 30
        while len(acked) < wanted and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.5))
        server.kill()
        stop.set()
        for t in threads:
            t.join(timeout=10)

    server = server_factory(db_url, tmp_path / "server-final.log", env)
    server.start()
    assert len(acked) >= CYCLES * ACKS_PER_CYCLE, f"the load acknowledged only {len(acked)}"
    return server


def test_sigkill_under_load_loses_nothing_acknowledged(
    db_url: str, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    key = init_project(db_url)["keys"]["live"]
    acked: dict[str, str] = {}
    tried: set[str] = set()
    server = _kill_cycles(db_url, key, server_factory, tmp_path, acked, tried)

    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=auth) as client:
        stored = all_events(client)
    by_key = Counter(e["idempotency_key"] for e in stored)
    ids = {e["idempotency_key"]: e["id"] for e in stored}
    missing = [k for k in acked if k not in ids]
    assert not missing, f"{len(missing)} acknowledged events were lost, e.g. {missing[:3]}"
    assert all(ids[k] == acked[k] for k in acked), "an acknowledged event changed its id"
    assert max(by_key.values()) == 1, "an idempotency key was stored twice"

    # Clients retry what was never acknowledged; each is stored exactly once.
    unacked = sorted(tried - set(acked))
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
        for idem in unacked:
            r = c.post("/v1/events", json=_body(idem))
            assert r.status_code in (200, 201), r.text
    with httpx.Client(base_url=server.url, headers=auth) as client:
        stored = all_events(client)
    by_key = Counter(e["idempotency_key"] for e in stored)
    assert set(by_key) == tried
    assert max(by_key.values()) == 1


def test_sigkill_keeps_pending_webhooks_and_delivers_each_once(
    db_url: str, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    key = init_project(db_url)["keys"]["live"]
    acked: dict[str, str] = {}
    tried: set[str] = set()
    # Each delivery takes a moment, so a backlog of pending and leased ones builds up under
    # the load and is cut off by each kill.
    with ThreadedReceiver(default=Reply(200, delay_seconds=0.02)) as receiver:
        server = server_factory(db_url, tmp_path / "server-setup.log", ENV)
        server.start()
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
            consumer_id = create_webhook(c, receiver.url("/hook"))
        server.stop()
        server = _kill_cycles(db_url, key, server_factory, tmp_path, acked, tried, ENV)
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {key}"}) as c:
            stored = {e["id"] for e in all_events(c)}
            assert set(acked.values()) <= stored
            # Leases the killed processes held are given back when the server restarts alone,
            # so this takes seconds, not the 45 s a lease lasts.
            txns = wait_all_finished(c, consumer_id, len(stored), within=30)
        assert {t["event_id"] for t in txns} == stored
        check_delivered_once(txns, receiver.requests, crashes=CYCLES)


def test_a_worker_knows_whether_it_is_alone(db_url: str) -> None:
    """What lets a restarted worker give back a dead one's leases: the first worker is
    alone, a second is not while the first lives, and a third is once the others left (as
    the kernel or PostgreSQL makes a killed process leave)."""
    first, second, third = (WorkerPresence(db_url) for _ in range(3))
    try:
        assert first.try_alone()
        first.share()
        assert not second.try_alone()
        second.share()
        first.leave()
        assert not third.try_alone()  # the second still lives
        second.leave()
        assert third.try_alone()
    finally:
        for presence in (first, second, third):
            presence.leave()
