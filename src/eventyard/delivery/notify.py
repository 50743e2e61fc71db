"""Waking whoever waits for new transactions: the delivery worker and long-polling claims.

Within a process, `pulse()` wakes every current waiter at once (ingest calls it after the
commit that created transactions). Across processes on PostgreSQL, ingest commits send
`NOTIFY eventyard_transactions` (gathered by the writer: one notifying commit every 10 ms
at most, store/commit_notices.py) and `PgListener` turns each notification into a pulse
here. SQLite has no such message: `SqliteWatcher` asks the database every few
milliseconds whether another connection has committed (`PRAGMA data_version`, a read of a
counter in shared memory) and pulses when one has, so a worker in its own process learns of
new events within milliseconds instead of at its next second's poll.

Each pulse also moves `generation`: a waiter that notes it before looking for work and
passes it to `wait(since=...)` returns at once if a pulse came in between, instead of
sleeping through work that arrived while it looked. Waiters always use a timeout too, so a
lost wake-up costs a short delay, never a stuck transaction.

The same LISTEN connection serves the live feeds (services/live.py): every commit that
stores events has `eventyard_events` notified with the lowest event id it stored (gathered
likewise, so one notification may stand for several commits, with their lowest id), and
`PgListener` hands it to a `CommitWatcher` (the live feed), which wakes its streams and
reads again from that id if it lies below their lookback window. When the connection was
lost, the watcher hears from when, since notifications sent meanwhile never arrive.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

import psycopg

from eventyard.store.commit_notices import EVENTS_CHANNEL, TRANSACTIONS_CHANNEL
from eventyard.store.connect import connect, connect_session

logger = logging.getLogger("eventyard.notify")


class CommitWatcher(Protocol):
    """Told (from the listener's thread) of other processes' commits of events."""

    def committed(self, lowest_id: str) -> None: ...

    def maybe_missed(self, since_ms: int) -> None: ...


class Notifier:
    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self.generation = 0  # how many pulses so far

    def pulse(self) -> None:
        """Wake every waiter (call from the event loop's thread)."""
        self.generation += 1
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def pulse_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.pulse)

    async def wait(self, within: float, *, since: int | None = None) -> bool:
        """Wait for a pulse, at most `within` seconds; True when pulsed. With `since` (a
        `generation` read earlier), a pulse that came after that reading counts too."""
        if since is not None and since != self.generation:
            return True
        loop = asyncio.get_running_loop()
        self._loop = loop
        waiter: asyncio.Future[None] = loop.create_future()
        self._waiters.add(waiter)
        try:
            await asyncio.wait_for(waiter, within)
        except TimeoutError:
            return False
        finally:
            self._waiters.discard(waiter)
        return True

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def call_threadsafe(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` in the event loop this notifier's waiters use, if there is one
        (none yet: nobody waits, so there is nobody to tell)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(fn, *args)


class PgListener:
    """LISTENs on PostgreSQL in a thread and pulses a `Notifier` for each notification of
    new transactions; with a `CommitWatcher`, it also LISTENs for commits of events."""

    def __init__(self, url: str, notifier: Notifier, events: CommitWatcher | None = None) -> None:
        self._url = url
        self._notifier = notifier
        self._events = events
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eventyard-listen", daemon=True)

    @property
    def watches_events(self) -> bool:
        return self._events is not None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        lost = False  # said so in the log; quiet until the connection is back
        lost_ms = 0
        events = self._events
        while not self._stop.is_set():
            try:
                with connect_session(self._url, "eventyard-listen") as conn:
                    conn.execute(f"LISTEN {TRANSACTIONS_CHANNEL}")
                    if events is not None:
                        conn.execute(f"LISTEN {EVENTS_CHANNEL}")
                    if lost:
                        logger.info("LISTEN connection restored")
                        lost = False
                        # Whatever was committed while it was down was not notified here.
                        self._notifier.pulse_threadsafe()
                        if events is not None:
                            events.maybe_missed(lost_ms)
                    while not self._stop.is_set():
                        for note in conn.notifies(timeout=1.0):
                            if note.channel == EVENTS_CHANNEL:
                                if events is not None:
                                    events.committed(note.payload)
                            else:
                                self._notifier.pulse_threadsafe()
            except psycopg.Error as exc:
                if not lost:
                    logger.warning("LISTEN connection lost (%s); reconnecting every second", exc)
                    lost_ms = int(time.time() * 1000)
                lost = True
                with contextlib.suppress(Exception):
                    self._stop.wait(1.0)


class SqliteWatcher:
    """Polls a SQLite database's `data_version` in a thread and pulses a `Notifier` when
    another connection has committed (see the module docstring).

    The worker's own commits count too (they come from another connection than the
    watcher's); so does ingest in this process, which pulses by itself already. A change seen
    after this process's notifier was pulsed since the last look is therefore not pulsed
    again; the rest costs at most an empty claim round each.
    """

    def __init__(self, url: str, notifier: Notifier, *, every_seconds: float = 0.005) -> None:
        self._url = url
        self._notifier = notifier
        self._every = every_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eventyard-watch", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        db = None
        try:
            db = connect(self._url, writer=False)
            version = db.scalar("PRAGMA data_version")
            pulses = self._notifier.generation
            while not self._stop.wait(self._every):
                now = db.scalar("PRAGMA data_version")
                if now != version:
                    version = now
                    if self._notifier.generation == pulses:
                        self._notifier.pulse_threadsafe()
                pulses = self._notifier.generation
        except Exception:
            logger.warning("watching the SQLite database for commits failed", exc_info=True)
        finally:
            if db is not None:
                db.close()
