"""The eventyard benchmark: one command, everything on loopback, ceilings in the same run.

    .venv/bin/python bench/run.py [--scenarios single,batch,adapters,query,delivery,ack]
                                  [--backends sqlite,postgres] [--duration 5] [--runs 3]
                                  [--warmup 2] [--quick] [--ref HEAD]

It installs what it needs first: when wrk or nginx is missing it runs `apt-get update` and
`apt-get install -y wrk nginx` (as root, or through `sudo -n`; when it can do neither it
says so and exits 2).

Then, for each database and each scenario, it makes a fresh store (a SQLite file in a
temporary directory; a scratch PostgreSQL database on `--postgres-url`, dropped afterwards),
a `Servers` stack and a `ScenarioContext`, and calls the scenario module's `run(ctx)`
(bench/scenario_<name>.py). The scenario starts eventyard and its ceilings pinned to the
server CPU, drives them from the load CPU (wrk or a Python client, pinned too): a warm-up,
then `--runs` runs of `--duration` seconds alternating between the servers, so that drift
on the machine hits all of them alike, and hands back `Figure`s. A scenario that is
missing or fails is a note in the report; the others go on.

It prints one Markdown table per scenario — eventyard's figures beside the ceilings
measured in the same run, as paired per-run ratios — and a summary of issue 7's targets,
and writes `latest.json` (every run of every figure, and the machine, command, versions,
settings and load average) and `latest.md` to bench/results/ (or `--output`). The exit
status is 1 when a run had non-2xx answers, socket errors or missing rows, or a scenario
failed; 2 when the harness could not start.

By default it benchmarks the eventyard that `python -m eventyard` imports (the working tree,
in an editable install); `--ref REV` benchmarks that commit instead, extracted with
`git archive`, so uncommitted work in progress cannot skew a published figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import platform
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import psycopg
from report import ScenarioResult, markdown_report, tables, to_json
from report import summary_table as summary
from scenario import ScenarioContext
from servers import BENCH_DIR, Servers, postgres_available, scratch_database, source_at
from wrkload import wrk_version

SCENARIOS = ("single", "batch", "adapters", "query", "delivery", "ack")
BACKENDS = ("sqlite", "postgres")
TOOLS = ("wrk", "nginx")
QUICK = {"duration": 3, "runs": 1, "warmup": 1}
DEFAULTS = {"duration": 5, "runs": 3, "warmup": 2}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    problem = ensure_tools()
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    notes: list[str] = []
    if (os.cpu_count() or 1) < 2:
        notes.append("only one CPU: servers and load share it, so the figures are low")
    results: list[ScenarioResult] = []
    started = time.monotonic()
    load_before = round(os.getloadavg()[0], 2)
    with tempfile.TemporaryDirectory(prefix="eventyard-bench-") as tmp:
        workdir = Path(tmp)
        env, source = None, working_tree_source()
        if args.ref:
            try:
                env, commit = source_at(args.ref, workdir)
            except subprocess.CalledProcessError as exc:
                print(f"cannot extract --ref {args.ref}: {exc}", file=sys.stderr)
                return 2
            source = f"commit {commit[:12]} (--ref {args.ref})"
        for backend in args.backends:
            if backend == "postgres":
                problem = postgres_available(args.postgres_url)
                if problem is not None:
                    notes.append(
                        f"PostgreSQL skipped: it does not answer at {args.postgres_url} ({problem})"
                    )
                    continue
            for name in args.scenarios:
                results.append(run_scenario(name, backend, args, workdir, env))
    elapsed = time.monotonic() - started
    header = {
        "generated_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": command_line(argv),
        "eventyard_source": source,
        "elapsed_s": round(elapsed, 1),
        "machine": {
            **machine_info(args),
            "loadavg_before": load_before,
            "loadavg_after": round(os.getloadavg()[0], 2),
        },
        "settings": {
            "scenarios": args.scenarios,
            "backends": args.backends,
            "duration_s": args.duration,
            "runs": args.runs,
            "warmup_s": args.warmup,
            "connections": args.connections,
            "threads": args.threads,
            "server_cpu": args.server_cpu,
            "load_cpu": args.load_cpu,
        },
    }
    for result in results:
        notes += [f"{result.name} on {result.backend}: {note}" for note in result.notes]
        if result.error:
            notes.append(f"⚠ {result.name} on {result.backend} did not finish: {result.error}")
    write_results(args.output, header, results, notes)
    print()
    print(tables(results))
    print("\n### Issue 7's targets\n")
    print(summary(results))
    for note in notes:
        print(f"- {note}")
    print(
        f"\n{elapsed / 60:.1f} minutes; written: {args.output / 'latest.md'} and"
        f" {args.output / 'latest.json'}"
    )
    flagged = any(r.error for r in results) or any(
        doc["errors"] for r in to_json(header, results, [])["scenarios"] for doc in r["figures"]
    )
    return 1 if flagged else 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark eventyard against ceilings measured in the same run."
    )

    def names(allowed: tuple[str, ...]) -> Any:
        def parse(text: str) -> list[str]:
            chosen = [n.strip() for n in text.split(",") if n.strip()]
            unknown = sorted(set(chosen) - set(allowed))
            if unknown:
                raise argparse.ArgumentTypeError(
                    f"unknown: {', '.join(unknown)} (choose from {', '.join(allowed)})"
                )
            return chosen

        return parse

    parser.add_argument(
        "--scenarios",
        default=list(SCENARIOS),
        type=names(SCENARIOS),
        help=f"comma-separated, run in this order (default: all: {','.join(SCENARIOS)})",
    )
    parser.add_argument(
        "--backends",
        default=list(BACKENDS),
        type=names(BACKENDS),
        help="comma-separated: sqlite, postgres (default: both)",
    )
    parser.add_argument(
        "--duration", type=int, help=f"seconds per measured run ({DEFAULTS['duration']})"
    )
    parser.add_argument("--runs", type=int, help=f"measured runs per server ({DEFAULTS['runs']})")
    parser.add_argument(
        "--warmup", type=int, help=f"warm-up seconds per server ({DEFAULTS['warmup']})"
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run: --duration 3 --runs 1 --warmup 1 (unless given)",
    )
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (50)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (1)")
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "EVENTYARD_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
        help="an admin connection used to create and drop the scratch databases",
    )
    parser.add_argument("--server-cpu", default="0", help="taskset CPU list for servers (0)")
    parser.add_argument("--load-cpu", default="1", help="taskset CPU list for the load (1)")
    parser.add_argument(
        "--ref", default=None, help="benchmark this git commit instead of the working tree"
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=BENCH_DIR / "results",
        help="where latest.json and latest.md go (bench/results)",
    )
    args = parser.parse_args(argv)
    for name, default in DEFAULTS.items():
        if getattr(args, name) is None:
            setattr(args, name, QUICK[name] if args.quick else default)
    if args.runs < 1 or args.duration < 1 or args.warmup < 0:
        parser.error("--runs and --duration must be at least 1, --warmup at least 0")
    if not args.scenarios or not args.backends:
        parser.error("name at least one scenario and one backend")
    return args


# --- what the harness needs --------------------------------------------------------------


def missing_tools() -> list[str]:
    found = {"wrk": shutil.which("wrk"), "nginx": nginx_path()}
    return [tool for tool in TOOLS if found[tool] is None]


def nginx_path() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/sbin/nginx") if Path(p).exists()), None
    )


def ensure_tools() -> str | None:
    """Install wrk and nginx from Debian when either is missing; None, or why it cannot."""
    if shutil.which("taskset") is None:
        return "taskset is missing (Debian package util-linux); install it and run again"
    missing = missing_tools()
    if not missing:
        return None
    how = "apt-get update && apt-get install -y " + " ".join(TOOLS)
    if shutil.which("apt-get") is None:
        return f"{', '.join(missing)} missing and there is no apt-get here; install: {how}"
    prefix: list[str] = []
    if os.geteuid() != 0:
        sudo = shutil.which("sudo")
        usable = (
            sudo is not None
            and subprocess.run([sudo, "-n", "true"], capture_output=True, check=False).returncode
            == 0
        )
        if not usable:
            return (
                f"{', '.join(missing)} missing, and this user is not root and cannot sudo"
                f" without a password, so the harness cannot install them. As root, run:\n"
                f"  {how}"
            )
        prefix = [str(sudo), "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"bench: {', '.join(missing)} missing; installing: {' '.join(TOOLS)}", flush=True)
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", *TOOLS]):
        print(f"bench: {shlex.join([*prefix, *command])}", flush=True)
        proc = subprocess.run([*prefix, *command], env=env, check=False)
        if proc.returncode != 0:
            return f"`{shlex.join(command)}` failed ({proc.returncode}); install by hand: {how}"
    still = missing_tools()
    if still:
        return f"{', '.join(still)} still missing after apt-get install; install: {how}"
    print(f"bench: installed {' '.join(TOOLS)}", flush=True)
    return None


# --- scenarios ---------------------------------------------------------------------------


def run_scenario(
    name: str,
    backend: str,
    args: argparse.Namespace,
    workdir: Path,
    env: dict[str, str] | None,
) -> ScenarioResult:
    """One scenario on one backend, in its own directory, database and server stack."""
    result = ScenarioResult(name, backend)
    started = time.monotonic()
    print(f"\n== {name} on {backend}", file=sys.stderr, flush=True)
    try:
        module = importlib.import_module(f"scenario_{name}")
    except Exception as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == f"scenario_{name}":
            # Not written yet: a note, not a failure.
            result.notes.append(f"not measured: there is no bench/scenario_{name}.py")
            print(f"   {result.notes[-1]}", file=sys.stderr)
            return result
        result.error = f"bench/scenario_{name}.py could not be loaded: {_brief(exc)}"
        print(f"   {result.error}", file=sys.stderr)
        return result
    scratch = Path(tempfile.mkdtemp(prefix=f"{backend}-{name}-", dir=workdir))
    try:
        with (
            fresh_database(backend, args, scratch) as url,
            Servers(scratch, args.server_cpu, env) as servers,
        ):
            ctx = ScenarioContext(
                backend=backend,
                database_url=url,
                workdir=scratch,
                servers=servers,
                duration=args.duration,
                runs=args.runs,
                warmup=args.warmup,
                connections=args.connections,
                threads=args.threads,
                server_cpu=args.server_cpu,
                load_cpu=args.load_cpu,
            )
            try:
                result.figures = list(module.run(ctx))
            finally:
                result.notes = ctx.notes
    except Exception as exc:
        result.error = _brief(exc)
        print(traceback.format_exc(), file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    result.seconds = time.monotonic() - started
    print(f"   {name} on {backend}: {result.seconds:.0f} s", file=sys.stderr, flush=True)
    return result


def _brief(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    lines = text.splitlines()
    return lines[0][:300] + (" …" if len(lines) > 1 or len(lines[0]) > 300 else "")


@contextmanager
def fresh_database(backend: str, args: argparse.Namespace, scratch: Path) -> Iterator[str]:
    """A new, empty eventyard store for one scenario, removed afterwards."""
    if backend == "sqlite":
        yield f"sqlite:///{scratch}/eventyard.db"
        return
    with scratch_database(args.postgres_url) as url:
        yield url


# --- the results -------------------------------------------------------------------------


def write_results(
    output: Path, header: dict[str, Any], results: list[ScenarioResult], notes: list[str]
) -> None:
    output.mkdir(parents=True, exist_ok=True)
    document = to_json(header, results, notes)
    # default=str: a scenario's extra may hold what JSON cannot (a Path, a set).
    text = orjson.dumps(document, option=orjson.OPT_INDENT_2, default=str)
    (output / "latest.json").write_bytes(text + b"\n")
    (output / "latest.md").write_text(markdown_report(header, results, notes))


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
    nginx = nginx_path()
    if nginx is None:
        return None
    proc = subprocess.run([nginx, "-v"], capture_output=True, text=True, check=False)
    return proc.stderr.strip().removeprefix("nginx version: ").removeprefix("nginx/") or None


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
