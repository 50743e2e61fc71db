"""What per-key rate limits cost on POST /v1/events: limits off vs on, in one run.

Two eventyard servers on the same database, one with limits off and one with a limit high
enough never to refuse (so every request takes a token: on PostgreSQL one upsert of the
key's row in `rate_buckets`, on SQLite a dict update), take turns under wrk: off, on, off,
on... Each server is pinned to `--server-cpu`, wrk to `--load-cpu`; the figure is the median
of each side's runs and the ratio on/off, quoted with the ceiling app's rate from the same
run. Short runs, so it can share a busy machine:

    .venv/bin/python bench/ratelimit_cost.py --backend postgres --runs 4 --duration 5
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from servers import BENCH_DIR, Servers, eventyard_init, scratch_database
from wrkload import run_wrk

LIMITS_ON = {
    "EVENTYARD_RATE_LIMIT_PER_SECOND": "1000000000",
    "EVENTYARD_RATE_LIMIT_BURST": "1000000000",
}


@contextlib.contextmanager
def database(backend: str, admin_url: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir}/eventyard.db"
        return
    with scratch_database(admin_url) as url:
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="postgres", choices=["sqlite", "postgres"])
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--load-cpu", default="1")
    parser.add_argument("--postgres-url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    script = BENCH_DIR / "post_event.lua"
    rates: dict[str, list[float]] = {"off": [], "on": [], "ceiling": []}
    with (
        tempfile.TemporaryDirectory() as tmp,
        database(args.backend, args.postgres_url, Path(tmp)) as url,
        Servers(Path(tmp), args.server_cpu) as servers,
    ):
        key = eventyard_init(url)
        for n in range(args.runs):
            for side in ("off", "on"):
                env = LIMITS_ON if side == "on" else {}
                server, _ = servers.eventyard(f"{side}{n}", url, key=key, extra_env=env)
                result = run_wrk(
                    server.url + "/v1/events",
                    script=script,
                    script_args=[key, f"{side}{n}"],
                    seconds=args.duration,
                    connections=args.connections,
                    threads=1,
                    cpu=args.load_cpu,
                )
                if result.errors:
                    sys.exit(f"{side}: {result.errors} errors:\n{result.raw}")
                rates[side].append(result.requests_per_s)
                print(
                    f"run {n} limits {side}: {result.requests_per_s:.0f} req/s "
                    f"p50 {result.p50_ms:.1f} ms p99 {result.p99_ms:.1f} ms",
                    flush=True,
                )
                servers.stop_all()
            # The ceiling writes a table of its own: beside eventyard's file on SQLite.
            ceiling_url = f"sqlite:///{tmp}/ceiling.db" if args.backend == "sqlite" else url
            ceiling = servers.ceiling_app(f"ceiling{n}", ceiling_url)
            result = run_wrk(
                ceiling.url + "/v1/events",
                script=script,
                script_args=["-", f"c{n}"],
                seconds=args.duration,
                connections=args.connections,
                threads=1,
                cpu=args.load_cpu,
            )
            rates["ceiling"].append(result.requests_per_s)
            servers.stop_all()
    off, on, ceiling = (statistics.median(rates[k]) for k in ("off", "on", "ceiling"))
    print(
        f"{args.backend}: limits off {off:.0f} req/s, on {on:.0f} req/s "
        f"(on/off {on / off:.3f}); ceiling app {ceiling:.0f} req/s "
        f"(off/ceiling {off / ceiling:.3f}, on/ceiling {on / ceiling:.3f}); "
        f"medians of {args.runs} runs of {args.duration} s"
    )


if __name__ == "__main__":
    main()
