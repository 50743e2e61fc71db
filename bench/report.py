"""Medians, ratios, and the two forms of the results: JSON and a Markdown table.

A `Measurement` is one server measured in one scenario on one backend: several wrk runs
and their medians. Its `role` says what it is — `eventyard`, or a `ceiling` it is compared
with. The table puts each eventyard figure beside the ceilings of the same scenario and
backend measured in the same run, as a percentage, so the comparison survives a noisy
machine.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from wrkload import WrkResult


@dataclass
class Measurement:
    scenario: str
    backend: str  # "sqlite", "postgres", or "-" for a ceiling with no database
    target: str  # "eventyard", "ceiling app", "nginx static 200"
    role: str  # "eventyard" or "ceiling"
    runs: list[WrkResult] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def requests_per_s(self) -> float:
        return statistics.median(r.requests_per_s for r in self.runs)

    @property
    def p50_ms(self) -> float:
        return statistics.median(r.p50_ms for r in self.runs)

    @property
    def p99_ms(self) -> float:
        return statistics.median(r.p99_ms for r in self.runs)

    @property
    def non_2xx(self) -> int:
        return sum(r.non_2xx for r in self.runs)

    @property
    def errors(self) -> int:
        return sum(r.errors for r in self.runs)

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "backend": self.backend,
            "target": self.target,
            "role": self.role,
            "median": {
                "requests_per_s": round(self.requests_per_s, 1),
                "p50_ms": round(self.p50_ms, 3),
                "p99_ms": round(self.p99_ms, 3),
            },
            "non_2xx": self.non_2xx,
            "errors": self.errors,
            "runs": [r.to_json() for r in self.runs],
            **self.extra,
        }


def paired_ratio(m: Measurement, ceiling: Measurement) -> float:
    """m's rate over the ceiling's: the median of per-round ratios when the runs alternated
    (same count, measured back to back), which cancels drift; else the ratio of medians."""
    if m.backend == ceiling.backend and len(m.runs) == len(ceiling.runs):
        return statistics.median(
            a.requests_per_s / b.requests_per_s for a, b in zip(m.runs, ceiling.runs, strict=True)
        )
    return m.requests_per_s / ceiling.requests_per_s


def ratios(measurements: list[Measurement]) -> list[dict[str, Any]]:
    """eventyard's median rate as a fraction of each ceiling beside it."""
    out = []
    for ev in measurements:
        if ev.role != "eventyard" or not ev.runs:
            continue
        for ceiling in measurements:
            if (
                ceiling.role == "ceiling"
                and ceiling.scenario == ev.scenario
                and ceiling.backend in (ev.backend, "-")
                and ceiling.runs
            ):
                out.append(
                    {
                        "scenario": ev.scenario,
                        "backend": ev.backend,
                        "ceiling": ceiling.target,
                        "eventyard_requests_per_s": round(ev.requests_per_s, 1),
                        "ceiling_requests_per_s": round(ceiling.requests_per_s, 1),
                        "ratio": round(paired_ratio(ev, ceiling), 3),
                    }
                )
    return out


def _vs(m: Measurement, measurements: list[Measurement]) -> str:
    """'63 % of ceiling app' for eventyard; a database ceiling against the HTTP one."""
    if m.role == "eventyard":
        others = [c for c in measurements if c.role == "ceiling" and c.backend == m.backend]
    elif m.backend != "-":
        others = [c for c in measurements if c.role == "ceiling" and c.backend == "-"]
    else:
        return "—"
    parts = [
        f"{paired_ratio(m, c):.0%} of {c.target}"
        for c in others
        if c.scenario == m.scenario and c.runs
    ]
    return ", ".join(parts) or "—"


def markdown_table(measurements: list[Measurement]) -> str:
    lines = [
        "| scenario | database | server | req/s | p50 | p99 | vs ceiling | non-2xx / errors"
        " | req/s of each run |",
        "|---|---|---|--:|--:|--:|---|--:|---|",
    ]
    for m in measurements:
        if not m.runs:
            continue
        errors = f"{m.non_2xx} / {m.errors}"
        if m.errors:
            errors = f"**{errors} ⚠**"
        server = f"**{m.target}**" if m.role == "eventyard" else m.target
        each = ", ".join(f"{r.requests_per_s:,.0f}" for r in m.runs)
        lines.append(
            f"| {m.scenario} | {m.backend} | {server} | {m.requests_per_s:,.0f}"
            f" | {m.p50_ms:.2f} ms | {m.p99_ms:.2f} ms | {_vs(m, measurements)} | {errors}"
            f" | {each} |"
        )
    return "\n".join(lines)


def markdown_report(
    measurements: list[Measurement], header: dict[str, Any], notes: list[str]
) -> str:
    machine = header["machine"]
    out = [
        "# eventyard benchmark",
        "",
        f"- command: `{header['command']}`",
        f"- when: {header['generated_at']}",
        f"- eventyard: {header['eventyard_source']}",
        f"- machine: {machine['nproc']} CPUs, {machine['cpu_model']}; kernel"
        f" {machine['kernel']}; Python {machine['python']}",
        f"- load: wrk `-t{header['settings']['threads']} -c{header['settings']['connections']}"
        f" -d{header['settings']['duration_s']}s`, {header['settings']['runs']} runs after a"
        f" {header['settings']['warmup_s']} s warm-up; medians shown; server pinned to CPU"
        f" {header['settings']['server_cpu']}, wrk to CPU {header['settings']['load_cpu']}",
        f"- load average (1 min) before / after: {machine['loadavg_before']} /"
        f" {machine['loadavg_after']}",
        "",
        markdown_table(measurements),
    ]
    if notes:
        out += ["", *[f"- {note}" for note in notes]]
    return "\n".join(out) + "\n"
