"""The numbers behind `GET /v1/status`: how far behind is each consumer of a project, now?

Ingest has no lag to report: an event is answered 2xx only after the commit that stores it,
and a read that starts after the answer sees that commit, so the time from ingest to
queryable is zero by design, not a measurement.

Per consumer it reports the backlog (open transactions, and how many are held right now), the
oldest open transaction, and two lags:

- *due lag*: how long the longest-waiting delivery that is due and that nobody holds has
  waited — 0 while the worker keeps up; it grows when no worker runs or all are busy;
- *first-attempt lag* (webhook consumers): p50 and p99, over the first attempts of the last
  `LAG_WINDOW_S` seconds (the newest 5,000 at most), of the time from the transaction's
  creation (the event's commit) to the end of its first attempt — what a receiver sees. The
  sample is read from the consumer's own transactions of the events received in the last
  `LAG_EVENTS_S` seconds, so its cost follows the project's volume rather than the whole
  server's: a first attempt made more than `LAG_EVENTS_S - LAG_WINDOW_S` after its event (a
  backlog that old, or a replay of an older event) is not in it; the due lag shows such a
  wait while it lasts.

And whether a delivery worker runs at all (`delivery/presence.py`), since a due lag that
grows with no worker running needs a different remedy than one with busy workers.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eventyard.clock import Clock
from eventyard.delivery.presence import worker_running
from eventyard.domain.models import Consumer, ConsumerKind, Principal
from eventyard.store import Store
from eventyard.store import consumers as consumer_sql
from eventyard.store import status as status_sql
from eventyard.store.db import Db
from eventyard.store.status import Backlog, OldestOpen

LAG_WINDOW_S = 15 * 60
LAG_EVENTS_S = 60 * 60  # the first-attempt lag reads transactions of events this recent
INGEST_TO_QUERYABLE_WHY = (
    "An event is answered 2xx only after the commit that stores it, and every read that "
    "starts after that answer sees it: there is no indexing delay to wait for."
)


@dataclass(frozen=True)
class Lag:
    attempts: int
    p50_us: int
    p99_us: int


@dataclass(frozen=True)
class ConsumerStatus:
    consumer: Consumer
    pending: int  # open: not yet finished or failed
    in_flight: int
    oldest: OldestOpen | None
    due_lag_us: int
    first_attempt_lag: Lag | None


@dataclass(frozen=True)
class Status:
    now: int
    consumers: list[ConsumerStatus]  # by name
    worker_running: bool  # any delivery worker on this database, in any process


def percentile(sorted_values: list[int], share: float) -> int:
    """The nearest-rank percentile of a sorted, non-empty list."""
    rank = max(1, math.ceil(share * len(sorted_values)))
    return sorted_values[rank - 1]


def _lag(values: list[int] | None) -> Lag | None:
    if not values:
        return None
    ordered = sorted(values)
    return Lag(len(ordered), percentile(ordered, 0.5), percentile(ordered, 0.99))


async def read_status(store: Store, clock: Clock, principal: Principal) -> Status:
    """The key's project and environment, as of now, in one database read."""
    now = clock.now_us()
    project_id, env = principal.project_id, principal.environment
    since = now - LAG_WINDOW_S * 1_000_000
    events_from_ms = (now - LAG_EVENTS_S * 1_000_000) // 1000

    def read(db: Db) -> Status:
        backlogs = status_sql.project_backlogs(db, project_id, env, now)
        consumers = consumer_sql.list_consumers(db, project_id, env)
        hooks = [c.id for c in consumers if c.kind is ConsumerKind.WEBHOOK]
        lags = status_sql.first_attempt_lags(db, hooks, since, events_from_ms)
        out = []
        for consumer in consumers:
            b = backlogs.get(consumer.id) or Backlog(consumer.id, 0, 0, now, None)
            oldest = status_sql.oldest_open(db, project_id, env, consumer.id) if b.open else None
            due_lag = 0 if b.oldest_due_at is None else max(0, now - b.oldest_due_at)
            out.append(
                ConsumerStatus(
                    consumer, b.open, b.in_flight, oldest, due_lag, _lag(lags.get(consumer.id))
                )
            )
        out.sort(key=lambda c: (c.consumer.name.lower(), c.consumer.id))
        return Status(now, out, worker_running(store.url, db))

    return await store.read(read)
