"""The numbers behind `GET /v1/stats` and the dashboard's overview, read once for both.

A window is a row of equal time buckets aligned to the clock (whole minutes, whole quarter
hours), ending with the bucket that holds "now": the hour is 60 one-minute buckets, the day
96 fifteen-minute buckets. Aligned buckets keep their edges from one refresh to the next, so
a chart does not shimmer as time passes; the window is therefore up to one bucket shorter
than its name (the current bucket is still filling). Counts are exact events per bucket;
the day's per-minute rates are those counts divided by 15 — an average, not a peak.

Events are counted by event time (see `store/stats.py` for why). Delivery numbers cover the
consumers that exist now, over the same window; the pending backlog is as of now.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from eventyard.clock import Clock
from eventyard.domain.models import Consumer, Principal
from eventyard.errors import InvalidRequest
from eventyard.services.events import kept_from_id
from eventyard.store import Store
from eventyard.store import consumers as consumer_sql
from eventyard.store import stats as stats_sql
from eventyard.store import triggers as trigger_sql
from eventyard.store.consumer_health import ConsumerHealth, consumer_health
from eventyard.store.db import Db

_US = 1_000_000


class Window(StrEnum):
    HOUR = "hour"
    DAY = "day"


# Per window: (seconds per bucket, number of buckets).
WINDOWS: dict[Window, tuple[int, int]] = {
    Window.HOUR: (60, 60),
    Window.DAY: (900, 96),
}


def parse_window(raw: str | None) -> Window:
    """The `window` a caller asked for (hour when none), or a 400 naming the choices."""
    if raw is None or raw == "":
        return Window.HOUR
    try:
        return Window(raw)
    except ValueError:
        allowed = ", ".join(w.value for w in Window)
        raise InvalidRequest(f"window must be one of: {allowed}; got {raw[:32]!r}.") from None


@dataclass(frozen=True)
class TriggerSeries:
    trigger: str
    name: str  # the trigger's name, or its id when the trigger row is gone
    counts: tuple[int, ...]  # events per bucket, oldest bucket first

    @property
    def total(self) -> int:
        return sum(self.counts)


@dataclass(frozen=True)
class ConsumerStats:
    consumer: Consumer
    health: ConsumerHealth
    failing_deliveries: int  # transactions with a failure in the window, each once

    @property
    def failures(self) -> int:
        """Failed outcomes in the window: webhook attempts not answered 2xx, else
        transactions set to `failed`."""
        if self.health.attempts:
            return self.health.attempts - self.health.attempts_ok
        return self.health.failed


@dataclass(frozen=True)
class Stats:
    window: Window
    bucket_seconds: int
    start: int  # µs: the first bucket's start
    now: int  # µs: when these numbers were read
    triggers: list[TriggerSeries]  # busiest first, only those with events in the window
    consumers: list[ConsumerStats]  # by name

    @property
    def buckets(self) -> list[int]:
        """Each bucket's start, µs."""
        _, count = WINDOWS[self.window]
        step = self.bucket_seconds * _US
        return [self.start + i * step for i in range(count)]

    @property
    def bucket_minutes(self) -> int:
        return self.bucket_seconds // 60

    @property
    def totals(self) -> list[int]:
        """Events per bucket, all triggers together."""
        if not self.triggers:
            return [0] * len(self.buckets)
        return [sum(column) for column in zip(*(s.counts for s in self.triggers), strict=True)]

    @property
    def total(self) -> int:
        return sum(s.total for s in self.triggers)

    @property
    def pending_backlog(self) -> int:
        return sum(c.health.pending for c in self.consumers)

    @property
    def failing_deliveries(self) -> int:
        return sum(c.failing_deliveries for c in self.consumers)

    @property
    def oldest_pending_at(self) -> int | None:
        times = [c.health.oldest_pending_at for c in self.consumers]
        known = [t for t in times if t is not None]
        return min(known) if known else None


async def read_stats(store: Store, clock: Clock, principal: Principal, window: Window) -> Stats:
    """The project's and environment's numbers over `window`, in one database read."""
    bucket_seconds, count = WINDOWS[window]
    step = bucket_seconds * _US
    now = clock.now_us()
    start = (now // step) * step - (count - 1) * step
    since = now - count * step  # delivery outcomes: the window's full length back from now
    project_id, env = principal.project_id, principal.environment
    kept = kept_from_id(principal.project, now)

    def read(db: Db) -> Stats:
        counts = stats_sql.event_counts(
            db,
            project_id,
            env,
            start=start,
            bucket_us=step,
            buckets=count,
            now=now,
            kept_from_id=kept,
        )
        series: dict[str, list[int]] = {}
        for row in counts:
            series.setdefault(row.trigger, [0] * count)[row.bucket] = row.count
        names = {
            t.id: t.name
            for t in trigger_sql.list_triggers(db, project_id, include_archived=True)
            if t.id in series
        }
        triggers = [
            TriggerSeries(trigger, names.get(trigger, trigger), tuple(values))
            for trigger, values in series.items()
        ]
        triggers.sort(key=lambda s: (-s.total, s.trigger))
        health = consumer_health(db, project_id, env, since)
        failing = stats_sql.failing_deliveries(db, project_id, env, since)
        consumers = [
            ConsumerStats(c, health.get(c.id, ConsumerHealth()), failing.get(c.id, 0))
            for c in consumer_sql.list_consumers(db, project_id, env)
        ]
        consumers.sort(key=lambda c: (c.consumer.name.lower(), c.consumer.id))
        return Stats(window, bucket_seconds, start, now, triggers, consumers)

    return await store.read(read)
