"""SIGKILL in the middle of a load loses no acknowledged event and duplicates none.

Several client threads send events with idempotency keys and record every 2xx. The server
is killed with SIGKILL at a random moment, restarted, and checked: every acknowledged event
is there, exactly once; retrying the unacknowledged ones with the same keys stores each once.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from pathlib import Path

import httpx

from tests.e2e.server import ServerProcess, init_project

WORKERS = 8
CYCLES = 3
ACKS_PER_CYCLE = 50


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


def _all_events(url: str, key: str) -> list[dict[str, object]]:
    out: list[dict[str, object]] = []
    cursor = None
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as client:
        while True:
            params = {"limit": "1000", **({"cursor": cursor} if cursor else {})}
            page = client.get("/v1/events", params=params).json()
            out.extend(page["data"])
            cursor = page["next_cursor"]
            if not cursor:
                return out


def test_sigkill_under_load_loses_nothing_acknowledged(
    db_url: str, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    key = init_project(db_url)["keys"]["live"]
    rng = random.Random()
    acked: dict[str, str] = {}
    tried: set[str] = set()
    lock = threading.Lock()
    for cycle in range(CYCLES):
        server = server_factory(db_url, tmp_path / f"server-{cycle}.log")
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

    server = server_factory(db_url, tmp_path / "server-final.log")
    server.start()
    assert len(acked) >= CYCLES * ACKS_PER_CYCLE, f"the load acknowledged only {len(acked)}"

    stored = _all_events(server.url, key)
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
    stored = _all_events(server.url, key)
    by_key = Counter(e["idempotency_key"] for e in stored)
    assert set(by_key) == tried
    assert max(by_key.values()) == 1
