"""Batch ingest: `POST /v1/events/batch`, 100 events a request, at `ctx.connections`.

eventyard (with one pull consumer, as in the single-event scenario) is driven by
bench/post_batch.lua at 10 connections (at most `ctx.connections`: 1,000 events in flight,
as ten busy SDK clients would have; 50 connections would queue 5,000 and measure only the
queue in the p99): 100 events a request, each with its own idempotency key and one of
1,000 users; the figure is events/s (requests/s times 100, counting only events the answers
say were accepted) and the p99 of a request. The ceiling is the database's own insert rate
for the same rows in batches of 100: one Python process pinned to the server CPU
(`bench/ceiling_app.py --insert-rate`) inserting into a table with eventyard's `events`
columns and indexes, one transaction per batch, with the durability eventyard uses (SQLite
WAL + synchronous=FULL; PostgreSQL synchronous_commit=on). The two are measured in turn.
The scenario checks that the ceiling's table still has the columns and indexes of the
`events` table eventyard just migrated, and says so when they drifted apart.
"""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
from typing import Any

import orjson
import psycopg
from measure import (
    Target,
    add_pull_consumer,
    alternate,
    ceiling_database_url,
    check_rows,
    memory_mb,
    sqlite_path,
    wrk_target,
)
from scenario import Figure, ScenarioContext
from servers import BENCH_DIR

SCENARIO = "POST /v1/events/batch, 100 events, 10 connections"
BATCH = 100
CONNECTIONS = 10
CEILING_TABLE = "ceiling_events"


def run(ctx: ScenarioContext) -> list[Figure]:
    server, key = ctx.servers.eventyard(f"eventyard-{ctx.backend}", ctx.database_url)
    add_pull_consumer(server.url, key)
    ceiling_url = ceiling_database_url(ctx)
    ev = wrk_target(
        ctx,
        Figure(SCENARIO, ctx.backend, "eventyard", "eventyard", "events/s"),
        server.url + "/v1/events/batch",
        BENCH_DIR / "post_batch.lua",
        [key, str(BATCH)],
        per_request=BATCH,
        connections=min(CONNECTIONS, ctx.connections),
        watch_pid=server.pid,
    )
    ceiling = Target(
        Figure(SCENARIO, ctx.backend, "database insert, 100 a transaction", "ceiling", "events/s"),
        lambda seconds, tag: insert_rate(ctx, ceiling_url, seconds, tag),
    )
    alternate(ctx, [ev, ceiling])
    ev.figure.extra.update(memory_mb(server.pid))
    ev.figure.extra["consumers"] = 1
    drift = schema_drift(ctx.database_url, ceiling_url)
    if drift:
        ctx.notes.append(f"the ceiling's table differs from eventyard's events table: {drift}")
    ctx.servers.stop_all()
    check_rows(ctx, ev, ctx.database_url, "events")
    return [ev.figure, ceiling.figure]


def insert_rate(ctx: ScenarioContext, url: str, seconds: int, tag: str) -> dict[str, float]:
    command = [
        "taskset",
        "-c",
        ctx.server_cpu,
        sys.executable,
        str(BENCH_DIR / "ceiling_app.py"),
        "--insert-rate",
        str(seconds),
        "--batch",
        str(BATCH),
        "--tag",
        tag,
        "--database-url",
        url,
    ]
    proc = subprocess.run(
        command, capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the insert-rate ceiling failed:\n{proc.stdout}\n{proc.stderr}")
    run: dict[str, float] = orjson.loads(proc.stdout.strip().splitlines()[-1])
    run["errors"] = 0.0
    return run


# --- does the ceiling's table still look like eventyard's? -------------------------------


def shape(url: str, table: str) -> tuple[set[str], set[tuple[str, ...]]] | None:
    """The table's column names and its indexes' column lists (None if unreadable)."""
    try:
        if url.startswith("sqlite:"):
            with contextlib.closing(sqlite3.connect(sqlite_path(url))) as conn:
                columns = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                indexes = set()
                for row in conn.execute(f"PRAGMA index_list({table})"):
                    info = conn.execute(f"PRAGMA index_info('{row[1]}')").fetchall()
                    indexes.add(tuple(r[2] for r in sorted(info)))
                return columns, indexes
        with psycopg.connect(url) as pg:
            columns = {
                r[0]
                for r in pg.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                    (table,),
                )
            }
            rows: list[Any] = pg.execute(
                "SELECT array_agg(a.attname ORDER BY k.ord) FROM pg_index i"
                " CROSS JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord)"
                " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum"
                " WHERE i.indrelid = %s::regclass GROUP BY i.indexrelid",
                (table,),
            ).fetchall()
            return columns, {tuple(r[0]) for r in rows}
    except (sqlite3.Error, psycopg.Error):
        return None


def schema_drift(eventyard_url: str, ceiling_url: str) -> str:
    theirs, ours = shape(eventyard_url, "events"), shape(ceiling_url, CEILING_TABLE)
    if theirs is None or ours is None or not ours[0]:
        return ""
    problems = []
    if theirs[0] != ours[0]:
        problems.append(f"columns {sorted(theirs[0] ^ ours[0])}")
    if theirs[1] != ours[1]:
        problems.append(
            f"indexes only on events {sorted(theirs[1] - ours[1])},"
            f" only on the ceiling {sorted(ours[1] - theirs[1])}"
        )
    return "; ".join(problems)
