"""Scale-out on PostgreSQL: two API processes and two workers share one database.

Several client threads ingest through both API processes at once (single events, some with
idempotency keys and some of those retried through the other process; batches), while a live
stream is open on each API process and two `eventyard worker` processes deliver to a
receiver that fails the first attempt of some transactions. Then: every acknowledged event
is stored exactly once, every transaction is finished with exactly one successful delivery,
no transaction was ever in flight twice at once, and each stream saw every event.

Also here: a live stream shows an event committed with an id older than its lookback window
(a process whose clock is behind), `serve --processes 2` serves on one port with one writer
connection each and stops cleanly, connections are counted by role, and SQLite refuses
`--processes`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from eventyard import ids
from tests.e2e.server import ServerProcess, free_port, init_project

ENV = {"EVENTYARD_WEBHOOK_ALLOW_PRIVATE": "true", "EVENTYARD_RETRY_SCHEDULE": "0,1,1"}


@dataclass
class Send:
    webhook_id: str
    status: int
    start: float
    end: float


@dataclass
class Receiver:
    """Answers 503 to the first attempt of one transaction in five, 204 otherwise, and
    records each request's webhook-id, answer and start and end times."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    sends: list[Send] = field(default_factory=list)
    failed_once: set[str] = field(default_factory=set)

    def answer(self, webhook_id: str) -> int:
        with self.lock:
            if zlib.crc32(webhook_id.encode()) % 5 == 0 and webhook_id not in self.failed_once:
                self.failed_once.add(webhook_id)
                return 503
        return 204

    def snapshot(self) -> list[Send]:
        with self.lock:
            return list(self.sends)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            start = time.monotonic()
            self.rfile.read(int(self.headers.get("content-length", "0")))
            webhook_id = self.headers.get("webhook-id", "")
            status = receiver.answer(webhook_id)
            time.sleep(0.01)  # long enough for a second send of the same one to overlap
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()
            self.wfile.flush()
            with receiver.lock:
                receiver.sends.append(Send(webhook_id, status, start, time.monotonic()))

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[tuple[str, Receiver]]:
    received = Receiver()
    with ThreadingHTTPServer(("127.0.0.1", 0), _handler(received)) as server:
        server.daemon_threads = True
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
        finally:
            server.shutdown()
            serving.join(timeout=5)


class Stream:
    """A live stream read in a thread over a plain socket: the ids of the events it showed.
    `close()` shuts the socket down, which ends the blocked read at once and lets the server
    see the client leave (so it need not wait for the stream when it stops)."""

    def __init__(self, url: str, key: str) -> None:
        self.ids: list[str] = []
        self.opened = threading.Event()
        host, port = url.removeprefix("http://").split(":")
        self._sock = socket.create_connection((host, int(port)), timeout=10)
        self._sock.settimeout(None)
        request = (
            "GET /v1/events/stream?max_seconds=60 HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: Bearer {key}\r\n\r\n"
        )
        self._sock.sendall(request.encode())
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self.opened.wait(10), "the stream did not open"

    def _run(self) -> None:
        # The body is chunked; SSE lines never span chunks' size lines in a way that
        # matters here: only `id: evt_...` and the `: connected` comment are looked for.
        with contextlib.suppress(OSError), self._sock.makefile("rb") as lines:
            for raw in lines:
                line = raw.decode(errors="replace").rstrip("\r\n")
                if line == ": connected":
                    self.opened.set()
                elif line.startswith("id: "):
                    self.ids.append(line[4:])

    def wait_for(self, wanted: set[str], within: float) -> set[str]:
        """The wanted ids not shown after `within` seconds (empty once all are)."""
        deadline = time.monotonic() + within
        while (missing := wanted - set(self.ids)) and time.monotonic() < deadline:
            time.sleep(0.1)
        return missing

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._sock.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def open_stream() -> Iterator[Callable[[str, str], Stream]]:
    """Opens streams, and closes them all when the test ends, however it ends."""
    opened: list[Stream] = []

    def open_one(url: str, key: str) -> Stream:
        opened.append(Stream(url, key))
        return opened[-1]

    yield open_one
    for stream in opened:
        stream.close()


