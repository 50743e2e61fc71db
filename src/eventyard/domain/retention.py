"""How long an event is kept: a project's retention and an event's own TTL.

An event is gone, for every read, once its `expires_at` (a TTL, Buildable's `ttl`) has passed
or once it was received longer ago than its project's `retention_days`. Retention counts from
the time the server received the event, which is the time in its id (ids are time-sortable;
see `eventyard.ids`), not from the event time a client may set to anything: the id is what
the PostgreSQL partitions are ranged on, so "older than the retention" is one id bound that
reads check in index entries, prunes partitions, and matches what a dropped partition took.
"""

from __future__ import annotations

MIN_RETENTION_DAYS = 1
MAX_RETENTION_DAYS = 36_500  # a hundred years; the same bound as Buildable's ttl
DAY_US = 86_400 * 1_000_000


def kept_from_us(retention_days: int | None, now_us: int) -> int | None:
    """The receipt time from which a project's events are kept; None when kept forever."""
    if retention_days is None:
        return None
    return now_us - retention_days * DAY_US


def longest_kept_from_us(retentions: list[int | None], now_us: int) -> int | None:
    """The receipt time before which no project keeps anything: the bound of the longest
    retention, None when any project keeps its events forever (or there is no project)."""
    if not retentions or any(days is None for days in retentions):
        return None
    return kept_from_us(max(d for d in retentions if d is not None), now_us)
