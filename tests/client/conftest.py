"""A real eventyard server process for the Python client and the CLI to talk to.

`server` starts `eventyard serve` on a free port, on a fresh database of each backend (the
`store_url` parametrization), with one project whose admin keys are `server.live_key` and
`server.test_key`: a test may stop, kill and restart it. `shared_server` is the same shape,
but the process is shared by a module's tests (per backend), each test getting a project of
its own — starting a server costs seconds, a project a fraction of one. Webhooks to loopback
are allowed so a local receiver can take them.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from eventyard.clock import SystemClock
from eventyard.domain.models import Environment
from eventyard.services.projects import init_project as init_project_in
from eventyard.store import Store, open_store
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


_projects = itertools.count()


@pytest.fixture(scope="module")
def shared_process(
    module_store_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    process = ServerProcess(module_store_url, log_path, {"EVENTYARD_WEBHOOK_ALLOW_PRIVATE": "true"})
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="module")
def shared_store(shared_process: ServerProcess, module_store_url: str) -> Iterator[Store]:
    """The shared server's database, opened in the test process to create projects fast."""
    store = open_store(module_store_url, read_connections=1)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def shared_server(shared_process: ServerProcess, shared_store: Store) -> RunningServer:
    """A project of this test's own on the module's server. Do not stop the process."""
    name = f"project-{next(_projects)}"
    keys = asyncio.run(init_project_in(shared_store, SystemClock(), name)).keys
    return RunningServer(shared_process, keys[Environment.LIVE], keys[Environment.TEST])
