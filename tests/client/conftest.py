"""A real eventyard server process for the Python client and the CLI to talk to.

`server` starts `eventyard serve` on a free port, on a fresh database of each backend (the
`store_url` parametrization), with one project whose admin keys are `server.live_key` and
`server.test_key`. Webhooks to loopback are allowed so a local receiver can take them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.server import ServerProcess, init_project


@dataclass
class RunningServer:
    process: ServerProcess
    live_key: str
    test_key: str

    @property
    def url(self) -> str:
        return self.process.url


def start_server(database_url: str, log_path: Path, **env: str) -> RunningServer:
    keys = init_project(database_url)["keys"]
    process = ServerProcess(
        database_url,
        log_path,
        {"EVENTYARD_WEBHOOK_ALLOW_PRIVATE": "true", **env},
    )
    process.start()
    return RunningServer(process, keys["live"], keys["test"])


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[RunningServer]:
    running = start_server(store_url, tmp_path / "server.log")
    try:
        yield running
    finally:
        running.process.stop()
