"""Queries on a million stored events: `GET /v1/events` with each indexed filter.

The store is seeded straight through SQL (eventyard's own `events` table, ids from
`eventyard.ids`): 20 triggers of skewed popularity, 50,000 users of whom 500 send 30 % of
the events, event times over the last 30 days (mostly just before receipt, a few late),
~150-byte payloads, a third with idempotency keys, a few with a TTL. The table's indexes are
dropped for the load and rebuilt after it (the rows are the same as ingest would leave, in
a fraction of the time); PostgreSQL then gets the VACUUM ANALYZE autovacuum would give it,
SQLite nothing (eventyard never runs ANALYZE there, so a real store has no statistics).

For every scenario a list of request paths is drawn once (random users, triggers and time
windows; real cursors for page 2) and both sides use the same list: wrk, pinned to the load
core, requests the paths in random order from eventyard; the ceiling runs the same SQL
`query_events` issues (built by eventyard's own `event_query_sql`) with the same parameters
from one Python process pinned to the server core (bench/ceiling_query_app.py --direct),
and the same SQL behind a bare ASGI route (bench/ceiling_query_app.py) under wrk.

Standalone:
    .venv/bin/python bench/scenario_query.py --backend sqlite --rows 1000000 --duration 5
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import orjson
import psycopg
from scenario import Figure, ScenarioContext
from servers import (
    BENCH_DIR,
    Server,
    Servers,
    eventyard_init,
    postgres_available,
    scratch_database,
    source_at,
)
from wrkload import WrkResult, run_wrk

from eventyard.ids import new_ulid

DAY_US = 86_400 * 1_000_000
SPAN_US = 30 * DAY_US
TRIGGERS = [
    "page_viewed",
    "signed_in",
    "search",
    "item_viewed",
    "added_to_cart",
    "signed_up",
    "checkout_started",
    "order_completed",
    "payment_failed",
    "subscription_renewed",
    "invite_sent",
    "profile_updated",
    "password_reset",
    "export_requested",
    "plan_upgraded",
    "plan_downgraded",
    "api_key_created",
    "team_created",
    "account_deleted",
    "webhook_tested",
]
# Zipf-like popularity: page_viewed ~28 % of events, webhook_tested ~0.6 %.
TRIGGER_WEIGHTS = [1 / (rank + 1) ** 1.1 for rank in range(len(TRIGGERS))]
USERS = 50_000
HEAVY_USERS = 500  # user_00000 … user_00499 send HEAVY_SHARE of all events
HEAVY_SHARE = 0.3
SOURCES = ["api"] * 85 + ["segment"] * 10 + ["cdp"] * 3 + ["eventbunker"] * 2
PLANS = ["free", "starter", "pro", "enterprise"]
PAGES = ["/", "/pricing", "/docs/getting-started", "/blog/launch", "/app/settings", "/signup"]
OSES = ["macOS 14.5", "Windows 11", "iOS 17.4", "Android 14", "Ubuntu 24.04"]
ENVIRONMENT = "live"


def user_id(n: int) -> str:
    return f"user_{n:05d}"


@dataclass
class Seeded:
    key: str  # a live admin key of the seeded project
    project_id: str
    rows: int
    now_us: int  # "now" at seeding: event times run up to it
    seconds: float  # how long seeding took (0 when copied from the cache)
    cached: bool = False


# ---- seeding --------------------------------------------------------------------------------


def generate_rows(
    project_id: str, rows: int, now_us: int, seed: int = 7
) -> Iterator[tuple[Any, ...]]:
    """The `events` rows, in receipt order (as ingest would have written them)."""
    rng = random.Random(seed)
    start = now_us - SPAN_US
    received = sorted(rng.randrange(start, now_us) for _ in range(rows))
    triggers = rng.choices(TRIGGERS, TRIGGER_WEIGHTS, k=rows)
    for i in range(rows):
        received_at = received[i]
        r = rng.random()
        if r < 0.90:
            lag = rng.randrange(0, 2_000_000)  # sent at once
        elif r < 0.98:
            lag = rng.randrange(2_000_000, 3_600_000_000)  # queued on a device
        else:
            lag = rng.randrange(3_600_000_000, 3 * DAY_US)  # imported late
        timestamp = max(start, received_at - lag)
        uid = (
            rng.randrange(HEAVY_USERS)
            if rng.random() < HEAVY_SHARE
            else rng.randrange(HEAVY_USERS, USERS)
        )
        source = SOURCES[rng.randrange(100)]
        payload = (
            f'{{"plan":"{PLANS[uid & 3]}","amount":{rng.randrange(100, 99_999) / 100},'
            f'"currency":"USD","path":"{PAGES[rng.randrange(6)]}",'
            f'"session":"s_{rng.getrandbits(48):012x}","client":{{"os":"{OSES[uid % 5]}",'
            f'"app":"2.{uid % 7}.{rng.randrange(20)}"}},"seq":{i}}}'
        )
        idem = f"idem-{rng.getrandbits(64):016x}" if rng.random() < 0.33 else None
        # A few events carry a TTL (the buildable adapter's `ttl`): a week from receipt.
        expires = received_at + 7 * DAY_US if source == "cdp" and rng.random() < 0.5 else None
        env = ENVIRONMENT if rng.random() < 0.95 else "test"
        yield (
            "evt_" + new_ulid(received_at // 1000),
            project_id,
            env,
            triggers[i],
            user_id(uid),
            payload,
            timestamp,
            received_at,
            idem,
            source,
            expires,
        )


COLUMNS = (
    "id, project_id, environment, trigger_id, user_id, payload, timestamp, received_at,"
    " idempotency_key, source, expires_at"
)


def seed_sqlite(path: str, project_id: str, rows: int, now_us: int) -> None:
    """Bulk-load `rows` events: indexes dropped, one transaction, indexes rebuilt."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA synchronous = OFF")  # this connection only: a bulk load
        conn.execute("PRAGMA cache_size = -262144")
        indexes = conn.execute(
            "SELECT name, sql FROM sqlite_master"
            " WHERE type = 'index' AND tbl_name = 'events' AND sql IS NOT NULL"
        ).fetchall()
        conn.execute("BEGIN")
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        insert = f"INSERT INTO events ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        conn.executemany(insert, generate_rows(project_id, rows, now_us))
        for _, sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")
        # No ANALYZE: eventyard never runs it on SQLite, so a real store has no statistics,
        # and the planner must choose well without them (a query that needs them is slow
        # in production, and should be here too).
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()


