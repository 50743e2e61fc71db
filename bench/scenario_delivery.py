"""Webhook delivery: lag at a steady 1,000 events/s, and how fast one worker drains a backlog.

Two deployments are measured on the scenario's database, one after the other: `eventyard
serve` with its delivery worker inside, and `eventyard serve --no-worker` beside an `eventyard
worker` process (both pinned to the server CPU). One webhook consumer points at a local
receiver (`receiver.py`, pinned to the load CPU) that answers 200 at once and notes when each
event arrived, on the wall clock (`time.time_ns()`), which the sender reads too.

- **Lag**: a paced sender (this module run as `pace`, pinned to the load CPU) posts `POST
  /v1/events` open-loop at `--rate` events/s (scheduled send times, spread over several
  keep-alive connections) and notes the wall-clock time each 2xx arrived. The lag of an event
  is its arrival at the receiver minus its 2xx. Every acknowledged event must arrive; the
  scenario waits a few seconds after the load for stragglers and counts the missing ones as
  errors.
- **Backlog**: with the consumer paused, `--events` events are stored through
  `/v1/events/batch`; then the consumer is resumed and the clock runs until the receiver has
  them all (`rate`: deliveries/s), and until the database holds no pending transaction any
  more (`recorded_rate`: every attempt recorded too).

Standalone: `python bench/scenario_delivery.py --backend sqlite --duration 8 --events 20000`
(`--help` for the rest).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson
import psycopg
from scenario import Figure, ScenarioContext
from servers import (
    BENCH_DIR,
    HOST,
    Server,
    ServerFailed,
    Servers,
    free_port,
    postgres_available,
    scratch_database,
)

RATE = 1000  # events/s for the lag runs
BACKLOG_EVENTS = 20_000
BATCH = 1000
PACE_CONNECTIONS = 128  # enough that 1,000/s holds even when each answer takes 100 ms
DRAIN_WAIT_S = 5.0  # how long after the load every acknowledged event may take to arrive
ENV = {"EVENTYARD_WEBHOOK_ALLOW_PRIVATE": "true"}
LAG_SCENARIO = "delivery: POST /v1/events at 1,000/s → webhook (lag from 2xx)"
BACKLOG_SCENARIO = "delivery: backlog to one webhook consumer"
IN_PROCESS = "eventyard serve (worker inside)"
SEPARATE = "eventyard worker (own process)"


# --- the scenario --------------------------------------------------------------------------


def run(
    ctx: ScenarioContext,
    *,
    events: int = BACKLOG_EVENTS,
    rate: int = RATE,
    profile: Path | None = None,
) -> list[Figure]:
    """Both deployments, lag then backlog; with `profile`, py-spy records the delivering
    process during the first backlog run into that directory (raw collapsed stacks)."""
    receiver = start_receiver(ctx)
    figures: list[Figure] = []
    key: str | None = None
    for deployment in (IN_PROCESS, SEPARATE):
        lag = Figure(LAG_SCENARIO, ctx.backend, deployment, "eventyard", "deliveries/s")
        backlog = Figure(
            f"{BACKLOG_SCENARIO} ({events:,} events)",
            ctx.backend,
            deployment,
            "eventyard",
            "deliveries/s",
        )
        lag.extra["goal"] = "lag p50 < 20 ms, p99 < 100 ms"
        backlog.extra["goal"] = "≥ 2,000 deliveries/s"
        started, key = start_eventyard(ctx, deployment, key)
        try:
            api = Api(started[0].url, key)
            consumer = api.consumer(receiver.url + "/hook")
            lag.extra["rate_events_per_s"] = rate
            if ctx.warmup > 0:
                lag_run(ctx, api, receiver, rate, ctx.warmup)
            for n in range(ctx.runs):
                spies = []
                if profile is not None and n == 0:
                    for server in started:
                        name = "worker" if server.port == 0 else "serve"
                        out = profile / f"{ctx.backend}-{name}-{len(started)}-lag.txt"
                        spies.append(py_spy(server.pid, out))
                try:
                    lag.runs.append(lag_run(ctx, api, receiver, rate, ctx.duration))
                finally:
                    for spy in spies:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(30)
                _log(ctx, lag, f"run {n + 1}/{ctx.runs}")
            for n in range(ctx.runs):
                spy = None
                if profile is not None and n == 0:
                    name = "worker" if deployment == SEPARATE else "serve"
                    spy = py_spy(started[-1].pid, profile / f"{ctx.backend}-{name}-backlog.txt")
                try:
                    backlog.runs.append(
                        backlog_run(ctx, api, consumer, receiver, events, started[-1].pid)
                    )
                finally:
                    if spy is not None:
                        spy.send_signal(signal.SIGINT)
                        spy.wait(30)
                _log(ctx, backlog, f"run {n + 1}/{ctx.runs}")
            lag.extra["server_rss_mb"] = [round(s.rss_mb() or 0, 1) for s in started]
            api.close()
        finally:
            for server in reversed(started):
                server.stop()
                ctx.servers.started.remove(server)
        figures += [lag, backlog]
    return figures


def _log(ctx: ScenarioContext, figure: Figure, what: str) -> None:
    last = figure.runs[-1]
    shown = ", ".join(f"{k} {v:,.1f}" for k, v in last.items())
    print(f"[{ctx.backend}] {figure.target}: {figure.scenario} {what}: {shown}", file=sys.stderr)


def py_spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy recording `pid` (its threads, idle ones left out) until sent SIGINT."""
    out.parent.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).parent / "py-spy"
    command = [str(spy), "record", "--pid", str(pid), "--format", "raw", "-o", str(out)]
    return subprocess.Popen([*command, "--rate", "200"], stdout=subprocess.DEVNULL)


