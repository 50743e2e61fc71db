"""The eventyard benchmark: one command, everything on loopback, ceilings in the same run.

    .venv/bin/python bench/run.py [--duration 10] [--runs 3] [--backends sqlite,postgres]
                                  [--ref HEAD]

For each database it creates a fresh store (a SQLite file in a temporary directory, a
scratch PostgreSQL database dropped afterwards), runs `eventyard init --json` for a key,
starts `eventyard serve` and the ceiling app (bench/ceiling_app.py) pinned to one core, and
drives each with wrk pinned to another: a warm-up, then `--runs` loads, alternating between
the servers so that drift on the machine hits both alike. nginx answering a static 200 gives
the HTTP ceiling when it is installed. It prints a Markdown table of medians with each
eventyard figure as a percentage of the ceilings, and writes bench/results/latest.json and
bench/results/latest.md. Runs with non-2xx answers or socket errors are flagged, and the
exit status is 1 when there were any.

By default it benchmarks the eventyard that `python -m eventyard` imports (the working tree,
in an editable install); `--ref REV` benchmarks that commit instead, extracted with
`git archive`, so uncommitted work in progress cannot skew a published figure.

It installs nothing: when wrk is missing it says how to install it and stops.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
from report import Measurement, markdown_report, markdown_table, ratios
from servers import (
    BENCH_DIR,
    Server,
    ServerFailed,
    Servers,
    count_rows,
    postgres_available,
    scratch_database,
    source_at,
)
from wrkload import WrkMissing, WrkOutputError, run_wrk, wrk_path, wrk_version

RESULTS_DIR = BENCH_DIR / "results"
SINGLE_EVENT = "POST /v1/events"
NGINX_HINT = "apt-get update && apt-get install -y nginx"


@dataclass
class Target:
    """A server under load in a scenario, with what its wrk script needs."""

    measurement: Measurement
    server: Server
    path: str
    script: Path
    script_args: list[str]


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        wrk_path()
    except WrkMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    if shutil.which("taskset") is None:
        print("taskset is missing (package util-linux)", file=sys.stderr)
        return 2
    notes: list[str] = []
    if (os.cpu_count() or 1) < 2:
        notes.append("only one CPU: server and wrk share it, so the figures are low")
    measurements: list[Measurement] = []
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="eventyard-bench-") as tmp:
        workdir = Path(tmp)
        env, source = None, working_tree_source()
        try:
            if args.ref:
                env, commit = source_at(args.ref, workdir)
                source = f"commit {commit[:12]} (--ref {args.ref})"
            measurements += bench_nginx(args, workdir, notes)
            for backend in args.backends:
                measurements += bench_backend(backend, args, workdir, notes, env)
        except (ServerFailed, WrkOutputError, subprocess.CalledProcessError) as exc:
            print(f"benchmark failed: {exc}", file=sys.stderr)
            return 2
    header = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command_line(argv),
        "eventyard_source": source,
        "machine": {
            **machine_info(args),
            "loadavg_before": load_before,
            "loadavg_after": round(os.getloadavg()[0], 2),
        },
        "settings": {
            "duration_s": args.duration,
            "runs": args.runs,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "threads": args.threads,
            "server_cpu": args.server_cpu,
            "load_cpu": args.load_cpu,
        },
    }
    flagged = [m for m in measurements if m.errors]
    for m in flagged:
        notes.append(
            f"⚠ {m.target} on {m.backend}: {m.non_2xx} non-2xx responses and"
            f" {m.errors - m.non_2xx} socket errors over {len(m.runs)} runs — its rate is suspect"
        )
    write_results(measurements, header, notes)
    print()
    print(markdown_table(measurements))
    for note in notes:
        print(f"- {note}")
    print(f"\nwritten: {RESULTS_DIR / 'latest.md'} and {RESULTS_DIR / 'latest.json'}")
    return 1 if flagged else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark eventyard's ingest against ceilings measured in the same run."
    )
    parser.add_argument("--duration", type=int, default=10, help="seconds per run (10)")
    parser.add_argument("--runs", type=int, default=3, help="measured runs per server (3)")
    parser.add_argument("--warmup", type=int, default=3, help="warm-up seconds per server (3)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--backends",
        default="sqlite,postgres",
        type=lambda s: [b.strip() for b in s.split(",") if b.strip()],
        help="comma-separated: sqlite, postgres (both)",
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "EVENTYARD_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="an admin connection used to create and drop the scratch database",
    )
    parser.add_argument("--server-cpu", default="0", help="taskset CPU list for servers (0)")
    parser.add_argument("--load-cpu", default="1", help="taskset CPU list for wrk (1)")
    parser.add_argument("--no-nginx", action="store_true", help="skip the nginx ceiling")
    parser.add_argument(
        "--ref", default=None, help="benchmark this git commit instead of the working tree"
    )
    args = parser.parse_args(argv)
    unknown = set(args.backends) - {"sqlite", "postgres"}
    if unknown:
        parser.error(f"unknown backend(s): {', '.join(sorted(unknown))}")
    if args.runs < 1 or args.duration < 1:
        parser.error("--runs and --duration must be at least 1")
    return args


def bench_nginx(args: argparse.Namespace, workdir: Path, notes: list[str]) -> list[Measurement]:
    if args.no_nginx:
        return []
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None
    )
    if nginx is None:
        notes.append(f"nginx is not installed, so there is no HTTP ceiling; install: {NGINX_HINT}")
        return []
    with Servers(workdir, args.server_cpu) as servers:
        server = servers.nginx("nginx", nginx)
        target = Target(
            Measurement(SINGLE_EVENT, "-", "nginx static 200", "ceiling"),
            server,
            "/v1/events",
            BENCH_DIR / "post_event.lua",
            ["-", "nginx"],
        )
        measure([target], args, "-")
    return [target.measurement]


def bench_backend(
    backend: str,
    args: argparse.Namespace,
    workdir: Path,
    notes: list[str],
    env: dict[str, str] | None,
) -> list[Measurement]:
    with database_urls(backend, args, workdir, notes) as urls:
        if urls is None:
            return []
        eventyard_url, ceiling_url = urls
        with Servers(workdir, args.server_cpu, env) as servers:
            ev_server, key = servers.eventyard(f"eventyard-{backend}", eventyard_url)
            ceiling_server = servers.ceiling_app(f"ceiling-{backend}", ceiling_url)
            script = BENCH_DIR / "post_event.lua"
            ev = Target(
                Measurement(SINGLE_EVENT, backend, "eventyard", "eventyard"),
                ev_server,
                "/v1/events",
                script,
                [key],
            )
            ceiling = Target(
                Measurement(SINGLE_EVENT, backend, "ceiling app", "ceiling"),
                ceiling_server,
                "/v1/events",
                script,
                ["-"],
            )
            measure([ev, ceiling], args, backend)
            ev.measurement.extra["server_rss_mb"] = _round(ev_server.rss_mb())
            ceiling.measurement.extra["server_rss_mb"] = _round(ceiling_server.rss_mb())
        # Counted after the servers stopped, so every acknowledged row is in.
        ev.measurement.extra["rows_stored"] = count_rows(eventyard_url, "events")
        ceiling.measurement.extra["rows_stored"] = count_rows(ceiling_url, "ceiling_events")
    return [ev.measurement, ceiling.measurement]


@contextmanager
def database_urls(
    backend: str, args: argparse.Namespace, workdir: Path, notes: list[str]
) -> Iterator[tuple[str, str] | None]:
    """(eventyard's database URL, the ceiling app's) — fresh, and removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{workdir}/eventyard.db", f"sqlite:///{workdir}/ceiling.db"
        return
    problem = postgres_available(args.postgres_url)
    if problem is not None:
        notes.append(f"PostgreSQL skipped: it does not answer at {args.postgres_url} ({problem})")
        yield None
        return
    # One scratch database for both: the ceiling app writes its own table.
    with scratch_database(args.postgres_url) as url:
        yield url, url


