"""The web dashboard at /dashboard: server-rendered pages over the same services as the API.

Each section is a module with its own `routes` (a `Pages` table); they are gathered here.
Nothing is built at install time: templates are Jinja2 files and the script and style are
plain files under `static/`.
"""

from __future__ import annotations

from eventyard.api.routing import RouteTable
from eventyard.dashboard import consumers, events, keys, overview, session, triggers

routes = RouteTable()
for _module in (session, overview, triggers, keys, events, consumers):
    routes.extend(_module.routes)
