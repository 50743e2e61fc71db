"""Medians, paired ratios, issue 7's targets, and the two forms of the results: JSON and
Markdown.

A scenario run (`ScenarioResult`: one scenario module on one backend) hands back `Figure`s,
each one server measured in one slot of the scenario (`Figure.scenario`, e.g.
`POST /v1/events`) with a value per run. A figure's `role` says what it is — `eventyard`, or
a `ceiling` it is compared with. Every eventyard figure is shown beside the ceilings of the
same slot from the same scenario run (in the same unit, or both rates: req/s against
queries/s) as a ratio: the median of the per-run ratios when both have the same number of
runs (the scenarios alternate runs between them, so each pair was measured back to back and
the machine's drift cancels), else the ratio of the medians. A figure whose `extra` says
`"alternated": False` gets the latter.

The summary reads issue 7's targets from the figures: the `single` and `batch` ratios and
p99s, the worst eventyard p99 of `query`, the eventyard `lag_p50_ms`/`lag_p99_ms` of
`delivery` and the best `deliveries/s` of a delivery figure without lags (a paced run's rate
is only its pace), the `*_fraction` figures of `ack`, and the highest `rss_max_mb` sampled
during an eventyard run (else the `peak_rss_mb` of an eventyard figure).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from typing import Any

from scenario import Figure

TITLES = {
    "single": "Single-event ingest",
    "batch": "Batch ingest, 100 events a request",
    "adapters": "Adapters against the native routes",
    "query": "Queries",
    "delivery": "Webhook delivery",
    "ack": "Ack-to-queryable",
}
# Per-run figures shown in their own columns, or not at all (wrk's bookkeeping).
_SHOWN = ("rate", "p50_ms", "p99_ms", "errors")
_HIDDEN = {
    "requests_per_s",
    "requests",
    "non_2xx",
    "socket_errors",
    "events_acknowledged",
    "accepted",
    "not_accepted",
    "rows",
    "batches",
    "events",
}
RSS_TARGET_MB = 200.0


@dataclass
class ScenarioResult:
    name: str  # the registry's name: "single", "batch", ...
    backend: str
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # why the scenario did not finish


@dataclass
class Comparison:
    ceiling: Figure
    ratio: float
    paired: bool


# --- figures -----------------------------------------------------------------------------


def errors(figure: Figure) -> int:
    """Non-2xx answers, socket errors and events not accepted, over all runs; and rows an
    acknowledged event should have left but did not."""
    total = sum(r.get("errors", 0.0) for r in figure.runs)
    return int(total + (figure.extra.get("rows_missing") or 0))


def ratio(figure: Figure, ceiling: Figure) -> Comparison | None:
    comparable = figure.unit == ceiling.unit or (
        figure.unit.endswith("/s") and ceiling.unit.endswith("/s")
    )
    if not comparable or not figure.runs or not ceiling.runs:
        return None
    rates = [r.get("rate", 0.0) for r in figure.runs]
    ceilings = [r.get("rate", 0.0) for r in ceiling.runs]
    alternated = figure.extra.get("alternated", True) and ceiling.extra.get("alternated", True)
    if alternated and len(rates) == len(ceilings) and all(ceilings):
        paired = statistics.median(a / b for a, b in zip(rates, ceilings, strict=True))
        return Comparison(ceiling, paired, True)
    top = ceiling.median("rate")
    if not top:
        return None
    return Comparison(ceiling, (figure.median("rate") or 0.0) / top, False)


def comparisons(result: ScenarioResult, figure: Figure) -> list[Comparison]:
    """An eventyard figure against each ceiling of its slot in the same scenario run."""
    if figure.role != "eventyard":
        return []
    out = []
    for other in result.figures:
        if other.role == "ceiling" and other.scenario == figure.scenario:
            found = ratio(figure, other)
            if found is not None:
                out.append(found)
    return out


def figure_json(result: ScenarioResult, figure: Figure) -> dict[str, Any]:
    names = sorted(_numeric(figure))
    return {
        "scenario": figure.scenario,
        "backend": figure.backend,
        "target": figure.target,
        "role": figure.role,
        "unit": figure.unit,
        "median": {name: _round(figure.median(name)) for name in names},
        "errors": errors(figure),
        "vs": [
            {
                "ceiling": c.ceiling.target,
                "ratio": round(c.ratio, 4),
                "paired_runs": c.paired,
            }
            for c in comparisons(result, figure)
        ],
        "runs": [{k: _round(v) for k, v in run.items()} for run in figure.runs],
        "extra": figure.extra,
    }


def _numeric(figure: Figure) -> set[str]:
    """The names of a figure's per-run values that are numbers in every run that has them."""
    names = {name for run in figure.runs for name in run}
    return {
        n
        for n in names
        if all(
            isinstance(r[n], int | float) and not isinstance(r[n], bool)
            for r in figure.runs
            if n in r
        )
    }