def start_receiver(ctx: ScenarioContext) -> Server:
    port = free_port()
    command = [
        "taskset",
        "-c",
        ctx.load_cpu,  # the innermost taskset wins over the server CPU Servers pins to
        sys.executable,
        str(BENCH_DIR / "receiver.py"),
        "--port",
        str(port),
    ]
    return ctx.servers.start("webhook receiver", command, port)


def start_eventyard(
    ctx: ScenarioContext, deployment: str, key: str | None
) -> tuple[list[Server], str]:
    """The servers of one deployment (the API first), and the project's key."""
    if deployment == IN_PROCESS:
        server, key = ctx.servers.eventyard(
            "eventyard-delivery", ctx.database_url, extra_env=ENV, key=key
        )
        return [server], key
    server, key = ctx.servers.eventyard(
        "eventyard-api", ctx.database_url, extra_args=["--no-worker"], extra_env=ENV, key=key
    )
    return [server, start_worker(ctx)], key


def start_worker(ctx: ScenarioContext) -> Server:
    """`eventyard worker`, pinned to the server CPU; it listens on no port, so it is ready
    once it says it is delivering."""
    log = ctx.workdir / "eventyard-worker.log"
    command = [
        "taskset",
        "-c",
        ctx.server_cpu,
        sys.executable,
        "-m",
        "eventyard",
        "worker",
        "--database-url",
        ctx.database_url,
    ]
    base = ctx.servers.env if ctx.servers.env is not None else os.environ
    server = Server("eventyard worker", command, 0, log, env={**base, **ENV})
    ctx.servers.started.append(server)
    with log.open("wb") as out:
        server.proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=server.env
        )
    deadline = time.monotonic() + 30
    while "delivering from" not in log.read_text(errors="replace"):
        if server.proc.poll() is not None or time.monotonic() > deadline:
            raise ServerFailed(f"eventyard worker did not start:\n{server.tail()}")
        time.sleep(0.1)
    return server


