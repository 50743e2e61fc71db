"""Scale-out on PostgreSQL under wrk: two API processes and two workers on one database,
beside one process (API and worker in one) measured in the same run.

For each topology, on a fresh database: a webhook consumer points at `receiver.py`, a live
stream is open on each API process (read in a thread here), and wrk posts single events
(`post_event.lua`, each with its own idempotency key) to every API process at once for
`--duration` seconds. A third run is `serve --processes 2` (one port, the worker in its
first process) under one wrk. Then each run waits until every transaction is delivered and prints:

- events/s through each API process (wrk's 2xx a second) and in all;
- the reconcile: events stored, acknowledged (wrk's completed 2xx; stored minus acknowledged
  is at most the requests wrk dropped in flight when it stopped, one per connection),
  transactions, transactions finished, deliveries received;
- duplicate deliveries (webhook-ids received more than once): must be 0;
- for each live stream, how many stored events it did not show: must be 0.

    python bench/scale_out.py --duration 5 --connections 16

PostgreSQL is found at EVENTYARD_TEST_POSTGRES_URL (default: the local server).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import psycopg
from servers import BENCH_DIR, HOST, Server, Servers, free_port, scratch_database
from wrkload import WrkResult, finish_wrk, start_wrk

ADMIN_URL = os.environ.get(
    "EVENTYARD_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
ENV = {"EVENTYARD_WEBHOOK_ALLOW_PRIVATE": "true"}
CPUS = f"0-{(os.cpu_count() or 1) - 1}"


@dataclass
class Stream:
    """A live stream read in a daemon thread: the event ids it showed."""

    url: str
    key: str
    ids: list[str] = field(default_factory=list)
    opened: threading.Event = field(default_factory=threading.Event)

    def start(self) -> None:
        threading.Thread(target=self._run, daemon=True).start()
        if not self.opened.wait(10):
            raise RuntimeError(f"the stream on {self.url} did not open")

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.key}"}
        try:
            with httpx.stream(
                "GET", self.url + "/v1/events/stream", headers=headers, timeout=None
            ) as answer:
                for line in answer.iter_lines():
                    if line == ": connected":
                        self.opened.set()
                    elif line.startswith("id: "):
                        self.ids.append(line[4:])
        except httpx.HTTPError:
            return  # the server stopped


def _database_counts(url: str) -> dict[str, int]:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM events), (SELECT count(*) FROM transactions),"
            " (SELECT count(*) FROM transactions WHERE state = 'finished')"
        ).fetchone()
    events, txns, finished = row if row is not None else (0, 0, 0)
    return {"events": events, "transactions": txns, "finished": finished}


def _event_ids(url: str) -> set[str]:
    with psycopg.connect(url) as conn:
        return {r[0] for r in conn.execute("SELECT id FROM events").fetchall()}


def _receiver_results(receiver: Server) -> list[str]:
    with httpx.Client(timeout=30) as client:
        got = orjson.loads(client.get(receiver.url + "/results").content)
    return [w for w in got["webhook_ids"] if w]


def run_topology(
    name: str,
    apis: int,
    workers: int,
    args: argparse.Namespace,
    workdir: Path,
    processes: int = 1,
) -> dict[str, object]:
    with scratch_database(ADMIN_URL) as db_url, Servers(workdir, CPUS) as servers:
        port = free_port()
        receiver = servers.start(
            f"{name} receiver",
            [sys.executable, str(BENCH_DIR / "receiver.py"), "--port", str(port)],
            port,
        )
        extra = ["--no-worker"] if workers else []
        if processes > 1:
            extra.append(f"--processes={processes}")
        key: str | None = None
        api_servers = []
        for n in range(apis):
            server, key = servers.eventyard(
                f"{name} api{n + 1}", db_url, extra_args=extra, extra_env=ENV, key=key
            )
            api_servers.append(server)
        assert key is not None
        for n in range(workers):
            command = [sys.executable, "-m", "eventyard", "worker", "--database-url", db_url]
            # A worker listens on no port: "ready" is the receiver's answer, checked below.
            servers.start(
                f"{name} worker{n + 1}",
                command,
                receiver.port,
                env={**os.environ, **ENV},
            )
        auth = {"Authorization": f"Bearer {key}"}
        made = httpx.post(
            api_servers[0].url + "/v1/consumers",
            json={"name": "hook", "kind": "webhook", "url": receiver.url + "/hook"},
            headers=auth,
        )
        made.raise_for_status()
        streams = [Stream(s.url, key) for s in api_servers]
        for stream in streams:
            stream.start()
        loads = [
            start_wrk(
                s.url + "/v1/events",
                script=BENCH_DIR / "post_event.lua",
                script_args=[key, f"{name}-{n}-{time.time_ns()}"],
                seconds=args.duration,
                connections=args.connections,
                threads=1,
                cpu=CPUS,
            )
            for n, s in enumerate(api_servers)
        ]
        results: list[WrkResult] = [finish_wrk(p, args.duration + 60) for p in loads]
        acked = sum(r.requests for r in results if r.ok)
        counts = _database_counts(db_url)
        deadline = time.monotonic() + args.drain_seconds
        while time.monotonic() < deadline:
            counts = _database_counts(db_url)
            if counts["finished"] == counts["transactions"] == counts["events"]:
                break
            time.sleep(0.5)
        time.sleep(1.0)  # a late second delivery, were there one, shows now
        webhook_ids = _receiver_results(receiver)
        stored = _event_ids(db_url)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(stored - set(s.ids) for s in streams):
            time.sleep(0.2)
        return {
            "name": name,
            "per_process": [round(r.requests_per_s) for r in results],
            "errors": sum(r.errors for r in results),
            "total": round(sum(r.requests_per_s for r in results)),
            "p99_ms": [round(r.p99_ms, 1) for r in results],
            "acked": acked,
            **counts,
            "deliveries": len(webhook_ids),
            "duplicates": sum(1 for n in Counter(webhook_ids).values() if n > 1),
            "stream_missing": [len(stored - set(s.ids)) for s in streams],
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds of wrk load")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections each")
    parser.add_argument("--drain-seconds", type=int, default=60, help="wait for deliveries")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eventyard-scale-") as tmp:
        rows = [
            run_topology("one process", 1, 0, args, Path(tmp)),
            run_topology("2 api + 2 workers", 2, 2, args, Path(tmp)),
            run_topology("serve --processes 2", 1, 0, args, Path(tmp), processes=2),
        ]
    cols = (
        "topology",
        "events/s each",
        "events/s",
        "p99 ms",
        "acked",
        "stored",
        "txns",
        "finished",
        "delivered",
        "dupes",
        "stream missing",
    )
    print(" | ".join(cols))
    for r in rows:
        print(
            " | ".join(
                str(x)
                for x in (
                    r["name"],
                    r["per_process"],
                    r["total"],
                    r["p99_ms"],
                    r["acked"],
                    r["events"],
                    r["transactions"],
                    r["finished"],
                    r["deliveries"],
                    r["duplicates"],
                    r["stream_missing"],
                )
            )
        )
        if r["errors"]:
            print(f"  ({r['errors']} wrk errors in {r['name']})")
    print(
        f"on {os.cpu_count()} CPUs shared by wrk, the servers, the workers and PostgreSQL; {HOST}"
    )


if __name__ == "__main__":
    main()
