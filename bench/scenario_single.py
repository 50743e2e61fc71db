"""Single-event ingest: `POST /v1/events`, one event a request, at `ctx.connections`.

Three servers, measured in turn: eventyard (with one pull consumer, so each event also gets
a pending transaction, as issue 7's target says: auth, validation, idempotency,
transactions for one consumer), the ceiling app (bench/ceiling_app.py: parse the same JSON,
group-commit it to the same database) and, when installed, nginx answering a static 200 —
the HTTP ceiling of this machine with this load generator. Every request posts
`{"trigger":"bench","user_id":"u<n % 1000>","payload":{...},"idempotency_key":<fresh>}`
(bench/post_event.lua). eventyard's resident memory after the load goes into the figure.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from measure import (
    add_pull_consumer,
    alternate,
    ceiling_database_url,
    check_rows,
    memory_mb,
    wrk_target,
)
from scenario import Figure, ScenarioContext
from servers import BENCH_DIR

SCENARIO = "POST /v1/events"
NGINX_HINT = "apt-get update && apt-get install -y nginx"


def nginx_path() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None
    )


def run(ctx: ScenarioContext) -> list[Figure]:
    script = BENCH_DIR / "post_event.lua"
    server, key = ctx.servers.eventyard(f"eventyard-{ctx.backend}", ctx.database_url)
    add_pull_consumer(server.url, key)
    ceiling_url = ceiling_database_url(ctx)
    ceiling_server = ctx.servers.ceiling_app(f"ceiling-{ctx.backend}", ceiling_url)

    def figure(target: str, role: str, backend: str = ctx.backend) -> Figure:
        return Figure(SCENARIO, backend, target, role, "req/s")

    ev = wrk_target(
        ctx,
        figure("eventyard", "eventyard"),
        server.url + "/v1/events",
        script,
        [key],
        watch_pid=server.pid,
    )
    ceiling = wrk_target(
        ctx, figure("ceiling app", "ceiling"), ceiling_server.url + "/v1/events", script, ["-"]
    )
    targets = [ev, ceiling]
    nginx = nginx_path()
    if nginx is None:
        ctx.notes.append(f"nginx is not installed, so there is no HTTP ceiling ({NGINX_HINT})")
    else:
        nginx_server = ctx.servers.nginx("nginx", nginx)
        targets.append(
            wrk_target(
                ctx,
                figure("nginx static 200", "ceiling", "-"),
                nginx_server.url + "/v1/events",
                script,
                ["-", "nginx"],
            )
        )
    alternate(ctx, targets)
    ev.figure.extra.update(memory_mb(server.pid))
    ev.figure.extra["consumers"] = 1
    ceiling.figure.extra.update(memory_mb(ceiling_server.pid))
    # Counted once the servers stopped, so every acknowledged row is in.
    ctx.servers.stop_all()
    check_rows(ctx, ev, ctx.database_url, "events")
    check_rows(ctx, ceiling, ceiling_url, "ceiling_events")
    return [t.figure for t in targets]