class Api:
    """The few calls the scenario makes, with the project's key."""

    def __init__(self, url: str, key: str) -> None:
        self.url = url
        self.key = key
        self.http = httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        )
        self.consumer_id = ""

    def close(self) -> None:
        self.http.close()

    def consumer(self, hook_url: str) -> str:
        """The bench webhook consumer (made once per database), enabled."""
        listed = self.http.get("/v1/consumers")
        listed.raise_for_status()
        for c in listed.json()["data"]:
            if c["name"] == "bench":
                self.consumer_id = c["id"]
                self.set_state("resume")
                return self.consumer_id
        made = self.http.post(
            "/v1/consumers", json={"name": "bench", "kind": "webhook", "url": hook_url}
        )
        if made.status_code != 201:
            raise RuntimeError(f"cannot create the consumer: {made.status_code} {made.text}")
        self.consumer_id = made.json()["id"]
        return self.consumer_id

    def set_state(self, action: str) -> None:
        done = self.http.post(f"/v1/consumers/{self.consumer_id}/{action}")
        if done.status_code != 200:
            raise RuntimeError(f"{action} failed: {done.status_code} {done.text}")

    def store_batch(self, start: int, count: int) -> int:
        events = [
            {"trigger": "bench", "user_id": f"u{i % 1000}", "payload": {"amount": 19.99, "n": i}}
            for i in range(start, start + count)
        ]
        stored = self.http.post("/v1/events/batch", json={"events": events})
        if stored.status_code != 200:
            raise RuntimeError(f"batch failed: {stored.status_code} {stored.text[:300]}")
        return sum(1 for r in stored.json()["results"] if r["status"] == "accepted")


# --- receiver results ------------------------------------------------------------------------


def receiver_get(receiver: Server, path: str) -> bytes:
    with urllib.request.urlopen(receiver.url + path, timeout=30) as answer:
        body: bytes = answer.read()
        return body


def received_count(receiver: Server) -> int:
    return int(receiver_get(receiver, "/count"))


def take_results(receiver: Server) -> dict[str, Any]:
    results: dict[str, Any] = orjson.loads(receiver_get(receiver, "/results?clear=1"))
    return results


def wait_until_received(receiver: Server, count: int, within: float) -> None:
    deadline = time.monotonic() + within
    while received_count(receiver) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def wait_until_quiet(receiver: Server, quiet_s: float = 0.5, within: float = 30.0) -> None:
    """Until nothing has arrived for `quiet_s` (what an earlier run left is in)."""
    deadline = time.monotonic() + within
    last = -1
    while time.monotonic() < deadline:
        now = received_count(receiver)
        if now == last:
            return
        last = now
        time.sleep(quiet_s)


def _percentile(sorted_values: list[float], p: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(p / 100 * len(sorted_values)) - 1))
    return sorted_values[index]


# --- lag ---------------------------------------------------------------------------------------


def lag_run(
    ctx: ScenarioContext, api: Api, receiver: Server, rate: int, seconds: int
) -> dict[str, float]:
    wait_until_quiet(receiver)
    take_results(receiver)
    out = ctx.workdir / "pace.json"
    command = [
        "taskset",
        "-c",
        ctx.load_cpu,
        sys.executable,
        str(Path(__file__).resolve()),
        "pace",
        "--url",
        api.url,
        "--key",
        api.key,
        "--rate",
        str(rate),
        "--seconds",
        str(seconds),
        "--out",
        str(out),
    ]
    subprocess.run(command, check=True, timeout=seconds + 120)
    sent = orjson.loads(out.read_bytes())
    acked: dict[str, int] = dict(zip(sent["event_ids"], sent["ack_ns"], strict=True))
    wait_until_received(receiver, len(acked), DRAIN_WAIT_S)
    got = take_results(receiver)
    first_arrival: dict[str, int] = {}
    for event_id, ns in zip(got["event_ids"], got["ns"], strict=True):
        if event_id is not None and event_id not in first_arrival:
            first_arrival[event_id] = ns
    lags = sorted((first_arrival[e] - ack) / 1e6 for e, ack in acked.items() if e in first_arrival)
    missing = sum(1 for e in acked if e not in first_arrival)
    window_s = (max(got["ns"]) - min(got["ns"])) / 1e9 if len(got["ns"]) > 1 else 0.0
    latencies = sorted(sent["latency_ms"])
    acks = sorted(acked.values())
    ack_window_s = (acks[-1] - acks[0]) / 1e9 if len(acks) > 1 else 0.0
    return {
        "rate": len(got["ns"]) / window_s if window_s else 0.0,
        "ingest_rate": len(acks) / ack_window_s if ack_window_s else 0.0,
        "p50_ms": _percentile(lags, 50),
        "p99_ms": _percentile(lags, 99),
        "lag_p50_ms": _percentile(lags, 50),
        "lag_p99_ms": _percentile(lags, 99),
        "lag_max_ms": lags[-1] if lags else float("nan"),
        "ingest_p50_ms": _percentile(latencies, 50),
        "ingest_p99_ms": _percentile(latencies, 99),
        "sent": float(sent["sent"]),
        "acked": float(len(acked)),
        "delivered": float(len(lags)),
        "duplicates": float(len(got["ns"]) - len(first_arrival)),
        "send_slip_max_ms": float(sent["slip_max_ms"]),
        "errors": float(sent["errors"] + missing),
    }


