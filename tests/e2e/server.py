"""Running eventyard as a real process on a free port, for end-to-end tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def run_cli(
    *args: str, database_url: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVENTYARD_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "eventyard", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=60,
        check=False,
    )


def init_project(database_url: str, name: str = "default") -> dict[str, Any]:
    done = run_cli("init", "--project", name, "--json", database_url=database_url)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


class ServerProcess:
    """`eventyard serve` (with `--no-worker` when `worker=False`), or with `command="worker"`
    `eventyard worker`, which listens on no port: it is ready once it says it is delivering."""

    def __init__(
        self,
        database_url: str,
        log_path: Path,
        extra_env: dict[str, str] | None = None,
        *,
        command: str = "serve",
        worker: bool = True,
    ):
        assert command in ("serve", "worker")
        self.database_url = database_url
        self.command = command
        self.worker = worker
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.extra_env = extra_env or {}
        self.proc: subprocess.Popen[bytes] | None = None

    def _args(self) -> list[str]:
        args = [sys.executable, "-m", "eventyard", self.command]
        if self.command == "serve":
            args += ["--port", str(self.port)]
            if not self.worker:
                args.append("--no-worker")
        return [*args, "--database-url", self.database_url]

    def _ready(self) -> bool:
        if self.command == "worker":
            return b"eventyard worker delivering" in self.log_path.read_bytes()
        try:
            return httpx.get(self.url + "/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def start(self, timeout: float = 20.0) -> None:
        env = {**os.environ, **self.extra_env}
        with self.log_path.open("ab") as log:  # the child keeps its own copy of the fd
            self.proc = subprocess.Popen(
                self._args(), stdout=log, stderr=subprocess.STDOUT, env=env
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log_path.read_text()}")
            if self._ready():
                return
            time.sleep(0.05)
        raise RuntimeError(f"server did not become ready:\n{self.log_path.read_text()}")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no flushing — a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