def _round(value: Any) -> Any:
    return round(value, 4) if isinstance(value, float) else value


# --- issue 7's targets -------------------------------------------------------------------


@dataclass
class Check:
    target: str
    backend: str
    measured: str
    ok: bool | None  # None: not measured


def _eventyard(results: list[ScenarioResult], name: str, backend: str) -> list[Figure]:
    return [
        f
        for r in results
        if r.name == name and r.backend == backend
        for f in r.figures
        if f.role == "eventyard" and f.runs
    ]


def _result(results: list[ScenarioResult], name: str, backend: str) -> ScenarioResult | None:
    return next((r for r in results if r.name == name and r.backend == backend), None)


def _vs_ceiling(
    results: list[ScenarioResult],
    name: str,
    backend: str,
    goal: float,
    ceiling: str | None,
    label: str,
) -> Check:
    """eventyard's ratio to the ceiling named `ceiling` (None: the slot's only ceiling)."""
    result = _result(results, name, backend)
    if result is None:
        return Check(label, backend, "not measured", None)
    for figure in _eventyard(results, name, backend):
        for c in comparisons(result, figure):
            if ceiling is None or c.ceiling.target == ceiling:
                measured = (
                    f"{c.ratio:.0%} ({figure.median('rate') or 0:,.0f} vs"
                    f" {c.ceiling.median('rate') or 0:,.0f} {figure.unit})"
                )
                return Check(label, backend, measured, c.ratio >= goal)
    return Check(label, backend, "not measured", None)


def _worst(figures: list[Figure], name: str, limit: float, label: str, backend: str) -> Check:
    values = [(f.median(name), f) for f in figures]
    measured = [(v, f) for v, f in values if v is not None]
    if not measured:
        return Check(label, backend, "not measured", None)
    value, figure = max(measured, key=lambda vf: vf[0])
    where = ""
    if len(measured) > 1:
        one_slot = len({f.scenario for _, f in measured}) == 1
        parts = [] if one_slot else [figure.scenario]
        parts += [] if figure.target == "eventyard" else [figure.target]
        where = f": {', '.join(parts)}" if parts else ""
    return Check(label, backend, f"{value:.2f} ms{where}", value < limit)


def checks(results: list[ScenarioResult]) -> list[Check]:
    """Every target on every backend measured; `not run` where its scenario was not chosen."""
    backends = list(dict.fromkeys(r.backend for r in results))
    out: list[Check] = []
    for backend in backends:
        ran = {r.name for r in results if r.backend == backend}
        start = len(out)
        single = _eventyard(results, "single", backend)
        out.append(
            _vs_ceiling(
                results, "single", backend, 0.75, "ceiling app", "single: ≥ 75% of the ceiling app"
            )
        )
        out.append(_worst(single, "p99_ms", 20, "single: p99 < 20 ms at 50 connections", backend))
        out.append(
            _vs_ceiling(
                results,
                "batch",
                backend,
                0.50,
                None,
                "batch: ≥ 50% of the database's own insert rate",
            )
        )
        query = _eventyard(results, "query", backend)
        out.append(_worst(query, "p99_ms", 20, "query: p99 < 20 ms, any filter", backend))
        delivery = _eventyard(results, "delivery", backend)
        lagged = [f for f in delivery if f.median("lag_p50_ms") is not None]
        out.append(
            _worst(lagged, "lag_p50_ms", 20, "delivery: lag p50 < 20 ms at 1,000/s", backend)
        )
        out.append(
            _worst(lagged, "lag_p99_ms", 100, "delivery: lag p99 < 100 ms at 1,000/s", backend)
        )
        out.append(_throughput(delivery, backend))
        out.append(_ack(_eventyard(results, "ack", backend), backend))
        out.append(
            _memory([f for r in results if r.backend == backend for f in r.figures], backend)
        )
        scenarios = ["single", "single", "batch", "query", "delivery", "delivery", "delivery"]
        scenarios += ["ack", "single"]
        for check, name in zip(out[start:], scenarios, strict=True):
            if name not in ran and check.ok is None:
                check.measured = "not run"
    return out


