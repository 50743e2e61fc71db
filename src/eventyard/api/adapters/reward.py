"""The `/reward` adapter (not built yet)."""

from __future__ import annotations

from eventyard.api.routing import RouteTable

routes = RouteTable()
