"""`/metrics`: what this process counted, and what waits in the database, as Prometheus text.

Counters and histograms are per process (requests, events, group commits, webhook attempts,
memory): with several processes, Prometheus scrapes each one and sums. The backlog per
consumer is read from the database at scrape time, in one grouped query over the open
transactions only (`store/status.py`), so it is the same whichever process answers.
"""

from __future__ import annotations

import hmac

from eventyard.clock import Clock
from eventyard.delivery.metrics import DeliveryMetrics
from eventyard.errors import Unauthenticated
from eventyard.metrics import IngestMetrics, RequestMetrics, header, process_resident_bytes
from eventyard.store import Store
from eventyard.store import status as status_sql

_US = 1_000_000


class Telemetry:
    def __init__(
        self,
        store: Store,
        clock: Clock,
        delivery: DeliveryMetrics,
        ingest: IngestMetrics,
        token: str = "",
    ) -> None:
        self._store = store
        self._clock = clock
        self._delivery = delivery
        self._ingest = ingest
        self._token = token.encode()
        self.requests = RequestMetrics()

    def check_token(self, presented: str | None) -> None:
        """With `metrics_token` set, refuse a scrape that does not present it."""
        if not self._token:
            return
        if presented is None or not hmac.compare_digest(presented.encode(), self._token):
            raise Unauthenticated(
                "/metrics needs Authorization: Bearer with the token set in "
                "EVENTYARD_METRICS_TOKEN.",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )

    async def render(self) -> str:
        now = self._clock.now_us()
        backlogs, consumers = await self._store.read(
            lambda db: (status_sql.all_backlogs(db, now), status_sql.consumer_ids(db))
        )
        lines = self.requests.render() + self._ingest.render() + self._writer_lines()
        lines += self._delivery.render()
        oldest = header(
            "eventyard_oldest_pending_seconds",
            "gauge",
            "Age of each consumer's oldest transaction not yet finished or failed.",
        )
        pending = header(
            "eventyard_pending_transactions",
            "gauge",
            "Transactions not yet finished or failed, per consumer (its backlog).",
        )
        in_flight = header(
            "eventyard_inflight_transactions",
            "gauge",
            "Transactions held right now, per consumer: webhook deliveries under lease, or "
            "claimed by a pull consumer (processing).",
        )
        due_lag = header(
            "eventyard_delivery_due_lag_seconds",
            "gauge",
            "How long the longest-waiting due delivery nobody holds has waited, per consumer "
            "(0 when the worker keeps up).",
        )
        for consumer_id in sorted(set(consumers) | set(backlogs)):
            tag = f'{{consumer="{consumer_id}"}}'
            b = backlogs.get(consumer_id)
            if b is None:  # nothing open: zeros, not a gap
                b = status_sql.Backlog(consumer_id, 0, 0, now, None)
            oldest.append(f"eventyard_oldest_pending_seconds{tag} {_age(now, b.oldest_created_at)}")
            pending.append(f"eventyard_pending_transactions{tag} {b.open}")
            in_flight.append(f"eventyard_inflight_transactions{tag} {b.in_flight}")
            waited = 0.0 if b.oldest_due_at is None else _age(now, b.oldest_due_at)
            due_lag.append(f"eventyard_delivery_due_lag_seconds{tag} {waited}")
        lines += oldest + pending + in_flight + due_lag + _process_lines()
        return "\n".join(lines) + "\n"

    def _writer_lines(self) -> list[str]:
        stats = self._store.writer.stats
        return [
            *header(
                "eventyard_commit_seconds",
                "histogram",
                "How long each group commit took (begin, the group's statements, commit).",
            ),
            *stats.commit_seconds.lines("eventyard_commit_seconds"),
            *header("eventyard_commit_group_ops", "histogram", "Writes per group commit."),
            *stats.group_ops.lines("eventyard_commit_group_ops"),
        ]


def _age(now: int, then: int) -> float:
    return round(max(0, now - then) / _US, 3)


def _process_lines() -> list[str]:
    rss = process_resident_bytes()
    if rss is None:
        return []
    return [
        *header("process_resident_memory_bytes", "gauge", "Resident memory size in bytes."),
        f"process_resident_memory_bytes {rss}",
    ]
