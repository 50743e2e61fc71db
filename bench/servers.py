"""The processes a benchmark runs against, started on loopback and always stopped.

Each server is a `Server`: a child process in its own session, pinned to a core with
taskset, its output in a log file, ready once an HTTP GET answers. `Servers` is a stack
that stops every server it started, newest first, however the benchmark ends. Scratch
PostgreSQL databases are made and dropped here too.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psycopg

BENCH_DIR = Path(__file__).resolve().parent
HOST = "127.0.0.1"


class ServerFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    name: str
    command: list[str]
    port: int
    log: Path
    ready_path: str = "/"
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 30.0) -> None:
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=self.env,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServerFailed(
                    f"{self.name} exited with {self.proc.returncode}:\n{self.tail()}"
                )
            try:
                with urllib.request.urlopen(self.url + self.ready_path, timeout=1) as response:
                    if response.status < 500:
                        return
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise ServerFailed(f"{self.name} did not answer within {timeout:.0f}s:\n{self.tail()}")

    def stop(self, timeout: float = 15.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        # The child leads its own session: signal that group, which is this server alone.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(5)

    def rss_mb(self) -> float | None:
        """Resident memory of the server process, in MB, read from /proc."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return None
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@dataclass
class Servers:
    """Starts servers and stops them all, newest first, on exit."""

    workdir: Path
    cpu: str
    env: dict[str, str] | None = None  # for eventyard's processes (a PYTHONPATH for --ref)
    started: list[Server] = field(default_factory=list)

    def __enter__(self) -> Servers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()

    def stop_all(self) -> None:
        while self.started:
            server = self.started.pop()
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                print(f"warning: could not stop {server.name}: {exc}", file=sys.stderr)

    def start(
        self,
        name: str,
        command: list[str],
        port: int,
        ready_path: str = "/",
        env: dict[str, str] | None = None,
    ) -> Server:
        pinned = ["taskset", "-c", self.cpu, *command]
        log = self.workdir / f"{name.replace(' ', '-')}.log"
        server = Server(name, pinned, port, log, ready_path, env)
        self.started.append(server)
        server.start()
        return server

    def eventyard(
        self,
        name: str,
        database_url: str,
        *,
        extra_args: list[str] | None = None,
        extra_env: dict[str, str] | None = None,
        key: str | None = None,
    ) -> tuple[Server, str]:
        """Create a project (unless given its `key`), then serve; returns the server and a
        live key. `extra_args` go after `serve`'s own; `extra_env` (EVENTYARD_* settings)
        is added to the environment."""
        if key is None:
            key = eventyard_init(database_url, self.env)
        port = free_port()
        command = [
            sys.executable,
            "-m",
            "eventyard",
            "serve",
            "--host",
            HOST,
            "--port",
            str(port),
            "--database-url",
            database_url,
            *(extra_args or []),
        ]
        env = self.env
        if extra_env:
            env = {**(self.env if self.env is not None else os.environ), **extra_env}
        return self.start(name, command, port, ready_path="/healthz", env=env), key

    def ceiling_app(self, name: str, database_url: str) -> Server:
        port = free_port()
        script = str(BENCH_DIR / "ceiling_app.py")
        command = [sys.executable, script, "--port", str(port), "--database-url", database_url]
        return self.start(name, command, port)

    def nginx(self, name: str, nginx: str) -> Server:
        port = free_port()
        prefix = self.workdir / "nginx"
        prefix.mkdir(exist_ok=True)
        conf = prefix / "nginx.conf"
        conf.write_text(nginx_conf(prefix, port))
        command = [nginx, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log")]
        return self.start(name, command, port)


def nginx_conf(prefix: Path, port: int) -> str:
    """One worker answering every request, POSTs included, with a static 200."""
    return f"""daemon off;
master_process off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 1000000;
    server {{
        listen {HOST}:{port};
        location / {{
            default_type application/json;
            return 200 '{{"ok":true}}';
        }}
    }}
}}
"""


def eventyard_init(database_url: str, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "eventyard", "init", "--json", "--database-url", database_url],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if proc.returncode != 0:
        raise ServerFailed(f"eventyard init failed:\n{proc.stdout}\n{proc.stderr}")
    out: dict[str, Any] = orjson.loads(proc.stdout)
    key: str = out["keys"]["live"]
    return key


def postgres_available(admin_url: str) -> str | None:
    """None when PostgreSQL answers at `admin_url`, else why not."""
    try:
        with psycopg.connect(admin_url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip()
    return None


@contextlib.contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one benchmark; dropped afterwards."""
    name = f"eventyard_bench_{os.getpid()}_{secrets.token_hex(3)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        base, _, _ = admin_url.rpartition("/")
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def source_at(ref: str, workdir: Path) -> tuple[dict[str, str], str]:
    """Extract eventyard's src/ at a git ref; (environment that imports it, full commit)."""
    repo = BENCH_DIR.parent
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--verify", f"{ref}^{{commit}}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    target = workdir / "source"
    target.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(repo), "archive", commit, "src"], capture_output=True, check=True
    )
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive.stdout, check=True)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(target / "src"), env.get("PYTHONPATH", "")) if p
    )
    return env, commit


def count_rows(database_url: str, table: str) -> int | None:
    """How many rows a benchmark left in `table` (a sanity check on what was stored)."""
    import sqlite3

    try:
        if database_url.startswith("sqlite:"):
            path = database_url.removeprefix("sqlite:").removeprefix("//").removeprefix("/")
            with contextlib.closing(sqlite3.connect(path)) as conn:
                return int(conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
        with psycopg.connect(database_url) as conn:
            row = conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
            return int(row[0]) if row else None
    except (sqlite3.Error, psycopg.Error):
        return None
