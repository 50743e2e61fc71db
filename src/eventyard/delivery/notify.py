"""Waking whoever waits for new transactions: the delivery worker and long-polling claims.

Within a process, `pulse()` wakes every current waiter at once (ingest calls it after the
commit that created transactions). Across processes on PostgreSQL, the ingest transaction
sends `NOTIFY eventyard_transactions` and `PgListener` turns each notification into a
pulse here. Waiters always use a timeout too, so a lost wake-up costs a short delay, never a
stuck transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading

import psycopg

logger = logging.getLogger("eventyard.notify")
CHANNEL = "eventyard_transactions"


class Notifier:
    def __init__(self) -> None:
        self._waiters: set[asyncio.Future[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None

    def pulse(self) -> None:
        """Wake every waiter (call from the event loop's thread)."""
        waiters, self._waiters = self._waiters, set()
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def pulse_threadsafe(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self.pulse)

    async def wait(self, within: float) -> bool:
        """Wait for a pulse, at most `within` seconds; True when pulsed."""
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


class PgListener:
    """LISTENs on PostgreSQL in a thread and pulses a `Notifier` for each notification."""

    def __init__(self, url: str, notifier: Notifier) -> None:
        self._url = url
        self._notifier = notifier
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="eventyard-listen", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    while not self._stop.is_set():
                        for _ in conn.notifies(timeout=1.0):
                            self._notifier.pulse_threadsafe()
            except psycopg.Error:
                logger.warning("LISTEN connection lost; reconnecting", exc_info=True)
                with contextlib.suppress(Exception):
                    self._stop.wait(1.0)
