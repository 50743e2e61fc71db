"""The delivery worker: claim due webhook transactions, send them, record what happened.

One round (`run_once`) walks the enabled webhook consumers and, for each one with free slots,
leases its due transactions (`claim_due_webhooks`: `FOR UPDATE SKIP LOCKED` on PostgreSQL,
so several workers never send the same transaction at once). Each lease becomes a task that
signs and POSTs the event, then records the attempt and its consequence in a database
transaction of its own — none is held open across the HTTP call.

A consumer may have at most `consumer_concurrency` attempts in flight, so an endpoint that
hangs fills its own slots and nobody else's. Between rounds the worker sleeps until new
transactions are committed (a `Notifier` pulse, or PostgreSQL's NOTIFY from another
process), the next retry falls due, or a second passes. An expired lease (a worker that died
mid-attempt) makes the transaction due again, so delivery is at-least-once; the `webhook-id`
header, stable across attempts, lets receivers drop repeats.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time

import orjson

from eventyard.clock import Clock
from eventyard.delivery.metrics import DeliveryMetrics
from eventyard.delivery.notify import Notifier
from eventyard.delivery.sender import AttemptResult, WebhookSender
from eventyard.domain import signing
from eventyard.domain.models import Consumer, Event, Transaction
from eventyard.domain.retry import next_delay_us
from eventyard.settings import Settings
from eventyard.store import Store
from eventyard.store import consumers as consumer_sql
from eventyard.store import transactions as txn_sql
from eventyard.store.db import Db
from eventyard.views import event_json

logger = logging.getLogger("eventyard.delivery")

LEASE_MARGIN_US = 30 * 1_000_000  # beyond the attempt's own timeout
HOUSEKEEPING_EVERY_S = 5.0
IDLE_WAIT_S = 1.0


def webhook_body(event: Event) -> bytes:
    return orjson.dumps(event_json(event))


class DeliveryWorker:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        notifier: Notifier,
        metrics: DeliveryMetrics,
        sender: WebhookSender | None = None,
    ) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._notifier = notifier
        self.metrics = metrics
        self._sender = sender or WebhookSender(allow_private=settings.webhook_allow_private)
        self._inflight: dict[str, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._last_housekeeping = 0.0

    # --- one round ---------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim what is due and start sending it; the number of attempts started.

        The worker's free slots go first as a fair share to each consumer, least busy first,
        then what is left to those that had more due: slow endpoints filling the worker
        never leave a consumer with work waiting for one of their attempts to end.
        """
        consumers = await self._store.read(consumer_sql.webhook_consumers_to_deliver)
        consumers.sort(key=lambda c: self._inflight.get(c.id, 0))  # stable: then by id
        free_total = self._settings.worker_concurrency - sum(self._inflight.values())
        share = max(1, free_total // max(1, len(consumers)))
        started = 0
        wanting_more: list[Consumer] = []
        for consumer in consumers:
            claimed = await self._claim(consumer, min(share, free_total - started))
            started += claimed
            if claimed == share:
                wanting_more.append(consumer)
        for consumer in wanting_more:
            started += await self._claim(consumer, free_total - started)
        return started

    async def _claim(self, consumer: Consumer, limit: int) -> int:
        """Lease up to `limit` of a consumer's due deliveries (within its own slots); start them."""
        free = min(self._settings.consumer_concurrency - self._inflight.get(consumer.id, 0), limit)
        if free <= 0:
            return 0
        now = self._clock.now_us()
        claimed = await self._store.write(
            functools.partial(
                txn_sql.claim_due_webhooks,
                consumer_id=consumer.id,
                now=now,
                lease_until=now + self._timeout_us(consumer) + LEASE_MARGIN_US,
                limit=free,
            )
        )
        for txn, event in claimed:
            self._start(consumer, txn, event)
        return len(claimed)

    def _start(self, consumer: Consumer, txn: Transaction, event: Event) -> None:
        self._inflight[consumer.id] = self._inflight.get(consumer.id, 0) + 1
        task = asyncio.create_task(self._deliver(consumer, txn, event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait for every attempt in flight to be sent and recorded."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _timeout_us(self, consumer: Consumer) -> int:
        if consumer.timeout_ms is not None:
            return consumer.timeout_ms * 1000
        return self._settings.webhook_timeout_seconds * 1_000_000

    # --- one attempt ---------------------------------------------------------------------------

    async def _deliver(self, consumer: Consumer, txn: Transaction, event: Event) -> None:
        try:
            body = webhook_body(event)
            now = self._clock.now_us()
            headers = signing.webhook_headers(
                consumer.signing_secrets(now), txn.id, now // 1_000_000, body
            )
            assert consumer.url is not None
            result = await self._sender.send(
                consumer.url, body, headers, self._timeout_us(consumer) / 1_000_000
            )
            await self._record(consumer, txn, result)
        except Exception:
            # The lease runs out and the transaction is tried again; say why it was not now.
            logger.exception("delivering %s to consumer %s failed", txn.id, consumer.id)
        finally:
            self._inflight[consumer.id] -= 1
            if not self._inflight[consumer.id]:
                del self._inflight[consumer.id]
            self._slot_freed.set()

    async def _record(self, consumer: Consumer, txn: Transaction, result: AttemptResult) -> None:
        now = self._clock.now_us()
        schedule = consumer.retry_schedule or self._settings.default_retry_schedule
        if result.ok:
            outcome, next_at = "finished", None
        else:
            delay = next_delay_us(schedule, txn.schedule_index + 1, result.retry_after_seconds)
            outcome, next_at = ("failed", None) if delay is None else ("pending", now + delay)
        disable_after = self._settings.disable_failing_after_seconds * 1_000_000

        def op(db: Db) -> bool:
            recorded = txn_sql.record_attempt(
                db,
                txn,
                now=now,
                status_code=result.status_code,
                duration_ms=result.duration_ms,
                response_excerpt=result.response_excerpt or None,
                error=result.error,
                outcome=outcome,
                next_attempt_at=next_at,
            )
            if result.ok:
                consumer_sql.mark_healthy(db, consumer.id)
                return False
            if result.gone:
                consumer_sql.disable_gone(db, consumer.id, now)
                return True
            return recorded and consumer_sql.mark_failing(db, consumer.id, now, disable_after)

        disabled = await self._store.write(op)
        if disabled:
            logger.warning(
                "consumer %s disabled: %s",
                consumer.id,
                "its endpoint answered 410 Gone"
                if result.gone
                else "every attempt has failed "
                f"for {self._settings.disable_failing_after_seconds} s",
            )
        label = {"finished": "success", "pending": "retry", "failed": "failed"}[outcome]
        if result.error and "blocked" in result.error.lower():
            label = "blocked"
        self.metrics.observe(label, result.duration_ms / 1000)

    # --- housekeeping and the loop -----------------------------------------------------------

    async def housekeeping(self) -> None:
        now = self._clock.now_us()
        released = await self._store.write(lambda db: txn_sql.release_expired_leases(db, now))
        if released:
            logger.info("returned %d transactions with expired leases to the queue", released)

    async def _sleep_until_work(self) -> None:
        """Sleep until new work, a retry falling due, a freed slot, or a second at most."""
        # Cleared before looking, not after: a slot freed while we read the database must
        # still wake us (its consumer may have been left out of `open_` as full).
        self._slot_freed.clear()
        limit = self._settings.consumer_concurrency
        enabled = await self._store.read(consumer_sql.webhook_consumers_to_deliver)
        # A consumer with no free slot cannot start anything, however much is due for it.
        open_ = [c.id for c in enabled if self._inflight.get(c.id, 0) < limit]
        due = await self._store.read(lambda db: txn_sql.next_due_at(db, open_))
        wait = IDLE_WAIT_S
        if due is not None:
            wait = min(wait, max(0.0, (due - self._clock.now_us()) / 1_000_000))
        if wait <= 0:
            return
        pulse = asyncio.ensure_future(self._notifier.wait(wait))
        freed = asyncio.ensure_future(self._slot_freed.wait())
        _, pending = await asyncio.wait(
            {pulse, freed}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()

    async def run(self) -> None:
        """Deliver until `stop()`; errors are logged and the loop goes on after a pause."""
        while not self._stopping.is_set():
            try:
                if time.monotonic() - self._last_housekeeping > HOUSEKEEPING_EVERY_S:
                    self._last_housekeeping = time.monotonic()
                    await self.housekeeping()
                started = await self.run_once()
                if not started:
                    await self._sleep_until_work()
            except Exception:
                logger.exception("delivery round failed; trying again shortly")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), IDLE_WAIT_S)

    async def stop(self, grace_seconds: float = 10.0) -> None:
        self._stopping.set()
        self._notifier.pulse()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), grace_seconds)
        for task in list(self._tasks):
            task.cancel()
        await self._sender.aclose()