def seed_postgres(url: str, project_id: str, rows: int, now_us: int) -> None:
    """COPY `rows` events with the secondary indexes dropped, rebuild them, VACUUM ANALYZE
    (as autovacuum would after a large insert: the visibility map lets index-only scans
    skip the heap)."""
    with psycopg.connect(url, autocommit=True) as conn:
        indexes = conn.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i"
            " WHERE i.tablename = 'events' AND i.schemaname = current_schema()"
            " AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        ).fetchall()
        with conn.transaction():
            for name, _ in indexes:
                conn.execute(f'DROP INDEX "{name}"')
            with conn.cursor().copy(f"COPY events ({COLUMNS}) FROM STDIN") as copy:
                buffer = io.StringIO()
                for n, row in enumerate(generate_rows(project_id, rows, now_us), 1):
                    buffer.write("\t".join(r"\N" if v is None else str(v) for v in row))
                    buffer.write("\n")
                    if n % 20_000 == 0:
                        copy.write(buffer.getvalue())
                        buffer = io.StringIO()
                copy.write(buffer.getvalue())
            conn.execute("SET LOCAL maintenance_work_mem = '256MB'")
            for _, sql in indexes:
                conn.execute(sql)
        conn.execute("VACUUM ANALYZE events")


def project_of(url: str) -> str:
    if url.startswith("sqlite:"):
        with contextlib.closing(sqlite3.connect(sqlite_file(url))) as conn:
            return str(conn.execute("SELECT id FROM projects").fetchone()[0])
    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT id FROM projects").fetchone()
        assert row is not None
        return str(row[0])


def sqlite_file(url: str) -> str:
    from eventyard.store.connect import sqlite_path

    return sqlite_path(url)


