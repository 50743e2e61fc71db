"""`GET /v1/stats`: events per trigger over time and delivery health, for the key's project
and environment — the numbers the dashboard's overview draws (`services/stats.py`)."""

from __future__ import annotations

from typing import Any

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, json_response
from eventyard.api.routing import RouteTable
from eventyard.api.schemas import AUTH_ERRORS, json_body, problem, ref
from eventyard.clock import format_us
from eventyard.domain.models import Scope
from eventyard.services.stats import ConsumerStats, Stats, Window, parse_window, read_stats
from eventyard.views import consumer_ref, time_or_none

routes = RouteTable()

_DESCRIPTION = (
    "Events are counted by event time (`timestamp`) in buckets aligned to the clock: "
    "`window=hour` is 60 one-minute buckets, `window=day` 96 fifteen-minute buckets; the "
    "last bucket is the one still filling. `counts` are exact events per bucket; "
    "`events_per_minute` is each count divided by the bucket's minutes (for `day`, an "
    "average over 15 minutes). Expired events are not counted.\n\n"
    "Delivery numbers cover the environment's consumers over the window's length back from "
    "now. `failing_deliveries` counts transactions, each once, that in the window had a "
    "webhook attempt not answered 2xx (timeouts and connection errors included) or were set "
    "to `failed` (retries exhausted, or a pull consumer reported failure). `pending_backlog` "
    "counts transactions not yet finished or failed, as of now, whatever their age."
)


def _rates(counts: list[int] | tuple[int, ...], minutes: int) -> list[float]:
    return [round(n / minutes, 2) for n in counts]


def _consumer_json(c: ConsumerStats, now: int) -> dict[str, Any]:
    h = c.health
    rate = h.success_rate
    oldest = h.oldest_pending_at
    return {
        **consumer_ref(c.consumer),
        "pending": h.pending,
        "oldest_pending_at": time_or_none(oldest),
        "oldest_pending_age_seconds": None if oldest is None else max(0, now - oldest) // 10**6,
        "attempts": h.attempts,
        "failures": c.failures,
        "failing_deliveries": c.failing_deliveries,
        "success_rate": None if rate is None else round(rate, 4),
    }


def stats_json(stats: Stats) -> dict[str, Any]:
    minutes = stats.bucket_minutes
    buckets = stats.buckets
    totals = stats.totals
    return {
        "window": stats.window.value,
        "bucket_seconds": stats.bucket_seconds,
        "start": format_us(buckets[0]),
        "end": format_us(buckets[-1] + stats.bucket_seconds * 10**6),
        "generated_at": format_us(stats.now),
        "buckets": [format_us(b) for b in buckets],
        "triggers": [
            {
                "trigger": s.trigger,
                "name": s.name,
                "counts": list(s.counts),
                "events_per_minute": _rates(s.counts, minutes),
                "total": s.total,
            }
            for s in stats.triggers
        ],
        "totals": {
            "counts": totals,
            "events_per_minute": _rates(totals, minutes),
            "total": stats.total,
        },
        "pending_backlog": stats.pending_backlog,
        "oldest_pending_at": time_or_none(stats.oldest_pending_at),
        "failing_deliveries": stats.failing_deliveries,
        "consumers": [_consumer_json(c, stats.now) for c in stats.consumers],
    }


@routes.add(
    "GET",
    "/v1/stats",
    scope=Scope.READ,
    summary="Events per trigger over the last hour or day, and delivery health per consumer",
    tags=("stats",),
    query=(
        {
            "name": "window",
            "in": "query",
            "schema": {"type": "string", "enum": [w.value for w in Window], "default": "hour"},
            "description": "hour: 60 one-minute buckets; day: 96 fifteen-minute buckets",
        },
    ),
    responses={
        200: json_body(_DESCRIPTION, ref("Stats")),
        400: problem("An unknown window, or an unknown query parameter."),
        **AUTH_ERRORS,
    },
)
async def get_stats(req: Request, ctx: Context) -> Response:
    params = req.query_params({"window"})
    window = parse_window(params.get("window"))
    stats = await read_stats(ctx.services.store, ctx.services.clock, ctx.principal, window)
    return json_response(stats_json(stats))
