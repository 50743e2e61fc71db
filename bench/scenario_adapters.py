"""Adapters against the native routes: what a seed API's translation costs.

Two pairs, all four measured in turn on one eventyard (with one pull consumer):

- `POST /segment/v1/batch` with 100 `track` messages a request (Basic auth, as Segment's
  SDKs send; each message has its own `messageId`, kept as the idempotency key), against
  the native `POST /v1/events/batch` with the same 100 events (post_batch.lua), both at 10
  connections as in the batch scenario; events/s.
- `POST /eventbunker/post`, one event a request with `x-eventbunker-write-key`, against the
  native `POST /v1/events` with the same event and, since EventBunker has none, no
  idempotency key either; at `ctx.connections`, req/s.

The native route is the ceiling: an adapter should be a thin translation and cost little
beyond it. Segment answers 200 even when it drops a message, so the rows each route left
(by `source`) are counted against the events acknowledged.
"""

from __future__ import annotations

import base64

from measure import Target, add_pull_consumer, alternate, check_rows, memory_mb, wrk_target
from scenario import Figure, ScenarioContext
from servers import BENCH_DIR

BATCH = 100
BATCH_CONNECTIONS = 10
SEGMENT = "POST /segment/v1/batch, 100 events, 10 connections"
EVENTBUNKER = "POST /eventbunker/post"


def run(ctx: ScenarioContext) -> list[Figure]:
    server, key = ctx.servers.eventyard(f"eventyard-{ctx.backend}", ctx.database_url)
    add_pull_consumer(server.url, key)
    basic = "Basic " + base64.b64encode(f"{key}:".encode()).decode()
    batch_connections = min(BATCH_CONNECTIONS, ctx.connections)

    def figure(slot: str, target: str, role: str, unit: str) -> Figure:
        return Figure(slot, ctx.backend, target, role, unit)

    segment = wrk_target(
        ctx,
        figure(SEGMENT, "eventyard", "eventyard", "events/s"),
        server.url + "/segment/v1/batch",
        BENCH_DIR / "post_segment_batch.lua",
        [basic, str(BATCH)],
        per_request=BATCH,
        connections=batch_connections,
        watch_pid=server.pid,
    )
    native_batch = wrk_target(
        ctx,
        figure(SEGMENT, "native POST /v1/events/batch", "ceiling", "events/s"),
        server.url + "/v1/events/batch",
        BENCH_DIR / "post_batch.lua",
        [key, str(BATCH)],
        per_request=BATCH,
        connections=batch_connections,
    )
    eventbunker = wrk_target(
        ctx,
        figure(EVENTBUNKER, "eventyard", "eventyard", "req/s"),
        server.url + "/eventbunker/post",
        BENCH_DIR / "post_eventbunker.lua",
        [key],
        watch_pid=server.pid,
    )
    native_single = wrk_target(
        ctx,
        figure(EVENTBUNKER, "native POST /v1/events, no idempotency key", "ceiling", "req/s"),
        server.url + "/v1/events",
        BENCH_DIR / "post_event.lua",
        [key, "no-key"],
    )
    targets = [segment, native_batch, eventbunker, native_single]
    alternate(ctx, targets)
    memory = memory_mb(server.pid)
    for target in (segment, eventbunker):
        target.figure.extra.update(memory)
        target.figure.extra["consumers"] = 1
    ctx.servers.stop_all()
    check_rows(ctx, segment, ctx.database_url, "events", "source = ?", ("segment",))
    check_rows(ctx, eventbunker, ctx.database_url, "events", "source = ?", ("eventbunker",))
    # Both native routes write source "api": held to their sum, recorded on each.
    both = Target(native_batch.figure, native_batch.measure)
    both.acknowledged = native_batch.acknowledged + native_single.acknowledged
    check_rows(ctx, both, ctx.database_url, "events", "source = ?", ("api",))
    native_single.figure.extra["rows_stored"] = native_batch.figure.extra["rows_stored"]
    native_single.figure.extra["rows_stored_note"] = "with the native batch's rows"
    return [t.figure for t in targets]
