"""The overview: events per minute by trigger, delivery health, the pending backlog, and
delivery lag now (the numbers of `GET /v1/status`).

The numbers are the ones `GET /v1/stats` answers (`services/stats.py`), read for the hour
and for the day; `charts.py` turns them into geometry that the template draws as inline SVG,
so the page needs no script and every chart has its numbers in a table beside it.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventyard.api.context import Context
from eventyard.api.http import Request, Response
from eventyard.dashboard.charts import consumer_rows, events_chart, pick_series
from eventyard.dashboard.web import Pages, origin_of, render
from eventyard.services.stats import Window, read_stats
from eventyard.services.status import Status, read_status
from eventyard.store.status import OldestOpen

routes = Pages()


@dataclass(frozen=True)
class LagRow:
    """One consumer's line of the "Delivery lag, now" table, its durations as text."""

    name: str
    pending: int
    in_flight: int
    waiting: str
    p50: str
    p99: str
    oldest: OldestOpen | None


def duration_label(us: int) -> str:
    """`0 ms`, `850 ms`, `3.2 s`, `4 min`, `2.5 h`: short, and exact enough to act on."""
    ms = us / 1000
    if ms < 1000:
        return f"{ms:.0f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.1f} s"
    if ms < 3_600_000:
        return f"{ms / 60_000:.0f} min"
    return f"{ms / 3_600_000:.1f} h"


def lag_rows(status: Status) -> list[LagRow]:
    rows = []
    for c in status.consumers:
        lag = c.first_attempt_lag
        rows.append(
            LagRow(
                c.consumer.name,
                c.pending,
                c.in_flight,
                duration_label(c.due_lag_us),
                "none" if lag is None else duration_label(lag.p50_us),
                "none" if lag is None else duration_label(lag.p99_us),
                c.oldest,
            )
        )
    return rows


@routes.page("GET", "/p/{project}/{env}/", summary="A project's overview")
async def overview(req: Request, ctx: Context) -> Response:
    services, principal = ctx.services, ctx.principal
    hour = await read_stats(services.store, services.clock, principal, Window.HOUR)
    day = await read_stats(services.store, services.clock, principal, Window.DAY)
    status = await read_status(services.store, services.clock, principal)
    colours = pick_series([(s.trigger, s.name) for s in day.triggers])
    return await render(
        req,
        ctx,
        "overview.html",
        section="",
        hour=hour,
        day=day,
        hour_chart=events_chart(hour, colours, "chart-hour"),
        day_chart=events_chart(day, colours, "chart-day"),
        consumers=consumer_rows(hour),
        delivery=status,
        lag_rows=lag_rows(status),
        origin=origin_of(req),
    )
