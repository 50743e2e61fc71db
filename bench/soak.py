"""Soak: steady ingest plus webhook delivery for minutes, watching memory and latency.

    .venv/bin/python bench/soak.py --minutes 10 [--backend sqlite] [--rate 200] [--every 10]

One `eventyard serve` (its delivery worker inside), pinned to the server CPU, with one
webhook consumer pointing at the benchmark's receiver (`receiver.py`, pinned to the load
CPU). A paced client (`scenario_delivery.pace`, in this process, pinned to the load CPU)
posts `POST /v1/events` open-loop at `--rate` events/s for the whole run, one window of
`--every` seconds after another. After each window the soak samples:

- the server's resident memory (VmRSS, and RssAnon: its heap, without file pages) and its
  open file descriptors, from /proc;
- the ingest latency of the window's requests (p50, p99, from send to 2xx) and its non-2xx
  answers;
- the deliveries that arrived at the receiver, the backlog (acknowledged, not yet
  delivered) and the delivery lag (arrival minus 2xx, p99) of the window's arrivals.

It prints a row per sample, then a verdict, after a warm-up (`--warmup-minutes`, by
default one minute, or a fifth of a shorter run) that is shown but not judged:

- **memory flat**: the median VmRSS of the last three samples is less than 10 % above
  that of the first three after the warm-up;
- **p99 steady**: the median ingest p99 of the last third of the judged samples is at most
  1.5 times that of the first third;
- **nothing lost**: no non-2xx answer, and every acknowledged event reached the receiver
  (the soak waits up to `--drain-seconds` after the load for the last ones).

The exit status is 0 when all three hold, 1 when one does not, 2 when the harness could
not run. `--output FILE` writes every sample and the verdict as JSON. The machine is
shared: the figures are this server against itself over time, so a noisy neighbour shows
as a bump in one sample rather than a trend; quote medians.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from measure import memory_mb, pinned
from scenario import ScenarioContext
from scenario_delivery import (
    ENV,
    Api,
    database,
    pace,
    start_receiver,
    take_results,
)
from servers import Server, ServerFailed, Servers

MEMORY_GROWTH_LIMIT = 0.10  # the last samples' median RSS over the first judged ones'
P99_DRIFT_LIMIT = 1.5  # the last third's median p99 over the first third's
CONNECTIONS = 16


@dataclass
class Sample:
    at_s: float  # seconds since the load began, at the end of the window
    rss_mb: float
    anon_mb: float
    fds: int
    requests: int
    errors: int  # non-2xx answers in the window
    p50_ms: float
    p99_ms: float
    delivered: int  # arrivals at the receiver during the window
    backlog: int  # acknowledged so far minus delivered so far
    lag_p99_ms: float  # delivery lag of the window's arrivals
    warmup: bool


@dataclass
class Verdict:
    memory_growth: float
    memory_flat: bool
    p99_first_ms: float
    p99_last_ms: float
    p99_steady: bool
    errors: int
    missing: int
    nothing_lost: bool
    ok: bool
    notes: list[str] = field(default_factory=list)


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))]


def process_memory(pid: int) -> tuple[float, float, int]:
    """(VmRSS MB, RssAnon MB, open file descriptors) of the server process."""
    rss = memory_mb(pid).get("rss_mb", float("nan"))
    anon = float("nan")
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("RssAnon:"):
                anon = round(int(line.split()[1]) / 1024, 1)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    return rss, anon, fds


class Deliveries:
    """Matches the receiver's arrivals to the acknowledged events, window by window."""

    def __init__(self, receiver: Server) -> None:
        self.receiver = receiver
        self.acked: dict[str, int] = {}  # event id -> when its 2xx came (ns), until it arrives
        self.acked_total = 0
        self.delivered_total = 0

    def acknowledged(self, event_ids: list[str], ack_ns: list[int]) -> None:
        self.acked.update(zip(event_ids, ack_ns, strict=True))
        self.acked_total += len(event_ids)

    def collect(self) -> tuple[int, list[float]]:
        """(arrivals since the last call, their lags in ms)."""
        results = take_results(self.receiver)
        lags: list[float] = []
        arrived = 0
        for ns, event_id in zip(results["ns"], results["event_ids"], strict=True):
            acked = self.acked.pop(event_id, None)
            if acked is None:
                continue  # a repeat (an attempt whose answer was lost): not counted twice
            arrived += 1
            lags.append(max(0.0, (ns - acked) / 1e6))
        self.delivered_total += arrived
        return arrived, lags

    @property
    def backlog(self) -> int:
        return self.acked_total - self.delivered_total


