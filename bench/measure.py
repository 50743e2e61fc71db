"""Measuring servers side by side, and the small pieces every scenario needs.

A `Target` is something to measure — a server under wrk, or a Python load such as the
database's own insert rate — bound to the `Figure` its runs go into. `alternate` warms each
target up, then takes `ctx.runs` runs of `ctx.duration` seconds, going round the targets in
turn, so that drift on the machine (another process waking up, the page cache, a busy
PostgreSQL) hits eventyard and its ceilings alike and the per-run ratios stay paired.

Also here: a keep-alive HTTP client for scenarios that check answers one by one, a pull
consumer so that ingest creates transactions as it would in production, the server's
memory from /proc, counting stored rows, and pinning this process to the load CPU.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import sqlite3
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
import psycopg
from scenario import Figure, ScenarioContext
from wrkload import run_figures, run_wrk

Measure = Callable[[int, str], dict[str, float]]  # (seconds, run tag) -> one run's figures


@dataclass
class Target:
    figure: Figure
    measure: Measure
    acknowledged: float = 0.0  # events answered 2xx, warm-up included (to check rows stored)


def wrk_target(
    ctx: ScenarioContext,
    figure: Figure,
    url: str,
    script: Path,
    script_args: list[str],
    *,
    per_request: int = 1,
    connections: int | None = None,
    watch_pid: int | None = None,
) -> Target:
    """wrk against `url`; `rate` counts events, `per_request` of them in each request. A
    script that reports `x-accepted` (events the server said it accepted) is held to it:
    events answered 2xx but not accepted count as errors. With `watch_pid`, the server's
    resident memory is sampled during each run (`rss_max_mb`)."""

    def measure(seconds: int, tag: str) -> dict[str, float]:
        with RssSampler(watch_pid) as rss:
            result = run_wrk(
                url,
                script=script,
                script_args=[*script_args, tag],
                seconds=seconds,
                connections=connections or ctx.connections,
                threads=ctx.threads,
                cpu=ctx.load_cpu,
            )
        run = run_figures(result, per_request)
        if rss.peak is not None:
            run["rss_max_mb"] = rss.peak
        answered = (result.requests - result.non_2xx) * per_request
        if "accepted" in run:
            missing = max(0.0, answered - run["accepted"])
            run["not_accepted"] = missing
            run["errors"] += missing
            answered = run["accepted"]
        run["events_acknowledged"] = float(answered)
        return run

    return Target(figure, measure)


def alternate(ctx: ScenarioContext, targets: list[Target]) -> None:
    """A warm-up of each target, then `ctx.runs` rounds going through the targets in turn."""
    base = f"{os.getpid():x}{secrets.token_hex(2)}"
    if ctx.warmup > 0:
        for index, target in enumerate(targets):
            run = target.measure(ctx.warmup, f"{base}w{index}")
            target.acknowledged += run.get("events_acknowledged", 0.0)
            log(ctx, target.figure, "warm-up", run)
    for round_no in range(ctx.runs):
        for index, target in enumerate(targets):
            run = target.measure(ctx.duration, f"{base}r{round_no}t{index}")
            target.acknowledged += run.get("events_acknowledged", 0.0)
            target.figure.runs.append(run)
            log(ctx, target.figure, f"run {round_no + 1}/{ctx.runs}", run)


def log(ctx: ScenarioContext, figure: Figure, what: str, run: dict[str, float]) -> None:
    line = f"{ctx.backend:8} {figure.scenario[:34]:34} {figure.target[:26]:26} {what:8}"
    line += f" {run.get('rate', 0):10,.0f} {figure.unit}"
    if "p50_ms" in run and "p99_ms" in run:
        line += f"  p50 {run['p50_ms']:7.2f} ms  p99 {run['p99_ms']:7.2f} ms"
    if run.get("errors"):
        line += f"  ⚠ errors {run['errors']:,.0f}"
    print(line, file=sys.stderr, flush=True)


# --- the server process ---------------------------------------------------------------


def memory_mb(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS) and at its peak (VmHWM), in MB."""
    out: dict[str, float] = {}
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return out
    names = {"VmRSS:": "rss_mb", "VmHWM:": "peak_rss_mb"}
    for line in status.splitlines():
        name = names.get(line.split(":", 1)[0] + ":")
        if name is not None:
            out[name] = round(int(line.split()[1]) / 1024, 1)
    return out


