"""Real processes deliver webhooks: split API and workers on PostgreSQL, one process on SQLite.

On PostgreSQL one `eventyard serve --no-worker` takes the events and two `eventyard worker`
processes deliver them, claiming with `FOR UPDATE SKIP LOCKED` and waking on NOTIFY: every
event must arrive, none twice, and every transaction must end `finished` after one attempt.
On SQLite `eventyard serve` does both. The receiver is a threaded `http.server` here, since
the senders are other processes.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import standardwebhooks

from tests.e2e.server import ServerProcess, init_project

ENV = {"EVENTYARD_WEBHOOK_ALLOW_PRIVATE": "true"}


@dataclass
class Received:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)

    def snapshot(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return list(self.requests)


def _handler(received: Received) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the workers' connection pools expect

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            headers = {k.lower(): v for k, v in self.headers.items()}
            with received.lock:
                received.requests.append((headers, body))
            time.sleep(0.005)  # a little work, so that deliveries overlap
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[tuple[str, Received]]:
    received = Received()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(received))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def processes() -> Iterator[list[ServerProcess]]:
    started: list[ServerProcess] = []
    yield started
    for process in started:
        process.stop()


def _start(started: list[ServerProcess], process: ServerProcess) -> ServerProcess:
    started.append(process)
    process.start()
    return process


def _deliver_and_check(
    api_url: str, key: str, hook_url: str, received: Received, count: int, per_post: int
) -> None:
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=api_url, headers=auth, timeout=10) as client:
        created = client.post(
            "/v1/consumers", json={"name": "hook", "kind": "webhook", "url": hook_url}
        )
        assert created.status_code == 201, created.text
        consumer = created.json()
        sent: list[str] = []
        for start in range(0, count, per_post):
            batch = [
                {"trigger": "order_paid", "user_id": f"u{i}", "payload": {"n": i}}
                for i in range(start, min(start + per_post, count))
            ]
            posted = client.post("/v1/events/batch", json={"events": batch})
            assert posted.status_code == 200, posted.text
            results = posted.json()["results"]
            assert {r["status"] for r in results} == {"accepted"}, results
            sent += [r["id"] for r in results]
        assert len(set(sent)) == count

        deadline = time.monotonic() + 30
        transactions: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            listed = client.get(f"/v1/consumers/{consumer['id']}/transactions?limit=1000")
            transactions = listed.json()["data"]
            if len(transactions) == count and all(t["state"] == "finished" for t in transactions):
                break
            time.sleep(0.2)
        time.sleep(1.0)  # time for a late second delivery to show up, if there were one

    requests = received.snapshot()
    webhook_ids = Counter(headers["webhook-id"] for headers, _ in requests)
    doubled = [i for i, n in webhook_ids.items() if n > 1]
    assert not doubled, f"{len(doubled)} webhooks were delivered twice, e.g. {doubled[:3]}"
    event_ids = Counter(
        standardwebhooks.Webhook(consumer["secret"]).verify(body, headers)["id"]
        for headers, body in requests
    )
    assert set(event_ids) == set(sent), f"{len(set(sent) - set(event_ids))} never arrived"
    assert max(event_ids.values()) == 1
    assert len(transactions) == count
    assert Counter(t["state"] for t in transactions) == {"finished": count}
    assert {t["attempts"] for t in transactions} == {1}
    assert set(webhook_ids) == {t["id"] for t in transactions}


@pytest.mark.postgres
def test_two_workers_on_postgresql_deliver_every_event_exactly_once(
    pg_url: str, tmp_path: Path, processes: list[ServerProcess], receiver: tuple[str, Received]
) -> None:
    key = init_project(pg_url)["keys"]["live"]
    api = _start(processes, ServerProcess(pg_url, tmp_path / "api.log", ENV, worker=False))
    for n in (1, 2):
        _start(processes, ServerProcess(pg_url, tmp_path / f"worker{n}.log", ENV, command="worker"))
    hook_url, received = receiver
    _deliver_and_check(api.url, key, hook_url, received, count=300, per_post=20)


def test_one_process_on_sqlite_serves_and_delivers(
    tmp_path: Path, processes: list[ServerProcess], receiver: tuple[str, Received]
) -> None:
    db_url = f"sqlite:///{tmp_path}/eventyard.db"
    key = init_project(db_url)["keys"]["live"]
    server = _start(processes, ServerProcess(db_url, tmp_path / "server.log", ENV))
    hook_url, received = receiver
    _deliver_and_check(server.url, key, hook_url, received, count=50, per_post=10)
