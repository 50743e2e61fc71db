"""The overview: events per minute by trigger, failing deliveries and the pending backlog."""

from __future__ import annotations

from eventyard.api.context import Context
from eventyard.api.http import Request, Response
from eventyard.dashboard.web import Pages, render

routes = Pages()


@routes.page("GET", "/p/{project}/{env}/", summary="A project's overview")
async def overview(req: Request, ctx: Context) -> Response:
    return await render(req, ctx, "overview.html", section="")
