"""The dashboard's keys pages (being built)."""

from __future__ import annotations

from eventyard.dashboard.web import Pages

routes = Pages()
