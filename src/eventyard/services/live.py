"""The live feed: new events of one project and environment as they are stored.

It polls the database rather than listening to ingest, so it sees every process's events
when several `eventyard serve` share one PostgreSQL. Ids are time-ordered, so each poll
asks for the events whose id is past a floor. Two processes' ids (and one process's commit
groups) can commit slightly out of order, an older id after a newer one, so the floor
trails the present by a lookback window and a set of the ids already sent keeps the window's
re-reads from sending an event twice. A pulse from ingest in this process wakes the feed at
once; otherwise it polls every half second. One query reads at most `batch` rows; a full
page is followed by the next at once, from where it ended, until the feed is caught up.

Without `since_id` the feed starts now: what the window holds when it starts was there
before the client came and is not sent. With `since_id` (an SSE client's `Last-Event-ID`),
it sends what follows that event and also re-sends the lookback window's events at or
below it: an event of that window may have committed after the client's last read, and a
repeat (which a client drops by its id) is better than a loss.

Event ids are made in the database writer just before their commit (store/event_writes.py),
so within one process an id is visible within milliseconds of its time. The window alone
would rest on two assumptions: no commit takes longer than the window, and the clocks of the
machines agree within it. On PostgreSQL neither is needed: every commit that stores events
has `eventyard_events` notified with the lowest id it stored (to every process's LISTEN
connection, delivery/notify.py), and a feed told of an id below its window reads from that
id at its next sweep. A process gathers its commits' notifications and sends them in one
commit at most every 10 ms (PostgreSQL serializes notifying commits across all processes,
store/commit_notices.py), so each arrives within 10 ms of its commit and carries the lowest
id of the commits it stands for; a stream in another process therefore shows a commit within
about 10 ms plus `min_gap_seconds`, and at its next poll at the latest. So a late commit, or
one from a machine whose clock is behind, is still sent — as long as the commit's delay and
the clocks' difference add up to no more than `max_rewind_ms` (a minute, for both together;
past it the stream goes back a minute only and logs a warning). When the LISTEN connection
was lost, the feeds read again from the moment it went. On SQLite (one machine, one clock)
the window covers what a commit can take. The set of sent ids is trimmed as the window
moves, so replaying a long history from an old `since_id` holds no more than a window's ids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass

from eventyard.clock import Clock
from eventyard.delivery.notify import Notifier
from eventyard.domain.models import Event, Principal
from eventyard.domain.retention import kept_from_us
from eventyard.errors import ServiceUnavailable
from eventyard.ids import first_id_at, is_valid_id, last_id_at, ms_of
from eventyard.store import Store
from eventyard.store.event_feed import database_time_ms, events_after

_PRIME_PAGES = 20  # how far the start-up read of the window goes, in pages
CLOCK_WARN_MS = 1000  # a clock further from the database's than this is logged at start
logger = logging.getLogger("eventyard.live")


def is_event_id(value: str) -> bool:
    return is_valid_id(value, "evt")


@dataclass(frozen=True)
class FeedFilter:
    trigger: str | None = None
    user_id: str | None = None
    source: str | None = None


class _Follower:
    """One open stream's note of where its next sweep must start at the latest."""

    __slots__ = ("rewind",)

    def __init__(self) -> None:
        self.rewind: str | None = None


