"""What time partitions cost on PostgreSQL's hot paths: unpartitioned vs N ranges.

For each layout — the schema before partitioning (migrations up to 0007), and the
partitioned schema with N one-day ranges — a scratch database gets the same rows (events
spread over the ranges' days, one transaction each with its history, a backlog of due
ones), then each hot path runs in-process, sequentially, and its median and p90 are
printed:

* claim: the worker's claim statement (`claim_due_webhooks`, 100 rows), rolled back each
  time so every run claims the same backlog;
* get: GET /v1/events/{id} (the event and its transactions);
* list: GET /v1/events?limit=50, the first page (with transactions);
* ingest: POST /v1/events, one event, answered after its commit.

    .venv/bin/python bench/partitions.py --ranges 0,60,400 --events 40000
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent / "src"))

from servers import scratch_database

from eventyard import ids
from eventyard.api.app import create_app
from eventyard.clock import SystemClock
from eventyard.domain.models import Environment
from eventyard.services.container import build_services
from eventyard.services.projects import init_project
from eventyard.settings import Settings
from eventyard.store import (
    Store,
    open_store,
    partitions,
)
from eventyard.store import migrate as migrations
from eventyard.store.connect import connect
from eventyard.store.db import Db
from eventyard.store.transactions import claim_due_webhooks

DAY_MS = partitions.DAY_MS


def prepare(url: str, ranges: int) -> None:
    db = connect(url, writer=True)
    try:
        if ranges == 0:
            # Every migration but 0008: today's schema, unpartitioned.
            migrations.migrate(db, upto=7)
            for m in migrations.available("postgres"):
                if m.version > 8:
                    db.begin()
                    migrations._run_script(db, m.sql)
                    db.commit()
        else:
            migrations.migrate(db)
            now_ms = time.time_ns() // 1_000_000
            for day in range(ranges):
                partitions.ensure_partitions(db, now_ms - day * DAY_MS, days=1)
    finally:
        db.close()


def seed(db: Db, project_id: str, consumer_id: str, events: int, days: int) -> list[str]:
    """`events` events over the last `days` days, each with a transaction (the newest
    1,000 pending and due) and its history row; the ids of the last day's events."""
    rng = random.Random(7)
    now_ms = time.time_ns() // 1_000_000
    rows, txns, history, recent = [], [], [], []
    for i in range(events):
        ms = now_ms - int((events - i) / events * days * DAY_MS)
        event_id = ids.new_id_at("evt", ms)
        txn_id = ids.new_id_at("txn", ms)
        us = ms * 1000
        rows.append(
            (
                event_id,
                project_id,
                "test",
                f"t{rng.randrange(8)}",
                f"u{rng.randrange(2000)}",
                '{"n": 1}',
                us,
                us,
                None,
                "api",
                None,
            )
        )
        pending = i >= events - 1000
        txns.append(
            (
                txn_id,
                project_id,
                "test",
                consumer_id,
                event_id,
                "pending" if pending else "finished",
                us if pending else None,
                us,
                us,
            )
        )
        history.append((txn_id, None, "pending", us, "bench"))
        if ms > now_ms - DAY_MS:
            recent.append(event_id)
    db.begin()
    db.executemany(
        "INSERT INTO events (id, project_id, environment, trigger_id, user_id, payload,"
        " timestamp, received_at, idempotency_key, source, expires_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    db.executemany(
        "INSERT INTO transactions (id, project_id, environment, consumer_id, event_id, state,"
        " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        txns,
    )
    db.executemany(
        "INSERT INTO transaction_history (transaction_id, exit_state, enter_state, at, actor)"
        " VALUES (?, ?, ?, ?, ?)",
        history,
    )
    db.commit()
    for table in ("events", "transactions", "transaction_history", "delivery_attempts"):
        db.execute(f"ANALYZE {table}")
    db.commit()
    return recent


async def timed(runs: int, call: Callable[[], Awaitable[object]]) -> tuple[float, float]:
    for _ in range(min(10, runs)):
        await call()
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        await call()
        samples.append((time.perf_counter() - start) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.9)]


async def measure(url: str, ranges: int, events: int, runs: int) -> dict[str, tuple[float, float]]:
    prepare(url, ranges)
    store = open_store(url, read_connections=2) if ranges else _unpartitioned(url)
    try:
        services = build_services(store, Settings(database_url=url), SystemClock())
        made = await init_project(store, services.clock, "bench")
        key = made.keys[Environment.TEST]
        transport = httpx.ASGITransport(app=create_app(services))
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://bench",
            headers={"Authorization": f"Bearer {key}"},
        ) as client:
            answer = await client.post("/v1/consumers", json={"name": "pull", "kind": "pull"})
            assert answer.status_code == 201, answer.text
            consumer_id = answer.json()["id"]
            db = connect(url, writer=True)
            recent = seed(db, made.project.id, consumer_id, events, max(ranges, 60))
            rng = random.Random(1)

            async def claim() -> None:
                now = time.time_ns() // 1000
                db.begin()
                got = claim_due_webhooks(db, consumer_id, now, now + 30_000_000, 100)
                db.rollback()
                assert len(got) == 100, len(got)

            async def get() -> None:
                answer = await client.get(f"/v1/events/{rng.choice(recent)}")
                assert answer.status_code == 200, answer.text

            async def page() -> None:
                answer = await client.get("/v1/events", params={"limit": 50})
                assert answer.status_code == 200, answer.text
                assert len(answer.json()["data"]) == 50

            async def ingest() -> None:
                answer = await client.post("/v1/events", json={"trigger": "t1", "user_id": "u"})
                assert answer.status_code == 201, answer.text

            results = {
                "claim": await timed(runs, claim),
                "get": await timed(runs, get),
                "list": await timed(runs, page),
                "ingest": await timed(runs, ingest),
            }
            db.close()
    finally:
        store.close()
    return results


def _unpartitioned(url: str) -> Store:
    """A store on the 0007 schema: started without migrating (and so without partitions)."""
    store = Store(url, read_connections=2)
    store.start()
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ranges", default="0,60,400", help="0 = unpartitioned (schema 0007)")
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    print(f"{args.events} events; median / p90 in ms over {args.runs} runs each")
    print(f"{'layout':>16} {'claim 100':>14} {'GET event':>14} {'GET page':>14} {'POST':>14}")
    for ranges in (int(r) for r in args.ranges.split(",")):
        with scratch_database(args.postgres_url) as url:
            r = asyncio.run(measure(url, ranges, args.events, args.runs))
        label = "unpartitioned" if ranges == 0 else f"{ranges} ranges"
        cells = " ".join(
            f"{r[k][0]:6.2f} / {r[k][1]:5.2f}" for k in ("claim", "get", "list", "ingest")
        )
        print(f"{label:>16} {cells}")


if __name__ == "__main__":
    main()