def _ingest(api_urls: list[str], key: str, thread_no: int) -> tuple[set[str], int]:
    """One client's load: singles (a third with a key, some of those sent again through the
    other process) and batches. The ids acknowledged, and how many retries answered 200."""
    acked: set[str] = set()
    repeats = 0
    here, other = api_urls[thread_no % 2], api_urls[(thread_no + 1) % 2]
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(headers=auth, timeout=30) as client:
        for i in range(30):
            event: dict[str, Any] = {"trigger": "paid", "user_id": f"u{i}", "payload": {"i": i}}
            if i % 3 == 0:
                event["idempotency_key"] = f"t{thread_no}-{i}"
            posted = client.post(f"{here}/v1/events", json=event)
            assert posted.status_code == 201, posted.text
            acked.add(posted.json()["id"])
            if i % 6 == 0:  # the client did not hear the answer: it sends again, elsewhere
                again = client.post(f"{other}/v1/events", json=event)
                assert again.status_code == 200, again.text
                assert again.json()["id"] == posted.json()["id"]
                repeats += 1
        for b in range(10):
            batch = [
                {"trigger": "paid", "user_id": f"b{b}", "payload": {"n": n}} for n in range(10)
            ]
            url = here if b % 2 == 0 else other
            posted = client.post(f"{url}/v1/events/batch", json={"events": batch})
            assert posted.status_code == 200, posted.text
            results = posted.json()["results"]
            assert {r["status"] for r in results} == {"accepted"}, results
            acked.update(r["id"] for r in results)
    return acked, repeats


def _list_all(client: httpx.Client, path: str, cursor_name: str, next_name: str) -> list[Any]:
    rows: list[Any] = []
    cursor: str | None = None
    while True:
        params = {"limit": "1000", **({cursor_name: cursor} if cursor else {})}
        page = client.get(path, params=params)
        assert page.status_code == 200, page.text
        body = page.json()
        rows += body["data"]
        cursor = body.get(next_name)
        if not cursor:
            return rows


@pytest.mark.postgres
def test_two_api_processes_and_two_workers_share_one_postgresql(
    pg_url: str,
    tmp_path: Path,
    server_factory: type[ServerProcess],
    receiver: tuple[str, Receiver],
    open_stream: Callable[[str, str], Stream],
) -> None:
    key = init_project(pg_url)["keys"]["live"]
    apis = []
    for n in (1, 2):
        api = server_factory(pg_url, tmp_path / f"api{n}.log", ENV, worker=False)
        api.start()
        apis.append(api)
    for n in (1, 2):
        server_factory(pg_url, tmp_path / f"worker{n}.log", ENV, command="worker").start()
    hook_url, received = receiver
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=apis[0].url, headers=auth, timeout=10) as client:
        created = client.post(
            "/v1/consumers", json={"name": "hook", "kind": "webhook", "url": hook_url}
        )
        assert created.status_code == 201, created.text
        consumer_id = created.json()["id"]

        streams = [open_stream(api.url, key) for api in apis]
        urls = [api.url for api in apis]
        with ThreadPoolExecutor(4) as pool:
            loads = list(pool.map(lambda n: _ingest(urls, key, n), range(4)))
        acked = set().union(*(ids for ids, _ in loads))
        assert sum(n for _, n in loads) == 4 * 5  # every retry answered 200, the same event
        assert len(acked) == 4 * (30 + 100)

        # Every acknowledged event is stored, once: listed through either process.
        for url in urls:
            listed = _list_all(client, f"{url}/v1/events", "cursor", "next_cursor")
            assert Counter(e["id"] for e in listed) == Counter(acked)

        # Each live stream saw every event, whichever process took it.
        for api, stream in zip(apis, streams, strict=True):
            missing = stream.wait_for(acked, within=10)
            assert not missing, f"the stream on {api.url} missed {len(missing)} events"
            assert len(stream.ids) == len(set(stream.ids))
            stream.close()

        deadline = time.monotonic() + 30
        path = f"/v1/consumers/{consumer_id}/transactions"
        while True:
            txns = _list_all(client, path, "after", "next_after")
            if len(txns) == len(acked) and all(t["state"] == "finished" for t in txns):
                break
            assert time.monotonic() < deadline, Counter(t["state"] for t in txns)
            time.sleep(0.3)
        time.sleep(1.0)  # time for a second delivery to show, were there one

    sends = received.snapshot()
    succeeded = Counter(s.webhook_id for s in sends if s.status == 204)
    assert set(succeeded) == {t["id"] for t in txns}
    assert set(succeeded.values()) == {1}, "a transaction was delivered twice"
    failed_first = {s.webhook_id for s in sends if s.status == 503}
    assert failed_first, "no attempt failed: the retry path went untested"
    assert Counter(t["attempts"] for t in txns) == {
        1: len(txns) - len(failed_first),
        2: len(failed_first),
    }
    by_id: dict[str, list[Send]] = {}
    for send in sends:
        by_id.setdefault(send.webhook_id, []).append(send)
    for webhook_id, its in by_id.items():
        its.sort(key=lambda s: s.start)
        for first, second in itertools.pairwise(its):
            assert second.start >= first.end, f"{webhook_id} was in flight twice at once"


