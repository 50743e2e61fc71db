"""Charts as geometry: the overview's inline SVG is drawn by its template from these numbers.

Nothing here writes markup. A chart is computed in a fixed coordinate box (the SVG's
viewBox), so the browser scales it to any width; the template draws rectangles and text at
the positions given, with colours from CSS classes (`series-0` … `series-5`,
`series-other`), because the dashboard's Content-Security-Policy forbids inline styles.
The busiest triggers get a colour each and the rest share "other"; the colours are chosen
once for the page, so a trigger keeps its colour from the hour's chart to the day's.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

from eventyard.services.stats import Stats

TOP_SERIES = 6
OTHER = "other"
OTHER_CSS = "series-other"

# The viewBox of a column chart; margins hold the axis labels.
WIDTH, HEIGHT = 720, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 8, 14, 34
TICKS = 4  # about this many steps up the y axis


@dataclass(frozen=True)
class Segment:
    y: float
    height: float
    css: str


@dataclass(frozen=True)
class Column:
    x: float
    width: float
    tooltip: str
    segments: list[Segment]


@dataclass(frozen=True)
class Tick:
    position: float
    label: str
    minor: bool = False  # left out at phone width, where the labels would collide


@dataclass(frozen=True)
class LegendItem:
    label: str
    css: str
    total: int


@dataclass(frozen=True)
class ColumnChart:
    id: str
    title: str
    desc: str
    unit: str
    columns: list[Column]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    legend: list[LegendItem]
    table_head: list[str]
    table_rows: list[list[str]]  # only buckets with events
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    right: int = WIDTH - RIGHT


def pick_series(ranked: Sequence[tuple[str, str]], top: int = TOP_SERIES) -> dict[str, str]:
    """CSS class per trigger id for the `top` busiest, given (id, name) busiest first."""
    return {trigger: f"series-{i}" for i, (trigger, _) in enumerate(ranked[:top])}


def nice_step(value: float) -> float:
    """The smallest 1, 2 or 5 times a power of ten at or above `value` (1 for nothing)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if value <= step * power + 1e-9:
            return float(step * power)
    return float(10 * power)  # pragma: no cover - the loop always returns


def _number(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:g}k"
    if value == int(value):
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def _clock(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.UTC).strftime("%H:%M")


