"""`GET /v1/stats`: the numbers behind the dashboard's overview (being built)."""

from __future__ import annotations

from eventyard.api.routing import RouteTable

routes = RouteTable()
