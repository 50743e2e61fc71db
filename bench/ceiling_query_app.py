"""The ceilings for `GET /v1/events`: eventyard's own SQL, run directly and behind a bare route.

Both take the same request paths as eventyard (a file, one a line, drawn by
bench/scenario_query.py) and turn each into the parameters eventyard would bind: the SQL
is built by eventyard's own `event_query_sql`, so it is exactly the statement
`query_events` runs, with the page size plus the one row that tells whether there is a
next page.

`--direct` runs the statements one after another from this one process for `--seconds`,
each with a random path of the file, and prints one JSON line: queries/s and p50/p99 of
execute-and-fetch, in milliseconds. No HTTP, no event objects: the database and its driver.

Without `--direct` it serves `GET /v1/events` with uvicorn under eventyard's own settings
(uvloop, httptools, no access log): the query string is parsed, the statement runs on a
pool of reader threads with a connection each (as eventyard's store does), the rows are
answered as eventyard's JSON (the payload column passed through as it is stored). No auth,
no routing, no validation beyond what building the statement needs.

    python bench/ceiling_query_app.py --database-url URL --project-id P --port 8002
    python bench/ceiling_query_app.py --direct --database-url URL --project-id P \\
        --paths paths.txt --seconds 5
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import random
import sqlite3
import statistics
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import orjson
import psycopg

from eventyard.domain.models import Environment
from eventyard.services.events import decode_cursor
from eventyard.store.connect import sqlite_path
from eventyard.store.db import Backend, _to_pyformat
from eventyard.store.events import EventQuery, event_query_sql

PAGE = 50
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def connect(url: str) -> Any:
    if url.startswith("sqlite:"):
        conn = sqlite3.connect(sqlite_path(url), isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA query_only = ON")
        return conn
    return psycopg.connect(url, autocommit=True)


class Statements:
    """Path → (sql, params), as eventyard's GET /v1/events builds them."""

    def __init__(self, url: str, project_id: str, environment: str = "live") -> None:
        self.postgres = not url.startswith("sqlite:")
        self.project_id = project_id
        self.environment = Environment(environment)

    def for_query(self, query_string: str) -> tuple[str, list[Any]]:
        p = dict(parse_qsl(query_string))
        since, until, cursor = p.get("since"), p.get("until"), p.get("cursor")
        q = EventQuery(
            trigger=p.get("trigger"),
            user_id=p.get("user_id"),
            since=int(since) * 1000 if since else None,
            until=int(until) * 1000 if until else None,
            source=p.get("source"),
            before=decode_cursor(cursor) if cursor else None,
            limit=PAGE + 1,
        )
        now = time.time_ns() // 1000
        backend: Backend = "postgres" if self.postgres else "sqlite"
        sql, params = event_query_sql(self.project_id, self.environment, q, now, backend)
        return (_to_pyformat(sql) if self.postgres else sql), params


# ---- direct ---------------------------------------------------------------------------------


def direct(url: str, project_id: str, paths: list[str], seconds: float) -> dict[str, float]:
    statements = Statements(url, project_id)
    queries = [p.partition("?")[2] for p in paths]
    conn = connect(url)
    rng = random.Random(5)
    latencies: list[float] = []
    for query in queries[:200]:  # warm the page cache and the statement caches
        sql, params = statements.for_query(query)
        conn.execute(sql, params).fetchall()
    started = time.perf_counter()
    deadline = started + seconds
    rows = 0
    while True:
        sql, params = statements.for_query(rng.choice(queries))
        t0 = time.perf_counter()
        rows += len(conn.execute(sql, params).fetchall())
        if not statements.postgres:
            conn.rollback()  # eventyard ends each SQLite read transaction too
        t1 = time.perf_counter()
        latencies.append((t1 - t0) * 1000)
        if t1 >= deadline:
            break
    elapsed = time.perf_counter() - started
    conn.close()
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "rate": len(latencies) / elapsed,
        "p50_ms": cuts[49],
        "p99_ms": cuts[98],
        "queries": len(latencies),
        "rows_per_query": rows / len(latencies),
    }


# ---- the bare route -------------------------------------------------------------------------


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _time(us: int) -> Any:
    if us % 1_000_000:
        return _EPOCH + _US * us  # orjson writes it as eventyard does, with OPT_UTC_Z
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(us // 1_000_000))
    return f"{seconds}.000000Z"


def _event(row: Any) -> dict[str, Any]:
    (event_id, _project, env, trigger, user, payload, ts, received, idem, source, expires) = row
    return {
        "id": event_id,
        "trigger": trigger,
        "user_id": user,
        "payload": orjson.Fragment(payload),
        "timestamp": _time(ts),
        "received_at": _time(received),
        "idempotency_key": idem,
        "source": source,
        "environment": env,
        "expires_at": None if expires is None else _time(expires),
    }


class CeilingQueryApp:
    def __init__(self, url: str, project_id: str, readers: int = 4) -> None:
        self.url = url
        self.statements = Statements(url, project_id)
        self.pool = ThreadPoolExecutor(max_workers=readers, thread_name_prefix="ceiling-read")
        self.local = threading.local()

    def _fetch(self, query_string: str) -> list[Any]:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = connect(self.url)
        sql, params = self.statements.for_query(query_string)
        rows: list[Any] = conn.execute(sql, params).fetchall()
        if not self.statements.postgres:
            conn.rollback()
        return rows

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self.pool.shutdown(wait=False)
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["path"] != "/v1/events":
            await _answer(send, 200, b'{"ok":true}')
            return
        query_string = scope["query_string"].decode("latin-1")
        loop = asyncio.get_running_loop()
        rows = await loop.run_in_executor(self.pool, self._fetch, query_string)
        events = [_event(r) for r in rows[:PAGE]]
        cursor = None
        if len(rows) > PAGE:
            last = rows[PAGE - 1]
            cursor = base64.urlsafe_b64encode(orjson.dumps([last[6], last[0]])).decode().rstrip("=")
        await _answer(
            send,
            200,
            orjson.dumps({"data": events, "next_cursor": cursor}, option=orjson.OPT_UTC_Z),
        )


async def _answer(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--project-id", required=True)
    parser.add_argument("--direct", action="store_true", help="time the SQL alone, print JSON")
    parser.add_argument("--paths", help="with --direct: the request paths, one a line")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.direct:
        if not args.paths:
            parser.error("--direct needs --paths")
        with open(args.paths) as f:
            paths = [line.strip() for line in f if line.strip()]
        result = direct(args.database_url, args.project_id, paths, args.seconds)
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return
    if args.port is None:
        parser.error("--port is required to serve")
    import uvicorn

    print(
        f"query ceiling app on http://{args.host}:{args.port} (pid {os.getpid()})", file=sys.stderr
    )
    uvicorn.run(
        CeilingQueryApp(args.database_url, args.project_id),
        host=args.host,
        port=args.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level="warning",
        server_header=False,
    )


if __name__ == "__main__":
    main()
