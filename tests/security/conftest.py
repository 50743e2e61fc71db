"""Fixtures and helpers of the security tests: real server processes and a dashboard user."""

from __future__ import annotations

from pathlib import Path

from tests.e2e.conftest import server_factory
from tests.e2e.server import ServerProcess
from tests.e2e.test_users_cli import PASSWORD, users

__all__ = ["server_factory"]
EMAIL = "ada@example.com"


def add_dashboard_user(database_url: str) -> None:
    """`eventyard users create ada@example.com` with PASSWORD, as an operator would."""
    made = users("create", EMAIL, "--password-stdin", database_url=database_url, password=PASSWORD)
    assert made.returncode == 0, made.stderr


def start_servers(
    factory: type[ServerProcess],
    database_url: str,
    logs: Path,
    count: int = 2,
    env: dict[str, str] | None = None,
) -> list[ServerProcess]:
    """`count` API servers (no worker) on one database, started."""
    servers = [factory(database_url, logs / f"s{i}.log", env, worker=False) for i in range(count)]
    for server in servers:
        server.start()
    return servers