def seed(ctx: ScenarioContext, rows: int) -> Seeded:
    """Init a project in ctx.database_url and load `rows` events into it. On SQLite the
    loaded file is kept in the workdir and copied for the next scenario run that asks for
    the same number of rows (the workdir goes with the harness run)."""
    if ctx.backend == "sqlite":
        target = sqlite_file(ctx.database_url)
        cache = ctx.workdir / f"query-seed-{rows}.db"
        meta = cache.with_suffix(".json")
        if cache.exists() and meta.exists() and not Path(target).exists():
            started = time.monotonic()
            shutil.copyfile(cache, target)
            info = orjson.loads(meta.read_bytes())
            return Seeded(
                info["key"],
                info["project_id"],
                rows,
                info["now_us"],
                time.monotonic() - started,
                cached=True,
            )
    started = time.monotonic()
    key = eventyard_init(ctx.database_url, ctx.servers.env)
    project_id = project_of(ctx.database_url)
    now_us = time.time_ns() // 1000
    if ctx.backend == "sqlite":
        seed_sqlite(target, project_id, rows, now_us)
        seconds = time.monotonic() - started
        shutil.copyfile(target, cache)
        meta.write_bytes(orjson.dumps({"key": key, "project_id": project_id, "now_us": now_us}))
    else:
        seed_postgres(ctx.database_url, project_id, rows, now_us)
        seconds = time.monotonic() - started
    return Seeded(key, project_id, rows, now_us, seconds)


# ---- what each scenario asks ----------------------------------------------------------------

CASES = 2000  # distinct requests drawn per scenario


@dataclass
class Scenario:
    name: str  # as reported: "GET /v1/events?user_id=…"
    cases: list[dict[str, str]]  # query parameters, as a client sends them

    def paths(self) -> list[str]:
        return ["/v1/events" + query_string(c) for c in self.cases]


def query_string(case: dict[str, str]) -> str:
    if not case:
        return ""
    return "?" + "&".join(f"{k}={quote(v, safe='')}" for k, v in case.items())


def _any_user(rng: random.Random, heavy: float) -> str:
    if rng.random() < heavy:
        return user_id(rng.randrange(HEAVY_USERS))
    return user_id(rng.randrange(HEAVY_USERS, USERS))