# --- backlog -----------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    """User and system CPU time `pid` has used so far, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def backlog_run(
    ctx: ScenarioContext, api: Api, consumer: str, receiver: Server, events: int, pid: int
) -> dict[str, float]:
    """Store `events` with the consumer paused, resume it, and time the delivery. `pid` is
    the delivering process: its CPU time per delivery is what the rate would be on a core of
    its own (the machine may be busy with more than this benchmark)."""
    wait_until_quiet(receiver)
    api.set_state("pause")
    stored = 0
    with ThreadPoolExecutor(max_workers=4) as pool:
        starts = range(0, events, BATCH)
        stored = sum(pool.map(lambda s: api.store_batch(s, min(BATCH, events - s)), starts))
    if pending_count(ctx.database_url, consumer) < stored:
        raise RuntimeError("the stored events lack their pending transactions")
    take_results(receiver)
    cpu = cpu_seconds(pid)
    started = time.time_ns()
    api.set_state("resume")
    deadline = time.monotonic() + max(60.0, events / 100)
    while received_count(receiver) < stored and time.monotonic() < deadline:
        time.sleep(0.02)
    while pending_count(ctx.database_url, consumer) and time.monotonic() < deadline:
        time.sleep(0.02)
    recorded = time.time_ns()
    cpu = cpu_seconds(pid) - cpu
    got = take_results(receiver)
    arrived = len(set(got["event_ids"]))
    last = max(got["ns"]) if got["ns"] else recorded
    return {
        "rate": arrived / ((last - started) / 1e9),
        "recorded_rate": arrived / ((recorded - started) / 1e9),
        "cpu_us_per_delivery": cpu / arrived * 1e6 if arrived else float("nan"),
        "events": float(stored),
        "errors": float(stored - arrived),
    }


def pending_count(database_url: str, consumer: str) -> int:
    sql = "SELECT COUNT(*) FROM transactions WHERE consumer_id = ? AND state = 'pending'"
    if database_url.startswith("sqlite:"):
        path = database_url.removeprefix("sqlite:").removeprefix("//")
        with contextlib.closing(sqlite3.connect(path)) as conn:
            return int(conn.execute(sql, (consumer,)).fetchone()[0])
    with psycopg.connect(database_url) as conn:
        row = conn.execute(sql.replace("?", "%s"), (consumer,)).fetchone()
        return int(row[0]) if row else 0


# --- the paced sender (run as `scenario_delivery.py pace`, pinned to the load CPU) ---------


