"""Counters and histograms in the Prometheus text format (0.0.4), cheap enough for the hot path.

A process counts what it does itself — requests by route and status, events ingested, group
commits, webhook attempts — in plain Python numbers: one thread writes each metric (the event
loop, or the writer thread for commits), so an observation is a dictionary lookup and two
additions, with no lock. A scrape reads them as they are; one that lands mid-observation may
see a histogram's count one ahead of its buckets, which Prometheus tolerates.

Label values come from a closed set (route templates, never raw paths; known methods; status
codes), so a client cannot grow the number of series by sending odd requests.
"""

from __future__ import annotations

import os
from bisect import bisect_left
from collections.abc import Iterable
from typing import Any

from eventyard.logs import access_log

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SIZE_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Histogram:
    """Observations counted into fixed buckets (upper bounds, ascending)."""

    __slots__ = ("bounds", "count", "counts", "sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last one: above every bound (+Inf)
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str, labels: str = "") -> list[str]:
        """The `_bucket` (cumulative), `_sum` and `_count` lines; `labels` like `a="b",`."""
        out = []
        total = 0
        for bound, n in zip(self.bounds, self.counts, strict=False):
            total += n
            out.append(f'{name}_bucket{{{labels}le="{bound}"}} {total}')
        out.append(f'{name}_bucket{{{labels}le="+Inf"}} {total + self.counts[-1]}')
        plain = labels.rstrip(",")
        braces = f"{{{plain}}}" if plain else ""
        out.append(f"{name}_sum{braces} {self.sum:.6f}")
        out.append(f"{name}_count{braces} {self.count}")
        return out


class HistogramFamily:
    """Histograms with the same buckets, one per set of label values (a tuple or a str)."""

    __slots__ = ("bounds", "by_labels")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.by_labels: dict[Any, Histogram] = {}

    def observe(self, key: Any, value: float) -> None:
        histogram = self.by_labels.get(key)
        if histogram is None:
            histogram = self.by_labels[key] = Histogram(self.bounds)
        histogram.observe(value)


def header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def label(value: str) -> str:
    """A label value escaped for the text format."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def labels(**pairs: str | int) -> str:
    """`a="1",b="2",` (with the trailing comma `Histogram.lines` wants)."""
    return "".join(f'{k}="{label(str(v))}",' for k, v in pairs.items())


def sample(name: str, value: float, **pairs: str | int) -> str:
    inner = labels(**pairs).rstrip(",")
    return f"{name}{{{inner}}} {value}" if inner else f"{name} {value}"


class RequestMetrics:
    """HTTP requests by method, route template and status, and their latency by route."""

    def __init__(self) -> None:
        self.requests: dict[tuple[str, str, int], int] = {}
        self.latency = HistogramFamily(LATENCY_BUCKETS)

    def observe(self, method: str, route: str | None, status: int, seconds: float) -> None:
        if method not in METHODS:
            method = "other"
        template = route or "unmatched"
        key = (method, template, status)
        self.requests[key] = self.requests.get(key, 0) + 1
        self.latency.observe((method, template), seconds)

    def render(self) -> list[str]:
        out = header(
            "eventyard_http_requests_total",
            "counter",
            "HTTP requests by method, route template and status.",
        )
        for (method, route, status), n in sorted(self.requests.items()):
            out.append(
                sample(
                    "eventyard_http_requests_total", n, method=method, route=route, status=status
                )
            )
        out += header(
            "eventyard_http_request_seconds",
            "histogram",
            "How long requests took, from routing to the last byte handed to the server.",
        )
        for (method, route), histogram in sorted(self.latency.by_labels.items()):
            out += histogram.lines(
                "eventyard_http_request_seconds", labels(method=method, route=route)
            )
        access = access_log()
        out += header(
            "eventyard_access_log_dropped_total",
            "counter",
            "Access lines dropped because the log's stream (standard error) did not keep up.",
        )
        out.append(sample("eventyard_access_log_dropped_total", access.dropped if access else 0))
        return out


class IngestMetrics:
    """Events ingested by source and outcome, and how many events each batch carried."""

    def __init__(self) -> None:
        self.events: dict[tuple[str, str], int] = {}
        self.batch_sizes = HistogramFamily(SIZE_BUCKETS)

    def observe(self, source: str, outcomes: Iterable[str], batch: int | None) -> None:
        """One ingest call: each item's outcome (accepted, duplicate, rejected); `batch`,
        the number of items, when they came as a batch."""
        for outcome in outcomes:
            key = (source, outcome)
            self.events[key] = self.events.get(key, 0) + 1
        if batch is not None:
            self.batch_sizes.observe(source, batch)

    def render(self) -> list[str]:
        out = header(
            "eventyard_events_total",
            "counter",
            "Events by the API they came through and outcome (accepted, duplicate, rejected).",
        )
        for (source, outcome), n in sorted(self.events.items()):
            out.append(sample("eventyard_events_total", n, source=source, outcome=outcome))
        out += header("eventyard_batch_events", "histogram", "Events per batch request, by source.")
        for source, histogram in sorted(self.batch_sizes.by_labels.items()):
            out += histogram.lines("eventyard_batch_events", labels(source=source))
        return out


def process_resident_bytes() -> int | None:
    """This process's resident memory, from /proc (Linux); None elsewhere."""
    try:
        with open("/proc/self/statm", "rb") as f:
            resident_pages = int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE")
