"""The ceiling for single-event ingest: the least a durable Python event server can do.

A bare ASGI app, served by uvicorn with eventyard's own settings (uvloop, httptools, no
access log), that answers `POST /v1/events` by parsing the body with orjson, queueing one
row, and answering 201 once a group commit holding that row is on disk. One writer thread
takes every row waiting, inserts them with one `executemany` and commits once — SQLite in
WAL mode with `synchronous=FULL`, PostgreSQL with `synchronous_commit=on` — then wakes all
the group's requests with a single call into the event loop.

The rows have eventyard's `events` columns and indexes, with time-ordered ids, so the
database does the same work per event as eventyard's insert minus idempotency keys. No
auth, no validation beyond "an object with a trigger and a user id", no routing: whatever
eventyard serves below this figure is the price of its own code.

Run: python bench/ceiling_app.py --port 8001 --database-url sqlite:////tmp/ceiling.db

With `--insert-rate SECONDS` it serves nothing: it measures the database's own insert rate
for the rows a batch request carries — the batch scenario's ceiling. One process, one
connection, the same table and durability; each loop builds `--batch` rows (100) as the
server would (ids, the payload encoded as JSON), inserts them with one `executemany` in one
transaction and commits. It prints one JSON line: rows/s, batches, and the p50/p99 of a
batch's insert-and-commit time.

    python bench/ceiling_app.py --insert-rate 5 --batch 100 --database-url sqlite:////tmp/c.db
"""

from __future__ import annotations

import argparse
import asyncio
import os
import queue
import sqlite3
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import psycopg
import uvicorn

TABLE = "ceiling_events"
COLUMNS = (
    "id, project_id, environment, trigger_id, user_id, payload, timestamp, received_at,"
    " idempotency_key, source, expires_at"
)
INSERT = f"INSERT INTO {TABLE} ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# eventyard's migrations, as of 0006: on SQLite events_by_user ends with trigger_id.
USER_INDEX = {
    "postgres": "project_id, environment, user_id, timestamp, id",
    "sqlite": "project_id, environment, user_id, timestamp, id, trigger_id",
}


def ddl(backend: str) -> tuple[str, ...]:
    return (
        f"CREATE TABLE IF NOT EXISTS {TABLE} (id TEXT PRIMARY KEY, project_id TEXT NOT NULL,"
        " environment TEXT NOT NULL, trigger_id TEXT NOT NULL, user_id TEXT NOT NULL,"
        " payload TEXT NOT NULL, timestamp BIGINT NOT NULL, received_at BIGINT NOT NULL,"
        " idempotency_key TEXT, source TEXT NOT NULL, expires_at BIGINT)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_by_time"
        f" ON {TABLE} (project_id, environment, timestamp, id)",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_by_user ON {TABLE} ({USER_INDEX[backend]})",
        f"CREATE INDEX IF NOT EXISTS {TABLE}_by_trigger"
        f" ON {TABLE} (project_id, environment, trigger_id, timestamp, id)",
    )


MAX_GROUP = 2000

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Database:
    """One connection with begin/insert/commit for either backend."""

    def __init__(self, url: str) -> None:
        self.postgres = url.startswith(("postgresql://", "postgres://"))
        if self.postgres:
            self.conn: Any = psycopg.connect(url, autocommit=False)
            self.conn.execute("SET synchronous_commit = on")
            for statement in ddl("postgres"):
                self.conn.execute(statement)
            self.conn.commit()
            self.insert = INSERT.replace("?", "%s")
        else:
            path = url.removeprefix("sqlite:").removeprefix("//").removeprefix("/")
            self.conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self.conn.execute("PRAGMA journal_mode = WAL")
            self.conn.execute("PRAGMA synchronous = FULL")
            for statement in ddl("sqlite"):
                self.conn.execute(statement)
            self.insert = INSERT

    def insert_group(self, rows: list[tuple[Any, ...]]) -> None:
        if self.postgres:
            with self.conn.cursor() as cursor:
                cursor.executemany(self.insert, rows)
            self.conn.commit()
        else:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany(self.insert, rows)
            self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()