def run_window(url: str, key: str, rate: int, seconds: float) -> dict[str, Any]:
    # The standard event loop, not uvloop: `pace` times requests with loop.time(), which
    # uvloop keeps in whole milliseconds; the standard loop's is time.monotonic().
    result: dict[str, Any] = asyncio.run(pace(url, key, rate, seconds, CONNECTIONS))
    return result


def judge(samples: list[Sample], errors: int, missing: int) -> Verdict:
    judged = [s for s in samples if not s.warmup]
    notes: list[str] = []
    if len(judged) < 3:
        notes.append(f"only {len(judged)} samples after the warm-up: a longer run judges better")
        judged = samples[-3:] if len(samples) >= 3 else samples
    head = statistics.median(s.rss_mb for s in judged[:3])
    tail = statistics.median(s.rss_mb for s in judged[-3:])
    growth = tail / head - 1 if head else float("nan")
    third = max(1, len(judged) // 3)
    p99_first = statistics.median(s.p99_ms for s in judged[:third])
    p99_last = statistics.median(s.p99_ms for s in judged[-third:])
    memory_flat = growth < MEMORY_GROWTH_LIMIT
    p99_steady = p99_last <= P99_DRIFT_LIMIT * p99_first
    nothing_lost = errors == 0 and missing == 0
    return Verdict(
        memory_growth=round(growth, 4),
        memory_flat=memory_flat,
        p99_first_ms=round(p99_first, 2),
        p99_last_ms=round(p99_last, 2),
        p99_steady=p99_steady,
        errors=errors,
        missing=missing,
        nothing_lost=nothing_lost,
        ok=memory_flat and p99_steady and nothing_lost,
        notes=notes,
    )


HEADER = (
    f"{'t (s)':>7} {'RSS MB':>7} {'anon MB':>8} {'fds':>4} {'req':>6} {'err':>4} "
    f"{'p50 ms':>7} {'p99 ms':>7} {'deliv':>6} {'backlog':>7} {'lag p99':>8}"
)


def row(s: Sample) -> str:
    mark = "  (warm-up)" if s.warmup else ""
    return (
        f"{s.at_s:7.0f} {s.rss_mb:7.1f} {s.anon_mb:8.1f} {s.fds:4d} {s.requests:6d} "
        f"{s.errors:4d} {s.p50_ms:7.2f} {s.p99_ms:7.2f} {s.delivered:6d} {s.backlog:7d} "
        f"{s.lag_p99_ms:8.1f}{mark}"
    )


def verdict_lines(v: Verdict) -> list[str]:
    yes = {True: "yes", False: "NO"}
    return [
        f"memory flat:  {yes[v.memory_flat]} (RSS {v.memory_growth:+.1%} from the first judged "
        f"samples to the last; the limit is {MEMORY_GROWTH_LIMIT:+.0%})",
        f"p99 steady:   {yes[v.p99_steady]} (median ingest p99 {v.p99_first_ms:.2f} ms in the "
        f"first third, {v.p99_last_ms:.2f} ms in the last; at most {P99_DRIFT_LIMIT} times "
        "the first)",
        f"nothing lost: {yes[v.nothing_lost]} ({v.errors} non-2xx answers, {v.missing} "
        "acknowledged events not delivered)",
        *(f"note: {n}" for n in v.notes),
        f"verdict: {'PASS' if v.ok else 'FAIL'}",
    ]


def soak(
    ctx: ScenarioContext,
    *,
    minutes: float,
    rate: int,
    every: float,
    warmup_s: float,
    drain_s: float,
) -> tuple[list[Sample], Verdict]:
    server, key = ctx.servers.eventyard("eventyard-soak", ctx.database_url, extra_env=ENV)
    receiver = start_receiver(ctx)
    api = Api(server.url, key)
    try:
        api.consumer(receiver.url + "/hook")
    finally:
        api.close()
    deliveries = Deliveries(receiver)
    samples: list[Sample] = []
    errors = 0
    print(HEADER, flush=True)
    began = time.monotonic()
    with pinned(ctx.load_cpu):
        while (elapsed := time.monotonic() - began) < minutes * 60:
            window = min(every, minutes * 60 - elapsed)
            result = run_window(server.url, key, rate, window)
            deliveries.acknowledged(result["event_ids"], result["ack_ns"])
            errors += result["errors"]
            arrived, lags = deliveries.collect()
            rss, anon, fds = process_memory(server.pid)
            at = time.monotonic() - began
            sample = Sample(
                at_s=round(at, 1),
                rss_mb=rss,
                anon_mb=anon,
                fds=fds,
                requests=len(result["latency_ms"]) + result["errors"],
                errors=result["errors"],
                p50_ms=round(percentile(result["latency_ms"], 50), 2),
                p99_ms=round(percentile(result["latency_ms"], 99), 2),
                delivered=arrived,
                backlog=deliveries.backlog,
                lag_p99_ms=round(percentile(lags, 99), 1),
                warmup=at <= warmup_s,
            )
            samples.append(sample)
            print(row(sample), flush=True)
    deadline = time.monotonic() + drain_s
    while deliveries.backlog > 0 and time.monotonic() < deadline:
        time.sleep(0.5)
        deliveries.collect()
    return samples, judge(samples, errors, deliveries.backlog)


@contextmanager
def scratch(keep: bool) -> Iterator[Path]:
    workdir = Path(tempfile.mkdtemp(prefix="eventyard-soak-"))
    try:
        yield workdir
    finally:
        if keep:
            print(f"scratch directory kept: {workdir}", file=sys.stderr)
        else:
            import shutil

            shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the load runs")
    parser.add_argument("--rate", type=int, default=200, help="events/s, steady")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    parser.add_argument(
        "--warmup-minutes", type=float, help="not judged (default: 1, or a fifth of the run)"
    )
    parser.add_argument("--drain-seconds", type=float, default=30.0)
    parser.add_argument("--backend", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--load-cpu", default="1")
    parser.add_argument("--output", type=Path, help="write the samples and verdict as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = parser.parse_args(argv)
    warmup = args.warmup_minutes if args.warmup_minutes is not None else min(1.0, args.minutes / 5)
    print(
        f"soak: {args.backend}, {args.rate} events/s for {args.minutes:g} min, a sample every "
        f"{args.every:g} s, the first {warmup:g} min not judged",
        flush=True,
    )
    try:
        with (
            scratch(args.keep) as workdir,
            database(args.backend, workdir, args.postgres_url) as url,
            Servers(workdir, args.server_cpu) as servers,
        ):
            ctx = ScenarioContext(
                backend=args.backend,
                database_url=url,
                workdir=workdir,
                servers=servers,
                duration=int(args.every),
                runs=1,
                warmup=0,
                connections=CONNECTIONS,
                threads=1,
                server_cpu=args.server_cpu,
                load_cpu=args.load_cpu,
            )
            samples, verdict = soak(
                ctx,
                minutes=args.minutes,
                rate=args.rate,
                every=args.every,
                warmup_s=warmup * 60,
                drain_s=args.drain_seconds,
            )
    except (ServerFailed, OSError, RuntimeError) as exc:
        print(f"soak could not run: {exc}", file=sys.stderr)
        return 2
    for line in verdict_lines(verdict):
        print(line)
    if args.output is not None:
        args.output.write_bytes(
            orjson.dumps(
                {
                    "settings": {k: str(v) for k, v in vars(args).items()},
                    "samples": [asdict(s) for s in samples],
                    "verdict": asdict(verdict),
                },
                option=orjson.OPT_INDENT_2,
            )
        )
    return 0 if verdict.ok else 1


if __name__ == "__main__":
    sys.exit(main())