def _throughput(figures: list[Figure], backend: str) -> Check:
    label = "delivery: one worker ≥ 2,000 deliveries/s"
    rates = [
        (f.median("rate"), f)
        for f in figures
        if f.unit == "deliveries/s" and f.median("lag_p50_ms") is None  # not the paced runs
    ]
    measured = [(v, f) for v, f in rates if v is not None]
    if not measured:
        return Check(label, backend, "not measured", None)
    value, _ = max(measured, key=lambda vf: vf[0])
    return Check(label, backend, f"{value:,.0f} deliveries/s", value >= 2000)


def _ack(figures: list[Figure], backend: str) -> Check:
    label = "ack-to-queryable: 0 ms (readable at the first read after its 2xx)"
    fractions = [
        (name, f.median(name), f)
        for f in figures
        for name in sorted({n for run in f.runs for n in run if n.endswith("_fraction")})
    ]
    measured = [(n, v, f) for n, v, f in fractions if v is not None]
    if not measured:
        return Check(label, backend, "not measured", None)
    worst = min(v for _, v, _ in measured)
    reads = [f.median("p99_ms") for f in figures if f.median("p99_ms") is not None]
    text = f"{worst:.2%} visible at the first read"
    if reads:
        text += f"; that read's p99 {max(r for r in reads if r is not None):.2f} ms"
    return Check(label, backend, text, worst >= 1.0)


def _memory(figures: list[Figure], backend: str) -> Check:
    """The highest resident memory sampled under load (`rss_max_mb` of any run); else the
    process's peak (VmHWM), which includes its start-up."""
    label = f"memory: server RSS < {RSS_TARGET_MB:.0f} MB under load"
    mine = [f for f in figures if f.role == "eventyard"]
    sampled = [(r["rss_max_mb"], f) for f in mine for r in f.runs if "rss_max_mb" in r]
    peaks = [(float(f.extra["peak_rss_mb"]), f) for f in mine if f.extra.get("peak_rss_mb")]
    if sampled:
        top, figure = max(sampled, key=lambda vf: vf[0])
        text = f"{top:.0f} MB at most during the loads ({figure.scenario})"
        if peaks:
            text += f"; VmHWM {max(p for p, _ in peaks):.0f} MB, start-up included"
        return Check(label, backend, text, top < RSS_TARGET_MB)
    if not peaks:
        return Check(label, backend, "not measured", None)
    peak, figure = max(peaks, key=lambda pf: pf[0])
    return Check(label, backend, f"VmHWM {peak:.0f} MB ({figure.scenario})", peak < RSS_TARGET_MB)


# --- the documents -----------------------------------------------------------------------


def to_json(
    header: dict[str, Any], results: list[ScenarioResult], notes: list[str]
) -> dict[str, Any]:
    return {
        **header,
        "scenarios": [
            {
                "name": r.name,
                "backend": r.backend,
                "seconds": round(r.seconds, 1),
                "error": r.error,
                "notes": r.notes,
                "figures": [figure_json(r, f) for f in r.figures],
            }
            for r in results
        ],
        "summary": [c.__dict__ for c in checks(results)],
        "notes": notes,
    }


def _format(name: str, value: float | None) -> str:
    if value is None:
        return ""
    if name.endswith("_ms"):
        return f"{value:.2f} ms"
    if name.endswith("_fraction"):
        return f"{value:.2%}"
    if name.endswith("_mb"):
        return f"{value:.0f} MB"
    return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"


def _column(name: str) -> str:
    for suffix in ("_ms", "_fraction", "_mb"):
        name = name.removesuffix(suffix)
    return name.replace("_", " ")