def _ms_ago(now_us: int, rng: random.Random, low_us: int, high_us: int) -> str:
    return str((now_us - rng.randrange(low_us, high_us)) // 1000)


def scenarios(seeded: Seeded, first_page: Any, seed: int = 11) -> list[Scenario]:
    """The scenarios, their requests drawn once. `first_page(case)` answers page 1 of a
    case (a dict with `next_cursor`), for the page-2 scenario's real cursors."""
    rng = random.Random(seed)
    now = seeded.now_us
    hour = 3_600_000_000
    out = [
        Scenario("GET /v1/events (newest page)", [{}]),
        Scenario(
            "GET /v1/events?user_id=…",
            [{"user_id": _any_user(rng, 0.3)} for _ in range(CASES)],
        ),
        Scenario(
            "GET /v1/events?trigger=…&since=…",
            [
                {"trigger": rng.choice(TRIGGERS), "since": _ms_ago(now, rng, hour, SPAN_US)}
                for _ in range(CASES)
            ],
        ),
        Scenario(
            "GET /v1/events?trigger=…&user_id=…",
            [
                {"trigger": rng.choice(TRIGGERS), "user_id": _any_user(rng, 0.5)}
                for _ in range(CASES)
            ],
        ),
        Scenario(
            "GET /v1/events?since=…&until=… (one hour)",
            [
                {"since": str(s), "until": str(s + hour // 1000)}
                for s in (int(_ms_ago(now, rng, hour, SPAN_US)) for _ in range(CASES))
            ],
        ),
    ]
    second: list[dict[str, str]] = []
    while len(second) < CASES // 4:
        if rng.random() < 0.5:
            case = {
                "trigger": rng.choice(TRIGGERS),
                "until": _ms_ago(now, rng, 0, SPAN_US - DAY_US),
            }
        else:
            case = {"user_id": user_id(rng.randrange(HEAVY_USERS))}
        cursor = first_page(case).get("next_cursor")
        if cursor:
            second.append({**case, "cursor": cursor})
    out.append(Scenario("GET /v1/events?…&cursor=… (page 2)", second))
    return out


# ---- measuring ------------------------------------------------------------------------------


def first_page_of(server: Server, key: str) -> Any:
    import urllib.request

    def get(case: dict[str, str]) -> Any:
        request = urllib.request.Request(
            server.url + "/v1/events" + query_string(case),
            headers={"Authorization": f"Bearer {key}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            return orjson.loads(response.read())

    return get


def direct_sql(
    ctx: ScenarioContext, project_id: str, paths: Path, seconds: int
) -> dict[str, float]:
    """The SQL alone, from one process pinned to the server core."""
    command = [
        "taskset", "-c", ctx.server_cpu, sys.executable, str(BENCH_DIR / "ceiling_query_app.py"),
        "--direct", "--database-url", ctx.database_url, "--project-id", project_id,
        "--paths", str(paths), "--seconds", str(seconds),
    ]  # fmt: skip
    proc = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=True,
        timeout=seconds + 120,
    )
    result: dict[str, float] = orjson.loads(proc.stdout.strip().splitlines()[-1])
    return result


def wrk_run(ctx: ScenarioContext, server: Server, paths: Path, key: str, seconds: int) -> WrkResult:
    return run_wrk(
        server.url,
        script=BENCH_DIR / "query_paths.lua",
        script_args=[str(paths), key],
        seconds=seconds,
        connections=ctx.connections,
        threads=ctx.threads,
        cpu=ctx.load_cpu,
    )


def peak_rss_mb(pid: int) -> float | None:
    """The most resident memory the process has had (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measured_load(
    ctx: ScenarioContext, server: Server, paths: Path, key: str, seconds: int
) -> dict[str, float]:
    """One wrk run; with the server's CPU time per request, which other work on a shared
    machine disturbs far less than the rate and the latencies."""
    cpu = cpu_seconds(server.pid)
    result = wrk_run(ctx, server, paths, key, seconds)
    cpu = cpu_seconds(server.pid) - cpu
    return {
        "rate": result.requests_per_s,
        "p50_ms": result.p50_ms,
        "p99_ms": result.p99_ms,
        "errors": float(result.errors),
        "cpu_us_per_request": 1e6 * cpu / max(result.requests, 1),
    }


def _log(backend: str, scenario: str, target: str, what: str, run: dict[str, float]) -> None:
    print(
        f"{backend:8} {scenario[:44]:44} {target:18} {what:8} {run['rate']:9,.0f}/s"
        f"  p50 {run['p50_ms']:6.2f} ms  p99 {run['p99_ms']:6.2f} ms"
        + (f"  cpu {run['cpu_us_per_request']:5.0f} µs/req" if "cpu_us_per_request" in run else "")
        + (f"  ⚠ errors {run['errors']:.0f}" if run.get("errors") else ""),
        file=sys.stderr,
        flush=True,
    )


def run(ctx: ScenarioContext, rows: int = 1_000_000, only: list[str] | None = None) -> list[Figure]:
    seeded = seed(ctx, rows)
    how = "copied from this run's cache" if seeded.cached else "seeded"
    ctx.notes.append(
        f"query scenarios ({ctx.backend}): {rows:,} events {how} in {seeded.seconds:.1f} s"
    )
    print(f"{ctx.backend}: {rows:,} events {how} in {seeded.seconds:.1f} s", file=sys.stderr)
    server, key = ctx.servers.eventyard(
        f"eventyard-query-{ctx.backend}", ctx.database_url, key=seeded.key
    )
    ceiling = start_ceiling_app(ctx, seeded.project_id)
    # Six filters, three targets each: shorter and fewer runs than the other scenarios take,
    # so that the whole harness stays near ten minutes. Query latency is steady run to run.
    runs, seconds, warmup = min(ctx.runs, 2), min(ctx.duration, 3), min(ctx.warmup, 1)
    figures: list[Figure] = []
    for number, scenario in enumerate(scenarios(seeded, first_page_of(server, key))):
        if only and not any(o in scenario.name for o in only):
            continue
        paths = ctx.workdir / f"query-paths-{number}.txt"
        paths.write_text("\n".join(scenario.paths()) + "\n")
        ev = Figure(scenario.name, ctx.backend, "eventyard", "eventyard", "req/s")
        app = Figure(scenario.name, ctx.backend, "ceiling app (same SQL)", "ceiling", "req/s")
        sql = Figure(scenario.name, ctx.backend, "direct SQL", "ceiling", "queries/s")
        ev.extra["distinct_requests"] = len(scenario.cases)
        wrk_run(ctx, server, paths, key, warmup)
        wrk_run(ctx, ceiling, paths, "-", warmup)
        for n in range(runs):
            for figure in (ev, app, sql):
                if figure is sql:
                    result = direct_sql(ctx, seeded.project_id, paths, seconds)
                else:
                    target, auth = (server, key) if figure is ev else (ceiling, "-")
                    result = measured_load(ctx, target, paths, auth, seconds)
                figure.runs.append(result)
                _log(ctx.backend, scenario.name, figure.target, f"{n + 1}/{runs}", result)
        ev.extra["server_rss_mb"] = server.rss_mb()
        ev.extra["peak_rss_mb"] = peak_rss_mb(server.pid)
        figures += [ev, app, sql]
    return figures


def start_ceiling_app(ctx: ScenarioContext, project_id: str) -> Server:
    # The ceilings import the working tree's eventyard (for `event_query_sql`), also when
    # eventyard itself is served from another commit (run.py --ref).
    from servers import free_port

    port = free_port()
    command = [
        sys.executable, str(BENCH_DIR / "ceiling_query_app.py"), "--port", str(port),
        "--database-url", ctx.database_url, "--project-id", project_id,
    ]  # fmt: skip
    return ctx.servers.start(f"ceiling-query-{ctx.backend}", command, port)


# ---- standalone -----------------------------------------------------------------------------


@contextlib.contextmanager
def _database(backend: str, workdir: Path, postgres_url: str) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir}/eventyard.db"
        return
    problem = postgres_available(postgres_url)
    if problem is not None:
        raise SystemExit(f"PostgreSQL does not answer at {postgres_url}: {problem}")
    with scratch_database(postgres_url) as url:
        yield url


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--load-cpu", default="1")
    parser.add_argument("--only", action="append", help="run scenarios whose name has this text")
    parser.add_argument(
        "--ref", help="serve eventyard from this git commit (the ceilings: the tree)"
    )
    parser.add_argument(
        "--workdir", type=Path, help="keep the scratch files (and the SQLite seed cache) here"
    )
    parser.add_argument(
        "--postgres-url",
        default=os.environ.get(
            "EVENTYARD_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        if args.workdir:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                (workdir / "eventyard.db").unlink()  # the seed cache is copied over it
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="eventyard-q-")))
        url = stack.enter_context(_database(args.backend, workdir, args.postgres_url))
        env = None
        if args.ref:
            (workdir / f"ref-{os.getpid()}").mkdir()
            env = source_at(args.ref, workdir / f"ref-{os.getpid()}")[0]
        servers = stack.enter_context(Servers(workdir, args.server_cpu, env))
        ctx = ScenarioContext(
            backend=args.backend,
            database_url=url,
            workdir=workdir,
            servers=servers,
            duration=args.duration,
            runs=args.runs,
            warmup=args.warmup,
            connections=args.connections,
            threads=1,
            server_cpu=args.server_cpu,
            load_cpu=args.load_cpu,
        )
        figures = run(ctx, rows=args.rows, only=args.only)
    print()
    print("| scenario | target | rate | p50 ms | p99 ms | CPU µs/request |")
    print("|---|---|---:|---:|---:|---:|")
    for f in figures:
        rate, p50, p99 = f.median("rate"), f.median("p50_ms"), f.median("p99_ms")
        cpu = f.median("cpu_us_per_request")
        print(
            f"| {f.scenario} | {f.target} | {rate or 0:,.0f} {f.unit} | {p50 or 0:.2f}"
            f" | {p99 or 0:.2f} | {'' if cpu is None else f'{cpu:,.0f}'} |"
        )
    for note in ctx.notes:
        print(f"- {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
