"""Ack-to-queryable: is an event readable the moment its 2xx arrives?

One client (this process, pinned to the load CPU, one keep-alive connection) sends events
one at a time with `POST /v1/events`, and as soon as it has read a 201 it reads the event
back once — by id (`GET /v1/events/{id}`) for even-numbered events, through the list with a
filter (`GET /v1/events?user_id=<the event's own user>&limit=1`) for odd ones. An event is
*visible at the first read* when that read returns it. The time from 2xx to visible is
measured on the client from the moment the 201 was read to the moment the read that showed
the event was read: for an event visible at once, that is the read's own round trip, which
is the floor (the target is zero lag: nothing but the read). An event not visible at once is
read again until it shows (up to 2 s), and that longer time goes into the same p50/p99.

Two figures, measured in turn: the client alone, and the client beside wrk hammering
`POST /v1/events` at `ctx.connections` (post_event.lua), where group commits are large and
a read could race a commit. The figure's rate is events checked per second.
"""

from __future__ import annotations

import statistics
import time
from typing import Any
from urllib.parse import quote

import orjson
from measure import Http, Target, add_pull_consumer, alternate, memory_mb, pinned
from scenario import Figure, ScenarioContext
from servers import BENCH_DIR, Server
from wrkload import finish_wrk, start_wrk

ALONE = "ack-to-queryable, one client"
LOADED = "ack-to-queryable, beside POST /v1/events at 50 connections"
MAX_EVENTS = 20_000  # a run's cap, should the server be very fast
RETRY_FOR_S = 2.0
ALONE_MAX_S = 3  # alone, a few seconds give thousands of reads
RAMP_S = 0.3  # let wrk reach full load before the probe starts


def run(ctx: ScenarioContext) -> list[Figure]:
    server, key = ctx.servers.eventyard(f"eventyard-{ctx.backend}", ctx.database_url)
    add_pull_consumer(server.url, key)
    loaded_slot = LOADED.replace("50", str(ctx.connections))

    def alone(seconds: int, tag: str) -> dict[str, float]:
        with pinned(ctx.load_cpu):
            return probe(server, key, min(seconds, ALONE_MAX_S), tag)

    def beside_load(seconds: int, tag: str) -> dict[str, float]:
        load = start_wrk(
            server.url + "/v1/events",
            script=BENCH_DIR / "post_event.lua",
            script_args=[key, f"{tag}bg"],
            seconds=seconds,
            connections=ctx.connections,
            threads=ctx.threads,
            cpu=ctx.load_cpu,
        )
        try:
            time.sleep(RAMP_S)
            with pinned(ctx.load_cpu):
                run = probe(server, key, max(0.5, seconds - 2 * RAMP_S), tag)
        finally:
            background = finish_wrk(load, seconds + 70)
        run["background_req_s"] = background.requests_per_s
        run["errors"] += background.errors
        return run

    targets = [
        Target(Figure(ALONE, ctx.backend, "eventyard", "eventyard", "events/s"), alone),
        Target(Figure(loaded_slot, ctx.backend, "eventyard", "eventyard", "events/s"), beside_load),
    ]
    for target in targets:
        target.figure.extra["measured_as"] = (
            "client-side: from reading the 201 to reading the answer that shows the event"
        )
    alternate(ctx, targets)
    targets[1].figure.extra.update(memory_mb(server.pid))
    not_visible = sum(r.get("late_events", 0.0) for t in targets for r in t.figure.runs)
    if not_visible:
        ctx.notes.append(
            f"⚠ {int(not_visible)} events were not readable at the first read after their 2xx"
        )
    return [t.figure for t in targets]


def probe(server: Server, key: str, seconds: float, tag: str) -> dict[str, float]:
    """Send, read back at once, repeat for `seconds`; one run's figures."""
    client = Http(server.url, key)
    lags: list[float] = []
    posts: list[float] = []
    seen = {"by_id": [0, 0], "in_list": [0, 0]}  # [visible at first read, reads]
    errors = late = 0
    started = time.perf_counter()
    deadline = started + seconds
    count = 0
    try:
        while time.perf_counter() < deadline and count < MAX_EVENTS:
            count += 1
            user = f"ack-{tag}-{count}"
            body = {
                "trigger": "ack",
                "user_id": user,
                "payload": {"n": count},
                "idempotency_key": user,
            }
            sent = time.perf_counter()
            status, answer = client.request("POST", "/v1/events", body)
            acked = time.perf_counter()
            if status != 201:
                errors += 1
                continue
            posts.append(acked - sent)
            event_id = orjson.loads(answer)["id"]
            kind = "by_id" if count % 2 == 0 else "in_list"
            visible = read_back(client, kind, event_id, user)
            seen[kind][1] += 1
            if visible:
                seen[kind][0] += 1
            else:
                late += 1
                until = time.perf_counter() + RETRY_FOR_S
                while not visible and time.perf_counter() < until:
                    visible = read_back(client, kind, event_id, user)
                if not visible:
                    errors += 1
                    continue
            lags.append(time.perf_counter() - acked)
        elapsed = time.perf_counter() - started
    finally:
        client.close()
    lags.sort()
    run: dict[str, float] = {
        "rate": (seen["by_id"][1] + seen["in_list"][1]) / elapsed,
        "p50_ms": _percentile(lags, 0.50) * 1000,
        "p99_ms": _percentile(lags, 0.99) * 1000,
        "max_ms": (lags[-1] if lags else 0.0) * 1000,
        "post_p50_ms": (statistics.median(posts) if posts else 0.0) * 1000,
        "errors": float(errors),
        "late_events": float(late),
        "events": float(len(lags)),
    }
    for kind, (visible, reads) in seen.items():
        run[f"visible_{kind}_fraction"] = visible / reads if reads else 0.0
    return run


def read_back(client: Http, kind: str, event_id: str, user: str) -> bool:
    if kind == "by_id":
        status, _ = client.request("GET", f"/v1/events/{event_id}")
        return status == 200
    status, answer = client.request("GET", f"/v1/events?user_id={quote(user)}&limit=1")
    if status != 200:
        return False
    page: dict[str, Any] = orjson.loads(answer)
    return any(e.get("id") == event_id for e in page.get("data", []))


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(len(values) * q))]