def scenario_table(results: list[ScenarioResult]) -> str:
    """One table: every figure of one scenario, on every backend."""
    figures = [(r, f) for r in results for f in r.figures if f.runs]
    extra_names = sorted({n for _, f in figures for n in _numeric(f)} - set(_SHOWN) - _HIDDEN)
    memory = any(f.extra.get("peak_rss_mb") is not None for _, f in figures)
    head = ["database", "measured", "server", "figure", "p50", "p99"]
    head += [_column(n) for n in extra_names]
    head += ["RSS / peak"] if memory else []
    head += ["vs ceiling, same run", "errors", "each run"]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("--:" if h in ("figure", "p50", "p99") else "---" for h in head) + "|",
    ]
    for result, f in figures:
        server = f"**{f.target}**" if f.role == "eventyard" else f.target
        vs = ", ".join(
            f"**{c.ratio:.0%}** of {c.ceiling.target}" + ("" if c.paired else " (medians)")
            for c in comparisons(result, f)
        )
        count = errors(f)
        cells = [
            result.backend,
            f.scenario,
            server,
            f"{f.median('rate') or 0:,.0f} {f.unit}",
            _format("p50_ms", f.median("p50_ms")),
            _format("p99_ms", f.median("p99_ms")),
            *[_format(n, f.median(n)) for n in extra_names],
        ]
        if memory:
            rss, peak = f.extra.get("rss_mb"), f.extra.get("peak_rss_mb")
            cells.append(f"{rss:.0f} / {peak:.0f} MB" if rss and peak else "")
        cells += [
            vs or "—",
            f"**{count:,} ⚠**" if count else "0",
            ", ".join(f"{run.get('rate', 0):,.0f}" for run in f.runs),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_table(results: list[ScenarioResult]) -> str:
    lines = ["| target | database | measured | result |", "|---|---|---|---|"]
    marks: dict[bool | None, str] = {True: "pass", False: "**FAIL**", None: "—"}
    for c in checks(results):
        lines.append(f"| {c.target} | {c.backend} | {c.measured} | {marks[c.ok]} |")
    return "\n".join(lines)


def tables(results: list[ScenarioResult]) -> str:
    out: list[str] = []
    names = list(dict.fromkeys(r.name for r in results))
    for name in names:
        mine = [r for r in results if r.name == name]
        out += ["", f"### {name}: {TITLES.get(name, name)}", ""]
        if any(f.runs for r in mine for f in r.figures):
            out.append(scenario_table(mine))
        for r in mine:
            if r.error:
                out.append(f"\n- ⚠ {r.backend}: the scenario did not finish: {r.error}")
    return "\n".join(out).lstrip("\n")


def markdown_report(header: dict[str, Any], results: list[ScenarioResult], notes: list[str]) -> str:
    machine, settings = header["machine"], header["settings"]
    out = [
        "# eventyard benchmark",
        "",
        f"- command: `{header['command']}`",
        f"- when: {header['generated_at']}, {header.get('elapsed_s', 0) / 60:.1f} minutes",
        f"- eventyard: {header['eventyard_source']}",
        f"- machine: {machine['nproc']} CPUs, {machine['cpu_model']}; kernel"
        f" {machine['kernel']}; Python {machine['python']}; SQLite {machine['sqlite']};"
        f" PostgreSQL {machine.get('postgres') or '-'}; {machine.get('wrk') or 'wrk ?'};"
        f" nginx {machine.get('nginx') or '-'}",
        f"- load: wrk `-t{settings['threads']} -c{settings['connections']}"
        f" -d{settings['duration_s']}s`, {settings['runs']} runs after a"
        f" {settings['warmup_s']} s warm-up, alternating between the servers of a scenario;"
        f" medians shown; servers pinned to CPU {settings['server_cpu']}, load to CPU"
        f" {settings['load_cpu']}",
        f"- load average (1 min) before / after: {machine['loadavg_before']} /"
        f" {machine['loadavg_after']}",
        "",
        "## Issue 7's targets",
        "",
        summary_table(results),
        "",
        "## Scenarios",
        "",
        tables(results),
    ]
    if notes:
        out += ["", "## Notes", "", *[f"- {note}" for note in notes]]
    return "\n".join(out) + "\n"
