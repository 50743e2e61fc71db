"""Delivery metrics in the Prometheus text format: webhook attempts by outcome, and their
latency.

They live in the process that sends (the worker); a process that runs no worker shows them
at zero. What is waiting per consumer (the backlog) is read from the database at scrape time
instead (`services/telemetry.py`), so it is true whichever process serves `/metrics`.
"""

from __future__ import annotations

from collections import Counter

from eventyard.metrics import Histogram, header

# A webhook attempt's seconds, up to a long timeout (30 s); not `metrics.LATENCY_BUCKETS`
# (requests and commits), which stops at 10 s.
WEBHOOK_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
OUTCOMES = ("success", "retry", "failed", "blocked")


class DeliveryMetrics:
    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self.latency = Histogram(WEBHOOK_LATENCY_BUCKETS)

    def observe(self, outcome: str, duration_seconds: float) -> None:
        """Count one attempt: outcome is `success`, `retry`, `failed` or `blocked`."""
        self.outcomes[outcome] += 1
        self.latency.observe(duration_seconds)

    def render(self) -> list[str]:
        lines = header(
            "eventyard_webhook_attempts_total", "counter", "Webhook attempts by outcome."
        )
        for outcome in OUTCOMES:
            lines.append(
                f'eventyard_webhook_attempts_total{{outcome="{outcome}"}} {self.outcomes[outcome]}'
            )
        lines += header(
            "eventyard_webhook_attempt_seconds", "histogram", "How long webhook attempts took."
        )
        return lines + self.latency.lines("eventyard_webhook_attempt_seconds")
