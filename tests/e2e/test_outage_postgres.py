"""PostgreSQL goes away under a running server and comes back: nothing hangs, nothing is lost.

The test runs a PostgreSQL of its own (`private_postgres.py`) so that it can stop it, and a
real `eventyard serve` (API and worker) with a webhook consumer pointing at a real receiver.
While the database is down, `POST /v1/events` answers 503 with `Retry-After` well within
`ANSWER_BOUND_S`, `/readyz` answers 503 while `/healthz` (liveness) stays 200, and the
worker backs off: the process stays up, says so in its log, and does not spin. When the
database is back, the same process — never restarted — takes new events, delivers the
events acknowledged before and after the outage, and has lost none of them.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from eventyard.store.connect import connect
from eventyard.store.db import Db
from eventyard.store.writer import GroupCommitWriter
from tests.conftest import REQUIRE_PG
from tests.e2e.faults import (
    all_events,
    check_delivered_once,
    create_webhook,
    post_refused,
    wait_all_finished,
)
from tests.e2e.private_postgres import PrivatePostgres, server_binaries
from tests.e2e.server import ServerProcess, init_project
from tests.e2e.threaded_receiver import ThreadedReceiver
from tests.receiver import Reply

ANSWER_BOUND_S = 5.0  # an ingest during the outage is refused within this (observed: ms)
DOWN_FOR_S = 3.0  # how long the worker's CPU use is watched while the database is down
ENV = {"EVENTYARD_WEBHOOK_ALLOW_PRIVATE": "true"}


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    bindir = server_binaries()
    if bindir is None:
        message = "no PostgreSQL server binaries in /usr/lib/postgresql/*/bin"
        if REQUIRE_PG:
            pytest.fail(message)
        pytest.skip(message)
    pg = PrivatePostgres(bindir)
    try:
        pg.init()
        pg.start()
        yield pg
    finally:
        pg.destroy()


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _event(n: int, phase: str) -> dict[str, object]:
    return {
        "trigger": "order",
        "user_id": f"u{n % 7}",
        "payload": {"n": n, "phase": phase},
        "idempotency_key": f"{phase}-{n}",
    }


def test_postgres_outage_answers_503_and_resumes_without_restart(
    private_pg: PrivatePostgres, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    url = private_pg.create_database("eventyard")
    key = init_project(url)["keys"]["live"]
    log = tmp_path / "server.log"
    # Each delivery takes a moment, so some are still pending when the database stops.
    with ThreadedReceiver(default=Reply(200, delay_seconds=0.5)) as receiver:
        server = server_factory(url, log, ENV)
        server.start()
        assert server.proc is not None
        auth = {"Authorization": f"Bearer {key}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as client:
            consumer_id = create_webhook(client, receiver.url("/hook"))
            acked: dict[str, str] = {}
            for n in range(40):
                r = client.post("/v1/events", json=_event(n, "before"))
                assert r.status_code == 201, r.text
                acked[r.json()["id"]] = f"before-{n}"

            private_pg.stop()
            delivered_at_stop = len(receiver.requests)

            for n in range(10):
                post_refused(client, _event(n, "during"), within=ANSWER_BOUND_S)
            assert client.get("/readyz").status_code == 503
            assert client.get("/healthz").status_code == 200

            cpu_before = _cpu_seconds(server.proc.pid)
            time.sleep(DOWN_FOR_S)
            cpu_used = _cpu_seconds(server.proc.pid) - cpu_before
            assert server.proc.poll() is None, "the server died with its database"
            assert cpu_used < 0.5 * DOWN_FOR_S, f"{cpu_used:.2f} s of CPU in {DOWN_FOR_S} s"
            text = log.read_text()
            # What an operator sees: the refused requests and the worker backing off.
            assert "ERROR eventyard.api database unavailable" in text, text[-2000:]
            assert "delivery round failed: database unavailable" in text, text[-2000:]

            private_pg.start()
            deadline = time.monotonic() + 20
            while True:
                r = client.post("/v1/events", json=_event(0, "after"))
                if r.status_code == 201 or time.monotonic() > deadline:
                    break
                assert r.status_code == 503, r.text
                time.sleep(0.2)
            assert r.status_code == 201, f"ingest did not resume: {r.text}"
            acked[r.json()["id"]] = "after-0"
            for n in range(1, 20):
                r = client.post("/v1/events", json=_event(n, "after"))
                assert r.status_code == 201, r.text
                acked[r.json()["id"]] = f"after-{n}"
            assert client.get("/readyz").status_code == 200
            # The LISTEN connection (other processes' NOTIFYs) is back too, and says so.
            listening_by = time.monotonic() + 10
            while "LISTEN connection restored" not in log.read_text():
                assert time.monotonic() < listening_by, log.read_text()[-2000:]
                time.sleep(0.1)

            # Deliveries resume at once: well before any lease taken before the outage
            # (the attempt's 15 s timeout plus 30 s) could have run out.
            txns = wait_all_finished(client, consumer_id, len(acked), within=20)
            stored = {e["id"]: e["idempotency_key"] for e in all_events(client)}
        assert stored == acked, "the stored events are not exactly the acknowledged ones"
        assert delivered_at_stop < 40, "every delivery was done before the outage"
        assert {t["event_id"] for t in txns} == set(acked)
        check_delivered_once(txns, receiver.requests, crashes=0)


def test_writer_fails_a_group_fast_while_down_and_reconnects_after(
    private_pg: PrivatePostgres,
) -> None:
    """While PostgreSQL is down, a group of queued writes fails on one connection attempt,
    not one per write; once it is back, the same writer commits again."""
    url = private_pg.create_database("writer")
    attempts: list[float] = []

    def counting_connect() -> Db:
        attempts.append(time.monotonic())
        return connect(url, writer=True)

    writer = GroupCommitWriter(counting_connect, max_weight=1000)
    writer.start()
    try:
        writer.submit(lambda db: db.execute("CREATE TABLE t (n integer)")).result(10)
        private_pg.stop()
        before = len(attempts)
        futures = [
            writer.submit(lambda db, n=n: db.execute("INSERT INTO t VALUES (?)", [n]))
            for n in range(200)
        ]
        for future in futures:
            assert isinstance(future.exception(10), psycopg.OperationalError)
        # One attempt per group (the writer gathers what waits), far fewer than the writes.
        assert len(attempts) - before < 20, f"{len(attempts) - before} connection attempts"
        private_pg.start()
        assert writer.submit(lambda db: db.scalar("SELECT count(*) FROM t")).result(10) == 0
        writer.submit(lambda db: db.execute("INSERT INTO t VALUES (1)")).result(10)
    finally:
        writer.stop()
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)


def test_a_hanging_postgres_is_answered_503_within_the_deadline(
    private_pg: PrivatePostgres, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    """PostgreSQL frozen (SIGSTOP: connections stay open, nothing answers — as with a hung
    disk or a network that drops packets): each ingest is answered 503 once
    `database_timeout_seconds` have passed, not never; after SIGCONT the same server takes
    events again, and retries of the refused ones with their idempotency keys store each
    exactly once."""
    url = private_pg.create_database("hang")
    key = init_project(url)["keys"]["live"]
    deadline = 2
    env = {"EVENTYARD_DATABASE_TIMEOUT_SECONDS": str(deadline)}
    server = server_factory(url, tmp_path / "server.log", env)
    server.start()
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=60) as client:
        for n in range(5):
            assert client.post("/v1/events", json=_event(n, "before")).status_code == 201
        frozen = private_pg.pids()
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            for n in range(3):
                problem = post_refused(client, _event(n, "frozen"), within=deadline + 2)
                assert "did not answer within 2 s" in problem["message"]
            assert client.get("/healthz").status_code == 200
            assert client.get("/readyz").status_code == 503
            log = (tmp_path / "server.log").read_text()
            assert "database unavailable: no answer within 2 s" in log
        finally:
            for pid in frozen:
                os.kill(pid, signal.SIGCONT)
        retry_until = time.monotonic() + 20
        while True:
            r = client.post("/v1/events", json=_event(0, "after"))
            if r.status_code == 201 or time.monotonic() > retry_until:
                break
            time.sleep(0.2)
        assert r.status_code == 201, r.text
        for n in range(3):  # the client retries what was refused
            r = client.post("/v1/events", json=_event(n, "frozen"))
            assert r.status_code in (200, 201), r.text
        keys = sorted(e["idempotency_key"] for e in all_events(client))
    assert keys == sorted(
        [f"before-{n}" for n in range(5)] + [f"frozen-{n}" for n in range(3)] + ["after-0"]
    )
