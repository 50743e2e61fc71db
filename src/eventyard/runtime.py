"""What a running process owns: the store, the services, and optionally the delivery worker.

`eventyard serve` runs the HTTP API with the worker inside it (unless `--no-worker`);
`eventyard worker` runs the worker alone. On PostgreSQL a LISTEN connection turns other
processes' NOTIFYs into local wake-ups, so a split deployment delivers as promptly as one
process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from eventyard.delivery.notify import PgListener
from eventyard.delivery.worker import DeliveryWorker
from eventyard.services.container import Services, build_services
from eventyard.services.housekeeping import Housekeeper
from eventyard.settings import Settings
from eventyard.store import Store

logger = logging.getLogger("eventyard")


class Runtime:
    def __init__(
        self, store: Store, settings: Settings, *, with_worker: bool, with_api: bool = True
    ) -> None:
        self.store = store
        self.settings = settings
        # A serving process never waits on a hanging database without bound (store/base.py).
        store.deadline_seconds = settings.database_timeout_seconds
        self.services: Services = build_services(store, settings)
        self.worker: DeliveryWorker | None = None
        if with_worker:
            s = self.services
            self.worker = DeliveryWorker(store, settings, s.clock, s.notifier, s.metrics)
        # The API's live feeds hear of other processes' commits on the same connection.
        live = self.services.live if with_api else None
        self._listener = (
            PgListener(store.session_url, self.services.notifier, live)
            if store.backend == "postgres"
            else None
        )
        self._worker_task: asyncio.Task[None] | None = None
        self.housekeeper = Housekeeper(store, settings, self.services.clock)
        self._housekeeping_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self.services.notifier.bind(asyncio.get_running_loop())
        self.services.live.bind(asyncio.get_running_loop())
        if self._listener is not None:
            self._listener.start()
            if self._listener.watches_events:
                await self.services.live.check_clock()
        if self.worker is not None:
            self._worker_task = asyncio.create_task(self.worker.run())
        if self.settings.housekeeping_seconds > 0:
            self._housekeeping_task = asyncio.create_task(
                self.housekeeper.run_forever(self.settings.housekeeping_seconds)
            )

    async def stop(self) -> None:
        if self._housekeeping_task is not None:
            self._housekeeping_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._housekeeping_task
        if self.worker is not None:
            await self.worker.stop()
        if self._worker_task is not None:
            self._worker_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker_task
        if self._listener is not None:
            self._listener.stop()
        self.store.close()

    async def run_worker_forever(self) -> None:
        """Deliver until SIGTERM or SIGINT; then stop as `stop` does: attempts in flight
        finish and are recorded (within the worker's grace), queued ones are handed back.
        Without the handlers SIGTERM (`systemctl stop`) ended the process at once, and
        every webhook it was sending was sent again by the next worker."""
        await self.start()
        asked = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):  # Windows
                loop.add_signal_handler(sig, asked.set)
        try:
            await asked.wait()
            logger.info("stopping: finishing the deliveries in flight")
        finally:
            await self.stop()
