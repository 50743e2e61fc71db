"""A real server per test module and database for the property tests, and hypothesis profiles.

The property tests run through `eventyard serve` on a free port (tests/e2e/server.py), one
server per module and backend; each test works in triggers and keys of its own, so they share
it. Example counts are bounded for CI (`ci`, the default); `HYPOTHESIS_PROFILE=long` (what
bench/fuzz/run.sh sets) runs a thousand examples a property.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings

from tests.e2e.server import ServerProcess, init_project

_SHARED = {
    "deadline": None,
    "derandomize": True,
    "database": None,
    "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
}
settings.register_profile("ci", max_examples=20, **_SHARED)  # type: ignore[arg-type]
settings.register_profile("long", max_examples=1000, **_SHARED)  # type: ignore[arg-type]
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@dataclass
class Live:
    """A running server, its project's all-scope test key, and a client using it."""

    url: str
    key: str
    http: httpx.Client
    _names: Iterator[int] = field(default_factory=itertools.count)

    def unique(self, prefix: str) -> str:
        return f"{prefix}{next(self._names)}"

    def ok(self, response: httpx.Response) -> Any:
        assert response.is_success, (
            f"{response.request.url}: {response.status_code} {response.text}"
        )
        return response.json()

    def events(self, trigger: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = self.ok(
            self.http.get("/v1/events", params={"trigger": trigger, "limit": 1000})
        )["data"]
        return found


@pytest.fixture(scope="module")
def live(module_store_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    key = init_project(module_store_url, "fuzz")["keys"]["test"]
    log = tmp_path_factory.mktemp("fuzz-server") / "serve.log"
    server = ServerProcess(module_store_url, log, worker=False)
    server.start()
    headers = {"Authorization": f"Bearer {key}"}
    try:
        with httpx.Client(base_url=server.url, headers=headers, timeout=20) as http:
            yield Live(url=server.url, key=key, http=http)
    finally:
        server.stop()
    text = Path(log).read_text(errors="replace")
    assert "Traceback" not in text, text[-6000:]
