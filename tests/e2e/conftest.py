from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.server import ServerProcess


@pytest.fixture
def db_url(store_url: str) -> str:
    """A fresh database for a server process: SQLite or PostgreSQL (see tests/conftest.py)."""
    return store_url


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[type[ServerProcess]]:
    started: list[ServerProcess] = []

    class Tracked(ServerProcess):
        def start(self, timeout: float = 20.0) -> None:
            started.append(self)
            super().start(timeout)

    yield Tracked
    for server in started:
        server.stop()
