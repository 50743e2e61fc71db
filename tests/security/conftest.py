"""Fixtures of the security tests: real server processes, as the end-to-end tests use."""

from __future__ import annotations

from tests.e2e.conftest import server_factory

__all__ = ["server_factory"]