def _skewed_event_id(behind_ms: int) -> str:
    """An event id made `behind_ms` ago: what a server whose clock is behind would make."""
    return ids.new_id_at("evt", int(time.time() * 1000) - behind_ms)


@pytest.mark.postgres
def test_stream_shows_an_event_from_a_process_whose_clock_is_behind(
    pg_url: str,
    tmp_path: Path,
    server_factory: type[ServerProcess],
    monkeypatch: pytest.MonkeyPatch,
    open_stream: Callable[[str, str], Stream],
) -> None:
    """The event's id is 10 s old when it commits, far below the stream's 2 s window: only
    the commit's notification brings it to the stream."""
    from eventyard.api.app import create_app
    from eventyard.services.container import build_services
    from eventyard.settings import Settings
    from eventyard.store import event_writes, open_store

    key = init_project(pg_url)["keys"]["live"]
    api = server_factory(pg_url, tmp_path / "api.log", worker=False)
    api.start()
    stream = open_stream(api.url, key)
    skewed = _skewed_event_id(10_000)
    monkeypatch.setattr(event_writes, "new_id", lambda prefix: skewed)

    async def ingest_elsewhere() -> str:
        store = open_store(pg_url)
        try:
            app = create_app(build_services(store, Settings(database_url=pg_url)))
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://late") as client:
                posted = await client.post(
                    "/v1/events",
                    headers={"Authorization": f"Bearer {key}"},
                    json={"trigger": "late", "user_id": "u", "payload": {}},
                )
            assert posted.status_code == 201, posted.text
            event_id: str = posted.json()["id"]
            return event_id
        finally:
            store.close()

    assert asyncio.run(ingest_elsewhere()) == skewed
    assert not stream.wait_for({skewed}, within=5), "the stream missed the late event"


class _SkewedClock:
    def __init__(self, behind_ms: int) -> None:
        self.behind_us = behind_ms * 1000

    def now_us(self) -> int:
        return time.time_ns() // 1000 - self.behind_us


@pytest.mark.postgres
def test_a_clock_far_from_the_databases_is_logged_at_start(
    pg_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    from eventyard.delivery.notify import Notifier
    from eventyard.services.live import LiveFeed
    from eventyard.store import open_store

    store = open_store(pg_url)
    try:
        for behind_ms, warned in ((0, False), (5000, True)):
            caplog.clear()
            feed = LiveFeed(store, _SkewedClock(behind_ms), Notifier())
            asyncio.run(feed.check_clock())
            logged = [r.getMessage() for r in caplog.records if r.name == "eventyard.live"]
            assert bool(logged) is warned, logged
        assert "clock is 5.0 s behind the database's" in logged[0]
    finally:
        store.close()


def _connections(pg_url: str) -> Counter[str]:
    dbname = pg_url.rsplit("/", 1)[1]
    with psycopg.connect(pg_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT application_name FROM pg_stat_activity WHERE datname = %s"
            " AND pid <> pg_backend_pid()",
            [dbname],
        ).fetchall()
    return Counter(str(r[0]) for r in rows)


@pytest.mark.postgres
def test_serve_processes_shares_one_port_and_stops_cleanly(pg_url: str, tmp_path: Path) -> None:
    key = init_project(pg_url)["keys"]["live"]
    port = free_port()
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "EVENTYARD_READ_CONNECTIONS": "2",
        # The session-bound connections by a URL of their own (named so, to count them),
        # and no prepared statements: as behind PgBouncer in transaction mode.
        "EVENTYARD_DATABASE_SESSION_URL": pg_url + "?application_name=session",
        "EVENTYARD_DATABASE_PREPARED_STATEMENTS": "false",
    }
    args = ["serve", "--port", str(port), "--processes", "2", "--database-url", pg_url]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "eventyard", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        auth = {"Authorization": f"Bearer {key}"}

        def post(n: int) -> int:
            # A connection per request, so the kernel spreads them over both processes.
            event = {"trigger": "t", "user_id": f"u{n}", "payload": {}}
            return httpx.post(url + "/v1/events", json=event, headers=auth).status_code

        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(post, range(80))) == {201}
        # Each process: one writer, at most 2 readers, and on the session URL one LISTEN;
        # the first runs the worker, whose presence lock is on the session URL too.
        roles = _connections(pg_url)
        assert roles["eventyard-write"] == 2, roles
        assert 1 <= roles["eventyard-read"] <= 2 * 2, roles
        assert roles["session"] == 2 + 1, roles
        assert sum(roles.values()) <= 2 * (1 + 2 + 1) + 1, roles
        children = subprocess.run(
            ["pgrep", "-P", str(proc.pid)], capture_output=True, text=True, check=False
        ).stdout.split()
        assert len(children) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0, log.read_text()
    for child in children:
        assert (
            not Path(f"/proc/{child}").exists()
            or "zombie" in Path(f"/proc/{child}/status").read_text()
        ), f"child {child} outlived its parent"
    assert _connections(pg_url) == Counter()