async def pace(url: str, key: str, rate: int, seconds: float, connections: int) -> dict[str, Any]:
    """POST events open-loop at `rate`/s for `seconds`; what was acknowledged, and when."""
    parts = urlsplit(url)
    host, port = parts.hostname or HOST, parts.port or 80
    head = (
        f"POST /v1/events HTTP/1.1\r\nhost: {host}:{port}\r\nauthorization: Bearer {key}\r\n"
        "content-type: application/json\r\n"
    ).encode()
    queue: asyncio.Queue[tuple[int, float] | None] = asyncio.Queue()
    event_ids: list[str] = []
    ack_ns: list[int] = []
    latency_ms: list[float] = []
    errors = 0
    loop = asyncio.get_running_loop()

    async def connection() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(host, port)
        while (item := await queue.get()) is not None:
            n, _scheduled = item
            body = orjson.dumps(
                {"trigger": "bench", "user_id": f"u{n % 1000}", "payload": {"amount": 19.99}}
            )
            began = loop.time()
            writer.write(head + b"content-length: %d\r\n\r\n" % len(body) + body)
            answer = await reader.readuntil(b"\r\n\r\n")
            status = int(answer[9:12])
            length = 0
            for line in answer.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            content = await reader.readexactly(length)
            if 200 <= status < 300:
                ack_ns.append(time.time_ns())
                event_ids.append(orjson.loads(content)["id"])
                latency_ms.append((loop.time() - began) * 1000)
            else:
                errors += 1
        writer.close()

    tasks = [asyncio.create_task(connection()) for _ in range(connections)]
    await asyncio.sleep(0.2)  # connect first
    total = int(rate * seconds)
    start = loop.time()
    slip = 0.0
    for n in range(total):
        scheduled = start + n / rate
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            slip = max(slip, -delay)
        queue.put_nowait((n, scheduled))
    for _ in tasks:
        queue.put_nowait(None)
    await asyncio.gather(*tasks)
    return {
        "sent": total,
        "event_ids": event_ids,
        "ack_ns": ack_ns,
        "latency_ms": latency_ms,
        "errors": errors,
        "slip_max_ms": slip * 1000,
    }


def pace_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="scenario_delivery.py pace")
    parser.add_argument("--url", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--rate", type=int, default=RATE)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--connections", type=int, default=PACE_CONNECTIONS)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    coro = pace(args.url, args.key, args.rate, args.seconds, args.connections)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(coro)
    else:
        result = uvloop.run(coro)
    Path(args.out).write_bytes(orjson.dumps(result))


# --- standalone --------------------------------------------------------------------------------


@contextlib.contextmanager
def database(backend: str, workdir: Path, postgres_url: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir}/eventyard.db"
        return
    problem = postgres_available(postgres_url)
    if problem is not None:
        raise SystemExit(f"PostgreSQL does not answer at {postgres_url}: {problem}")
    with scratch_database(postgres_url) as url:
        yield url


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["pace"]:
        pace_main(argv[1:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--duration", type=int, default=8, help="seconds per lag run")
    parser.add_argument("--events", type=int, default=BACKLOG_EVENTS, help="backlog size")
    parser.add_argument("--rate", type=int, default=RATE, help="events/s in the lag runs")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--load-cpu", default="1")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the delivering process into this directory"
    )
    parser.add_argument(
        "--pythonpath", help="import eventyard from this directory (a copy of src/) instead"
    )
    args = parser.parse_args(argv)
    env = None
    if args.pythonpath:
        env = {**os.environ, "PYTHONPATH": args.pythonpath}
    workdir = Path(tempfile.mkdtemp(prefix="eventyard-delivery-"))
    try:
        with (
            database(args.backend, workdir, args.postgres_url) as url,
            Servers(workdir, args.server_cpu, env) as servers,
        ):
            ctx = ScenarioContext(
                backend=args.backend,
                database_url=url,
                workdir=workdir,
                servers=servers,
                duration=args.duration,
                runs=args.runs,
                warmup=args.warmup,
                connections=PACE_CONNECTIONS,
                threads=1,
                server_cpu=args.server_cpu,
                load_cpu=args.load_cpu,
            )
            figures = run(ctx, events=args.events, rate=args.rate, profile=args.profile)
    finally:
        if args.keep:
            print(f"scratch directory kept: {workdir}", file=sys.stderr)
        else:
            subprocess.run(["rm", "-rf", str(workdir)], check=False)
    for f in figures:
        medians = {k: round(statistics.median(r[k] for r in f.runs), 2) for k in f.runs[0]}
        print(
            json.dumps(
                {
                    "scenario": f.scenario,
                    "backend": f.backend,
                    "target": f.target,
                    "median": medians,
                    **f.extra,
                },
                ensure_ascii=False,
            )
        )


if __name__ == "__main__":
    main()
