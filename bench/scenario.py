"""What a scenario module is given, and what it hands back.

A scenario (bench/scenario_*.py) exposes `run(ctx: ScenarioContext) -> list[Figure]`. It gets
a fresh database and a `Servers` stack that stops whatever it started, measures eventyard
and the ceilings beside it in the same run, and returns one `Figure` per server measured.
`run.py` calls it once per backend and renders every figure into the JSON and Markdown
results.
"""


# ---- TEMPORARY NOTE FOR HELPERS WORKING IN PARALLEL (the lead removes it) ----
# ## Ground rules (shared by every helper)
#
# - Repository: /work/main (git, branch main). Several helpers and the lead work in this SAME
#   working tree at once. Python venv: /work/main/.venv (use .venv/bin/python, .venv/bin/pytest,
#   .venv/bin/ruff, .venv/bin/mypy). wrk, nginx and chromium are installed (/usr/bin/wrk,
#   /usr/sbin/nginx). PostgreSQL: postgresql://postgres@127.0.0.1:5432/test (trust auth; you may
#   create scratch databases and must drop them).
# - Read ../shared/DESIGN.md section on performance/quality bars if you need context, and
#   /work/main/CONTRIBUTING.md for code rules (small modules with one job, thin HTTP handlers,
#   one error shape, ruff + `mypy --strict` clean).
# - Commit ONLY files you own, with a message that says why:
#   `git commit -m "why" -- <paths>`. NEVER `git add -A`, `git commit -a`,
#   `git stash`, `git reset`, `git checkout -- <file you don't own>`, rebase or amend. If a
#   file you need to change belongs to someone else, don't edit it: describe the change in your
#   final report.
# - Do NOT edit CHANGELOG.md, README.md or docs/ unless your brief says so: put the text you'd
#   add (user-facing behaviour, settings, figures) in your final report and the lead merges it.
# - Before each commit: `.venv/bin/ruff check <paths>`, `.venv/bin/ruff format <paths>`,
#   `.venv/bin/mypy --strict src` (for src changes), and the tests that touch what you changed
#   (`.venv/bin/pytest -q -p no:cacheprovider tests/...`; the suite runs every storage test on
#   SQLite and PostgreSQL). Behaviour changes get real tests (real SQLite/PostgreSQL, no mocks
#   of our storage); performance is measured in bench/, never asserted in timed tests.
# - The machine has 2 cores and others are benchmarking at the same time: absolute figures
#   are noisy. Always measure eventyard against a ceiling in the same run and quote ratios and
#   medians; pin the server with `taskset -c 0` and the load with `taskset -c 1`. Keep load
#   runs short (5-8 s) so you don't hog the machine. Profile with py-spy
#   (`.venv/bin/py-spy record -o f.svg --pid P` or `py-spy dump`, `--format speedscope`/raw
#   text top with `py-spy top`) or pyinstrument before you change code, and after.
# - Time limit: check `date -u`; you must finish, commit and send your final report by
#   20:15 UTC. Stop starting new work at 20:00 UTC.
# - Final report (your last message): what you changed (files, commits), figures before and
#   after with the exact commands, the profile evidence, what you could not reach and which
#   part of the design stops it, and any text for docs/performance.md / CHANGELOG.
# ---- END OF NOTE ----

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servers import Servers


@dataclass
class ScenarioContext:
    backend: str  # "sqlite" or "postgres"
    database_url: str  # a fresh eventyard store for this scenario; dropped afterwards
    workdir: Path  # scratch directory, removed afterwards
    servers: Servers  # start servers with it; all are stopped when the scenario returns
    duration: int  # seconds per measured run
    runs: int  # measured runs per target
    warmup: int  # warm-up seconds per target
    connections: int  # wrk connections
    threads: int  # wrk threads
    server_cpu: str  # taskset CPU list for servers
    load_cpu: str  # taskset CPU list for load generators
    notes: list[str] = field(default_factory=list)  # lines for the report


@dataclass
class Figure:
    """One server measured in one scenario on one backend: a value per run, medians shown."""

    scenario: str  # "GET /v1/events?user_id=…"
    backend: str  # "sqlite", "postgres", or "-" for a ceiling with no database
    target: str  # "eventyard", "ceiling app", "direct SQL", "nginx static 200"
    role: str  # "eventyard" or "ceiling"
    unit: str  # unit of `rate`: "req/s", "events/s", "deliveries/s"
    # Per run: "rate" (in `unit`), and where measured "p50_ms", "p99_ms", "errors" (non-2xx
    # answers and socket errors), or other named figures ("lag_p50_ms", ...).
    runs: list[dict[str, float]] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)  # rows stored, server RSS, ...

    def median(self, name: str) -> float | None:
        values = [r[name] for r in self.runs if name in r]
        return statistics.median(values) if values else None