def events_chart(stats: Stats, colours: dict[str, str], chart_id: str) -> ColumnChart:
    """A stacked column per bucket: events per minute, one colour per busy trigger."""
    minutes = stats.bucket_minutes
    names = {s.trigger: s.name for s in stats.triggers}
    groups: dict[str, list[int]] = {}  # css class → counts, in legend order
    labels: dict[str, str] = {}
    for series in stats.triggers:
        css = colours.get(series.trigger, OTHER_CSS)
        labels.setdefault(css, names[series.trigger] if css != OTHER_CSS else "Other triggers")
        counts = groups.setdefault(css, [0] * len(series.counts))
        for i, n in enumerate(series.counts):
            counts[i] += n
    order = sorted(groups, key=lambda css: (css == OTHER_CSS, css))
    buckets = stats.buckets
    totals = stats.totals
    peak = max(totals, default=0) / minutes
    step = nice_step(peak / TICKS)
    if minutes == 1:
        step = max(step, 1.0)  # whole events: no fractional ticks
    top_value = step * max(1, math.ceil(peak / step - 1e-9))
    plot_h = HEIGHT - BOTTOM - TOP
    plot_w = WIDTH - RIGHT - LEFT
    slot = plot_w / len(buckets)
    gap = 2.0 if slot > 8 else 1.0
    scale = plot_h / top_value / minutes  # user units per event in a bucket
    per = "minute" if minutes == 1 else f"{minutes} minutes"
    columns: list[Column] = []
    for i, start in enumerate(buckets):
        y = float(HEIGHT - BOTTOM)
        segments: list[Segment] = []
        parts: list[str] = []
        for css in order:
            n = groups[css][i]
            if not n:
                continue
            h = n * scale
            y -= h
            segments.append(Segment(round(y, 2), round(h, 2), css))
            parts.append(f"{labels[css]} {n:,}")
        when = f"{_clock(start)} to {_clock(start + stats.bucket_seconds * 1_000_000)} UTC"
        detail = f": {', '.join(parts)}" if parts else ""
        tooltip = f"{when}, {totals[i]:,} events{detail}"
        columns.append(Column(round(LEFT + i * slot + gap / 2, 2), slot - gap, tooltip, segments))
    y_ticks = [
        Tick(round(HEIGHT - BOTTOM - plot_h * k * step / top_value, 2), _number(k * step))
        for k in range(round(top_value / step) + 1)
    ]
    every = 10 if minutes == 1 else 12  # ten minutes; three hours
    step_us = stats.bucket_seconds * 1_000_000
    x_ticks = [  # on round times of the clock: every ten minutes, every three hours
        Tick(round(LEFT + i * slot, 2), _clock(start), minor=(start // step_us // every) % 2 == 1)
        for i, start in enumerate(buckets)
        if (start // step_us) % every == 0
    ]
    legend = [LegendItem(labels[css], css, sum(groups[css])) for css in order if sum(groups[css])]
    head = ["Time (UTC)", *(labels[css] for css in order), "All"]
    rows = [
        [_clock(start), *(f"{groups[css][i]:,}" for css in order), f"{totals[i]:,}"]
        for i, start in enumerate(buckets)
        if totals[i]
    ]
    span = "hour" if stats.window.value == "hour" else "24 hours"
    busiest = max(range(len(totals)), key=lambda i: totals[i]) if any(totals) else None
    desc = f"{stats.total:,} events in the last {span}, counted per {per} by event time."
    if busiest is not None:
        desc += (
            f" The busiest {per} began at {_clock(buckets[busiest])} UTC with "
            f"{totals[busiest]:,} events."
        )
    if legend:
        desc += " By trigger: " + "; ".join(f"{item.label} {item.total:,}" for item in legend)
        desc += "."
    unit = "events / min" if minutes == 1 else f"events / min, {minutes}-min average"
    return ColumnChart(
        id=chart_id,
        title=f"Events per minute, last {span}",
        desc=desc,
        unit=unit,
        columns=columns,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        legend=legend,
        table_head=head,
        table_rows=rows,
    )


@dataclass(frozen=True)
class ConsumerRow:
    id: str
    name: str
    kind: str
    state: str
    success_percent: float | None  # 0..100, None when nothing happened in the window
    success_label: str
    health_css: str  # health-ok, health-warn, health-bad or health-none
    pending: int
    pending_width: float  # 0..100: this consumer's share of the largest backlog
    oldest_pending_at: int | None
    failing: int
    attempts: int


def health_class(percent: float | None) -> str:
    if percent is None:
        return "health-none"
    if percent >= 99:
        return "health-ok"
    return "health-warn" if percent >= 90 else "health-bad"


def consumer_rows(stats: Stats) -> list[ConsumerRow]:
    """One row per consumer, with its success-rate bar and its share of the backlog."""
    largest = max((c.health.pending for c in stats.consumers), default=0)
    rows: list[ConsumerRow] = []
    for c in stats.consumers:
        rate = c.health.success_rate
        percent = None if rate is None else round(rate * 100, 1)
        rows.append(
            ConsumerRow(
                id=c.consumer.id,
                name=c.consumer.name,
                kind=c.consumer.kind.value,
                state=c.consumer.state.value,
                success_percent=percent,
                success_label="no deliveries" if percent is None else f"{percent:g}%",
                health_css=health_class(percent),
                pending=c.health.pending,
                pending_width=round(100 * c.health.pending / largest, 1) if largest else 0.0,
                oldest_pending_at=c.health.oldest_pending_at,
                failing=c.failing_deliveries,
                attempts=c.health.attempts,
            )
        )
    return rows
