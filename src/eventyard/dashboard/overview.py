"""The overview: events per minute by trigger, delivery health, the pending backlog.

The numbers are the ones `GET /v1/stats` answers (`services/stats.py`), read for the hour
and for the day; `charts.py` turns them into geometry that the template draws as inline SVG,
so the page needs no script and every chart has its numbers in a table beside it.
"""

from __future__ import annotations

from eventyard.api.context import Context
from eventyard.api.http import Request, Response
from eventyard.dashboard.charts import consumer_rows, events_chart, pick_series
from eventyard.dashboard.web import Pages, origin_of, render
from eventyard.services.stats import Window, read_stats

routes = Pages()


@routes.page("GET", "/p/{project}/{env}/", summary="A project's overview")
async def overview(req: Request, ctx: Context) -> Response:
    services, principal = ctx.services, ctx.principal
    hour = await read_stats(services.store, services.clock, principal, Window.HOUR)
    day = await read_stats(services.store, services.clock, principal, Window.DAY)
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
        origin=origin_of(req),
    )