class LiveFeed:
    """Follows new events; `follow` yields lists of events, or `[]` when a heartbeat is due."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        pulse: Notifier,
        *,
        poll_seconds: float = 0.5,
        heartbeat_seconds: float = 15.0,
        lookback_ms: int = 2000,
        batch: int = 500,
        min_gap_seconds: float = 0.05,
        max_streams: int = 200,
        max_rewind_ms: int = 60_000,
    ) -> None:
        self._store = store
        self._clock = clock
        self._pulse = pulse
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.lookback_ms = lookback_ms
        self.batch = batch
        self.min_gap_seconds = min_gap_seconds  # a busy ingest pulses often: poll at most this
        self.max_streams = max_streams
        self.max_rewind_ms = max_rewind_ms
        self.open_streams = 0
        self._followers: set[_Follower] = set()
        self._warned_skew = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._pulse.bind(loop)

    async def check_clock(self) -> None:
        """Log a warning when this machine's clock is more than CLOCK_WARN_MS from the
        database's: event ids carry this clock, and streams elsewhere go back a minute at
        most for ids that commit late. Once, at start; a failed check is only logged."""
        try:
            async with asyncio.timeout(5):
                before = self._clock.now_us() // 1000
                db_ms = await self._store.read(database_time_ms)
                after = self._clock.now_us() // 1000
        except Exception:
            logger.debug("could not read the database's clock", exc_info=True)
            return
        offset_ms = db_ms - (before + after) / 2
        if abs(offset_ms) > CLOCK_WARN_MS + (after - before) / 2:
            logger.warning(
                "this machine's clock is %.1f s %s the database's: keep clocks in sync (NTP); "
                "live streams on other machines may miss events this one stores",
                abs(offset_ms) / 1000,
                "behind" if offset_ms > 0 else "ahead of",
            )

    # The CommitWatcher of delivery/notify.py: called in the LISTEN thread.
    def committed(self, lowest_id: str) -> None:
        self._pulse.call_threadsafe(self._rewind, lowest_id)

    def maybe_missed(self, since_ms: int) -> None:
        self._pulse.call_threadsafe(self._rewind, first_id_at(since_ms - self.lookback_ms))

    def _rewind(self, lowest_id: str) -> None:
        """Wake the streams; those whose window starts above `lowest_id` read from it."""
        if is_event_id(lowest_id):
            now_ms = self._clock.now_us() // 1000
            floor = last_id_at(ms_of(lowest_id) - 1)  # ids past it: all of its millisecond
            if floor < first_id_at(now_ms - self.lookback_ms):
                oldest = first_id_at(now_ms - self.max_rewind_ms)
                if floor < oldest:
                    self._warn_skew(now_ms - ms_of(lowest_id))
                    floor = oldest
                for follower in self._followers:
                    if follower.rewind is None or floor < follower.rewind:
                        follower.rewind = floor
        self._pulse.pulse()

    def _warn_skew(self, behind_ms: int) -> None:
        if not self._warned_skew:
            self._warned_skew = True
            logger.warning(
                "events committed %.1f s after their ids were made: a server's clock is "
                "behind (or a commit took that long); live streams go back %.0f s at most "
                "and may miss such events (keep the machines' clocks in sync)",
                behind_ms / 1000,
                self.max_rewind_ms / 1000,
            )

    def check_room(self) -> None:
        """Refuse a new stream when this process already follows `max_streams`."""
        if self.open_streams >= self.max_streams:
            raise ServiceUnavailable(
                f"This server process already has {self.open_streams} open event streams, "
                f"its limit (EVENTYARD_MAX_STREAMS={self.max_streams}); retry in a while.",
                headers={"Retry-After": "10"},
            )

    async def _read(
        self,
        principal: Principal,
        after: str,
        feed: FeedFilter,
        upto: str | None = None,
    ) -> list[Event]:
        project_id, env = principal.project_id, principal.environment
        now, limit = self._clock.now_us(), self.batch
        kept = kept_from_us(principal.project.retention_days, now)
        if kept is not None:  # a replay from an old Last-Event-ID: not past retention
            after = max(after, first_id_at(kept // 1000))
        return await self._store.read(
            lambda db: events_after(
                db,
                project_id,
                env,
                after,
                now=now,
                limit=limit,
                upto_id=upto,
                trigger=feed.trigger,
                user_id=feed.user_id,
                source=feed.source,
            )
        )

    def _window(self, high: str) -> str:
        """Where a sweep starts: the lookback window's floor, never above what was sent."""
        floor = first_id_at(self._clock.now_us() // 1000 - self.lookback_ms)
        return min(floor, high)

    async def follow(
        self, principal: Principal, feed: FeedFilter, since_id: str | None = None
    ) -> AsyncGenerator[list[Event], None]:
        self.open_streams += 1
        me = _Follower()
        self._followers.add(me)
        try:
            follow = self._follow(principal, feed, since_id, me)
            async with contextlib.aclosing(follow) as batches:
                async for batch in batches:
                    yield batch
        finally:
            self._followers.discard(me)
            self.open_streams -= 1

    async def _follow(
        self, principal: Principal, feed: FeedFilter, since_id: str | None, me: _Follower
    ) -> AsyncGenerator[list[Event], None]:
        high = since_id if since_id is not None else last_id_at(self._clock.now_us() // 1000)
        sent: set[str] = set()
        if since_id is None:
            # The window below the start: what is there now was there before the client came.
            after = self._window(high)
            for _ in range(_PRIME_PAGES):
                seen = await self._read(principal, after, feed, upto=high)
                sent.update(e.id for e in seen)
                if len(seen) < self.batch:
                    break
                after = seen[-1].id
        beat_at = time.monotonic() + self.heartbeat_seconds
        while True:
            window = self._window(high)
            if me.rewind is not None:  # a commit notified below the window (see above)
                window, me.rewind = min(window, me.rewind), None
            sent = {i for i in sent if i > window}
            after = window
            while True:
                rows = await self._read(principal, after, feed)
                fresh = [e for e in rows if e.id not in sent]
                if fresh:
                    sent.update(e.id for e in fresh)
                    high = max(high, fresh[-1].id)
                    if len(sent) > 4 * self.batch:  # a long replay: keep only the window's
                        floor = self._window(high)
                        sent = {i for i in sent if i > floor}
                    beat_at = time.monotonic() + self.heartbeat_seconds
                    yield fresh
                if len(rows) < self.batch:
                    break
                after = rows[-1].id
            polled = time.monotonic()
            wait = min(self.poll_seconds, beat_at - polled)
            if wait > 0:
                await self._pulse.wait(wait)
            if time.monotonic() >= beat_at:
                beat_at = time.monotonic() + self.heartbeat_seconds
                yield []
            rest = self.min_gap_seconds - (time.monotonic() - polled)
            if rest > 0:
                await asyncio.sleep(rest)