_PID_SERVER = """
import os, socket, sys
from eventyard.cli.prefork import Supervisor, bind_socket

def answer_pid(index, sock):
    while True:
        conn, _ = sock.accept()
        with conn:
            conn.sendall(str(os.getpid()).encode())

sock = bind_socket("127.0.0.1", int(sys.argv[1]))
sys.exit(Supervisor(2, sock, answer_pid, start_grace=0.5).run())
"""


def test_a_process_that_dies_is_started_again_on_the_same_port(tmp_path: Path) -> None:
    """The supervisor of `serve --processes` with children that answer their pid."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", _PID_SERVER, str(port)])

    def pid_answering(within: float = 10.0) -> int:
        deadline = time.monotonic() + within
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                    return int(conn.recv(32))
            except (OSError, ValueError):
                assert time.monotonic() < deadline, "nothing answers on the port"
                time.sleep(0.05)

    try:
        victim = pid_answering()
        time.sleep(0.6)  # past the start grace: a death now is not a failure to start
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while len(children := _children(proc.pid)) < 2 or victim in children:
            assert time.monotonic() < deadline, children
            time.sleep(0.05)
        answered = {pid_answering() for _ in range(20)}
        assert answered, children
        assert answered <= set(children), (answered, children)
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=20)
    assert code == 0
    assert not _children(proc.pid)


_STUCK_SERVER = """
import os, signal, sys, time
from eventyard.cli.prefork import Supervisor, bind_socket

def stuck(index, sock):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # as a child hung in its shutdown
    os.write(1, b"ready\\n")
    time.sleep(120)

sock = bind_socket("127.0.0.1", int(sys.argv[1]))
sys.exit(Supervisor(2, sock, stuck, start_grace=0.0, stop_grace=1.0).run())
"""


def test_children_that_hang_on_sigterm_are_killed_after_the_stop_grace() -> None:
    """SIGTERM to the parent while its children ignore it: after the grace (1 s here) the
    parent kills them and exits, rather than waiting for ever."""
    children: list[int] = []
    with subprocess.Popen(
        [sys.executable, "-c", _STUCK_SERVER, str(free_port())],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            for _ in range(2):
                assert proc.stdout.readline() == "ready\n"
            children = _children(proc.pid)
            assert len(children) == 2
            stopped = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            _, logged = proc.communicate(timeout=10)
            took = time.monotonic() - stopped
        finally:
            if proc.poll() is None:  # it waits for ever: clean up before failing
                for child in _children(proc.pid):
                    os.kill(child, signal.SIGKILL)
                proc.kill()
    assert proc.returncode == 0
    assert 1.0 <= took < 5.0, took
    assert "2 server processes still running 1 s after SIGTERM; killing them" in logged
    for child in children:
        assert not Path(f"/proc/{child}").exists(), f"child {child} outlived its parent"


def _children(pid: int) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in found.stdout.split()]


def test_processes_are_refused_on_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/eventyard.db"
    done = subprocess.run(
        [sys.executable, "-m", "eventyard", "serve", "--processes", "2", "--database-url", url],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert "--processes needs PostgreSQL" in done.stderr