class RssSampler:
    """The highest VmRSS of a process while the block runs, sampled every 0.2 s. (VmHWM is
    no use for "under load": eventyard's start-up peak is above its steady state.)"""

    def __init__(self, pid: int | None, every: float = 0.2) -> None:
        self.pid = pid
        self.every = every
        self.peak: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> RssSampler:
        if self.pid is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        assert self.pid is not None
        while True:
            now = memory_mb(self.pid).get("rss_mb")
            if now is not None and (self.peak is None or now > self.peak):
                self.peak = now
            if self._stop.wait(self.every):
                return


def cpu_set(cpus: str) -> set[int]:
    """A taskset CPU list ("1", "0,2", "2-3") as a set."""
    out: set[int] = set()
    for part in cpus.split(","):
        low, _, high = part.strip().partition("-")
        out.update(range(int(low), int(high or low) + 1))
    return out


@contextlib.contextmanager
def pinned(cpus: str) -> Iterator[None]:
    """Run this process on `cpus` (the load CPU) for a while, as wrk would be."""
    before = os.sched_getaffinity(0)
    try:
        os.sched_setaffinity(0, cpu_set(cpus))
    except OSError:
        yield
        return
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


# --- HTTP ------------------------------------------------------------------------------


class Http:
    """One keep-alive connection, with a key: for scenarios that look at each answer."""

    def __init__(self, base_url: str, key: str | None = None) -> None:
        parts = urlsplit(base_url)
        self.conn = http.client.HTTPConnection(
            parts.hostname or "127.0.0.1", parts.port, timeout=30
        )
        self.headers = {"Content-Type": "application/json"}
        if key is not None:
            self.headers["Authorization"] = f"Bearer {key}"

    def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = None if body is None else orjson.dumps(body)
        self.conn.request(method, path, body=data, headers=self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


def add_pull_consumer(base_url: str, key: str) -> str:
    """One pull consumer taking every event, so each event stored also gets a pending
    transaction — the work issue 7's single-event target includes. Nobody claims them."""
    client = Http(base_url, key)
    try:
        status, body = client.request("POST", "/v1/consumers", {"name": "bench", "kind": "pull"})
    finally:
        client.close()
    if status != 201:
        raise RuntimeError(f"creating the bench consumer answered {status}: {body[:300]!r}")
    consumer_id: str = orjson.loads(body)["id"]
    return consumer_id


# --- the database ----------------------------------------------------------------------


def sqlite_path(database_url: str) -> str:
    return database_url.removeprefix("sqlite:").removeprefix("//").removeprefix("/")


def ceiling_database_url(ctx: ScenarioContext) -> str:
    """Where a ceiling writes: its own SQLite file beside eventyard's, or — on PostgreSQL —
    eventyard's scratch database (the ceiling writes its own table)."""
    if ctx.database_url.startswith("sqlite:"):
        return f"sqlite:///{ctx.workdir}/ceiling.db"
    return ctx.database_url


def count_rows(
    database_url: str, table: str, where: str = "", params: tuple[Any, ...] = ()
) -> int | None:
    """Rows in `table` (matching `where`, with ? placeholders) — what a load left behind."""
    sql = f"SELECT COUNT(*) FROM {table}" + (f" WHERE {where}" if where else "")
    try:
        if database_url.startswith("sqlite:"):
            with contextlib.closing(sqlite3.connect(sqlite_path(database_url))) as conn:
                return int(conn.execute(sql, params).fetchone()[0])
        with psycopg.connect(database_url) as pg:
            row = pg.execute(sql.replace("?", "%s"), params).fetchone()
            return int(row[0]) if row else None
    except (sqlite3.Error, psycopg.Error):
        return None


def check_rows(
    ctx: ScenarioContext,
    target: Target,
    database_url: str,
    table: str,
    where: str = "",
    params: tuple[Any, ...] = (),
) -> None:
    """Record the rows stored beside the events acknowledged; a shortfall is a note and an
    error on the figure (an acknowledged event must be stored). Call once servers stopped."""
    rows = count_rows(database_url, table, where, params)
    figure = target.figure
    figure.extra["rows_stored"] = rows
    figure.extra["events_acknowledged"] = int(target.acknowledged)
    if rows is not None and rows < target.acknowledged:
        figure.extra["rows_missing"] = int(target.acknowledged - rows)
        ctx.notes.append(
            f"⚠ {figure.scenario} on {ctx.backend}: {figure.target} acknowledged"
            f" {int(target.acknowledged):,} events but {rows:,} rows are stored"
        )