def measure(targets: list[Target], args: argparse.Namespace, backend: str) -> None:
    """Warm each target up, then alternate measured runs between them."""
    tag = f"{os.getpid():x}"
    for target in targets:
        _log(backend, target, "warm-up", None)
        load(target, args, args.warmup, f"{tag}w")
    for run in range(args.runs):
        for target in targets:
            result = load(target, args, args.duration, f"{tag}r{run}")
            target.measurement.runs.append(result)
            _log(backend, target, f"run {run + 1}/{args.runs}", result)


def load(target: Target, args: argparse.Namespace, seconds: int, tag: str) -> Any:
    return run_wrk(
        target.server.url + target.path,
        script=target.script,
        script_args=[*target.script_args, tag],
        seconds=seconds,
        connections=args.connections,
        threads=args.threads,
        cpu=args.load_cpu,
    )


def _log(backend: str, target: Target, what: str, result: Any) -> None:
    line = f"{backend:8} {target.measurement.target:18} {what:9}"
    if result is not None:
        line += (
            f" {result.requests_per_s:9,.0f} req/s  p50 {result.p50_ms:6.2f} ms"
            f"  p99 {result.p99_ms:6.2f} ms"
        )
        if result.errors:
            line += f"  ⚠ non-2xx {result.non_2xx}, socket errors {result.socket_errors}"
    print(line, file=sys.stderr, flush=True)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def write_results(
    measurements: list[Measurement], header: dict[str, Any], notes: list[str]
) -> None:
    RESULTS_DIR.mkdir(exist_ok=True)
    document = {
        **header,
        "measurements": [m.to_json() for m in measurements],
        "ratios": ratios(measurements),
        "notes": notes,
    }
    (RESULTS_DIR / "latest.json").write_bytes(
        orjson.dumps(document, option=orjson.OPT_INDENT_2) + b"\n"
    )
    (RESULTS_DIR / "latest.md").write_text(markdown_report(measurements, header, notes))


def command_line(argv: list[str] | None) -> str:
    given = sys.argv[1:] if argv is None else argv
    return shlex.join(["python", "bench/run.py", *given])


def machine_info(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "nproc": os.cpu_count(),
        "cpu_model": cpu_model(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "wrk": wrk_version(),
        "nginx": _nginx_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgres": _postgres_version(args.postgres_url) if "postgres" in args.backends else None,
    }


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _nginx_version() -> str | None:
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx is None:
        return None
    proc = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    return proc.stderr.strip().removeprefix("nginx version: ") or None


def _postgres_version(url: str) -> str | None:
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            row = conn.execute("SHOW server_version").fetchone()
            return str(row[0]) if row else None
    except psycopg.Error:
        return None


def working_tree_source() -> str:
    def git(*args: str) -> str:
        proc = subprocess.run(
            ["git", "-C", str(BENCH_DIR.parent), *args], capture_output=True, text=True, check=False
        )
        return proc.stdout.strip()

    head = git("rev-parse", "--short=12", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", "src")
    return f"working tree at {head}" + (" with uncommitted changes in src/" if dirty else "")


if __name__ == "__main__":
    sys.exit(main())
