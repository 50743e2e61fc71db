"""eventyard: a self-hosted event trigger and tracking server."""

from __future__ import annotations

__version__ = "0.1.0"
