"""`GET /v1/events/stream`: new events as server-sent events (being built)."""

from __future__ import annotations

from eventyard.api.routing import RouteTable

routes = RouteTable()
