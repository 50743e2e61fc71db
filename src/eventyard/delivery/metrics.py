"""Delivery metrics in the Prometheus text format.

Counters and the latency histogram live in the process that sends (the worker); the age of
the oldest pending transaction per consumer is read from the database at scrape time, so it
is true whichever process serves `/metrics`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from eventyard.store.db import Row

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class DeliveryMetrics:
    def __init__(self) -> None:
        self.outcomes: Counter[str] = Counter()
        self._bucket_counts = [0] * len(LATENCY_BUCKETS)
        self._count = 0
        self._sum = 0.0

    def observe(self, outcome: str, duration_seconds: float) -> None:
        """Count one attempt: outcome is `success`, `retry`, `failed` or `blocked`."""
        self.outcomes[outcome] += 1
        self._count += 1
        self._sum += duration_seconds
        for i, bound in enumerate(LATENCY_BUCKETS):
            if duration_seconds <= bound:
                self._bucket_counts[i] += 1

    def render(self, pending: Iterable[Row], now_us: int) -> str:
        lines = [
            "# HELP eventyard_webhook_attempts_total Webhook attempts by outcome.",
            "# TYPE eventyard_webhook_attempts_total counter",
        ]
        for outcome in ("success", "retry", "failed", "blocked"):
            lines.append(
                f'eventyard_webhook_attempts_total{{outcome="{outcome}"}} {self.outcomes[outcome]}'
            )
        lines += [
            "# HELP eventyard_webhook_attempt_seconds How long webhook attempts took.",
            "# TYPE eventyard_webhook_attempt_seconds histogram",
        ]
        for bound, count in zip(LATENCY_BUCKETS, self._bucket_counts, strict=True):
            lines.append(f'eventyard_webhook_attempt_seconds_bucket{{le="{bound}"}} {count}')
        lines += [
            f'eventyard_webhook_attempt_seconds_bucket{{le="+Inf"}} {self._count}',
            f"eventyard_webhook_attempt_seconds_sum {self._sum:.6f}",
            f"eventyard_webhook_attempt_seconds_count {self._count}",
            "# HELP eventyard_oldest_pending_seconds Age of the oldest pending transaction.",
            "# TYPE eventyard_oldest_pending_seconds gauge",
        ]
        backlog = [
            "# HELP eventyard_pending_transactions Pending transactions.",
            "# TYPE eventyard_pending_transactions gauge",
        ]
        for row in pending:
            consumer = row["consumer_id"]
            age = max(0.0, (now_us - int(row["oldest"])) / 1_000_000)
            lines.append(f'eventyard_oldest_pending_seconds{{consumer="{consumer}"}} {age:.3f}')
            backlog.append(
                f'eventyard_pending_transactions{{consumer="{consumer}"}} {row["pending"]}'
            )
        return "\n".join(lines + backlog) + "\n"