class GroupWriter:
    """One thread; each loop takes all waiting rows, commits them, wakes their requests."""

    def __init__(self, db: Database, loop: asyncio.AbstractEventLoop) -> None:
        self.db = db
        self.loop = loop
        self.queue: queue.SimpleQueue[tuple[tuple[Any, ...], asyncio.Future[None]] | None] = (
            queue.SimpleQueue()
        )
        self.thread = threading.Thread(target=self._run, name="ceiling-writer", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.queue.put(None)
        self.thread.join()

    def _run(self) -> None:
        while True:
            first = self.queue.get()
            if first is None:
                return
            group = [first]
            while len(group) < MAX_GROUP:
                try:
                    item = self.queue.get_nowait()
                except queue.Empty:
                    break
                if item is None:
                    self.queue.put(None)
                    break
                group.append(item)
            try:
                self.db.insert_group([row for row, _ in group])
            except Exception as exc:
                self.loop.call_soon_threadsafe(_fail, [f for _, f in group], exc)
            else:
                self.loop.call_soon_threadsafe(_succeed, [f for _, f in group])


def _succeed(futures: list[asyncio.Future[None]]) -> None:
    for future in futures:
        if not future.done():
            future.set_result(None)


def _fail(futures: list[asyncio.Future[None]], exc: BaseException) -> None:
    for future in futures:
        if not future.done():
            future.set_exception(exc)


_counter = 0


def time_ordered_id() -> str:
    """Milliseconds then a per-process counter: sorts by time, like eventyard's ULIDs."""
    global _counter
    _counter += 1
    return f"evt_{time.time_ns() // 1_000_000:012x}{_counter:014x}"


class CeilingApp:
    def __init__(self, url: str) -> None:
        self.url = url
        self.writer: GroupWriter | None = None

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
        elif scope["type"] == "http":
            await self._http(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.writer = GroupWriter(Database(self.url), asyncio.get_running_loop())
                self.writer.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.writer is not None:
                    self.writer.stop()
                    self.writer.db.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            await _answer(send, 200, b'{"ok":true}')
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            event = orjson.loads(b"".join(chunks))
        except orjson.JSONDecodeError:
            await _answer(send, 400, b'{"code":"malformed_json"}')
            return
        if not (
            isinstance(event, dict)
            and isinstance(event.get("trigger"), str)
            and isinstance(event.get("user_id"), str)
        ):
            await _answer(send, 422, b'{"code":"validation_failed"}')
            return
        now = time.time_ns() // 1000
        event_id = time_ordered_id()
        row = (
            event_id,
            "prj_bench",
            "live",
            event["trigger"],
            event["user_id"],
            orjson.dumps(event.get("payload") or {}).decode(),
            now,
            now,
            event.get("idempotency_key"),
            "api",
            None,
        )
        assert self.writer is not None
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.writer.queue.put((row, done))
        await done
        await _answer(send, 201, orjson.dumps({"id": event_id, "received_at": now}))


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


def insert_rate(url: str, seconds: float, batch: int, tag: str) -> dict[str, float]:
    """Insert batches of `batch` rows, one transaction each, for `seconds`."""
    db = Database(url)
    payload = {"amount": 19.99, "plan": "pro"}
    times: list[float] = []
    rows = 0
    started = time.perf_counter()
    deadline = started + seconds
    try:
        while time.perf_counter() < deadline:
            begin = time.perf_counter()
            now = time.time_ns() // 1000
            group = []
            for _ in range(batch):
                rows += 1
                group.append(
                    (
                        time_ordered_id(),
                        "prj_bench",
                        "live",
                        "bench",
                        f"u{rows % 1000}",
                        orjson.dumps(payload).decode(),
                        now,
                        now,
                        f"{tag}-{rows}",
                        "api",
                        None,
                    )
                )
            db.insert_group(group)
            times.append(time.perf_counter() - begin)
        elapsed = time.perf_counter() - started
    finally:
        db.close()
    times.sort()
    return {
        "rate": rows / elapsed,
        "rows": float(rows),
        "batches": float(len(times)),
        "p50_ms": times[len(times) // 2] * 1000,
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--database-url", required=True)
    parser.add_argument(
        "--insert-rate",
        type=float,
        metavar="SECONDS",
        help="measure the database's insert rate for this long instead of serving",
    )
    parser.add_argument("--batch", type=int, default=100, help="rows a transaction (100)")
    parser.add_argument("--tag", default="ceiling", help="prefix of the idempotency keys")
    args = parser.parse_args()
    if args.insert_rate is not None:
        result = insert_rate(args.database_url, args.insert_rate, args.batch, args.tag)
        sys.stdout.write(orjson.dumps(result).decode() + "\n")
        return
    if args.port is None:
        parser.error("--port is required to serve")
    print(f"ceiling app on http://{args.host}:{args.port} (pid {os.getpid()})", file=sys.stderr)
    uvicorn.run(
        CeilingApp(args.database_url),
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
