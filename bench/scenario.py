"""What a scenario module is given, and what it hands back.

A scenario (bench/scenario_*.py) exposes `run(ctx: ScenarioContext) -> list[Figure]`. It gets
a fresh database and a `Servers` stack that stops whatever it started, measures eventyard
and the ceilings beside it in the same run, and returns one `Figure` per server measured.
`run.py` calls it once per backend and renders every figure into the JSON and Markdown
results.
"""

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
