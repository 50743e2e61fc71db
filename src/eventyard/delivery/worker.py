"""The delivery worker: claim due webhook transactions, send them, record what happened.

One round (`run_once`) is one database write: it hands back leases it will not use, reads
the enabled webhook consumers and, for each one with room, leases a batch of its due
transactions (`claim_due_webhooks`: `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several
workers never send the same transaction at once), and for the consumers that got less than
they asked, finds when their next delivery falls due. A consumer may hold PREFETCH times
`consumer_concurrency` leases, so claims come in batches rather than one per freed slot.

Leased deliveries wait in a queue per consumer for a slot: at most `consumer_concurrency`
attempts to one consumer are in flight, and `worker_concurrency` in all, so an endpoint that
hangs fills its own slots and nobody else's; slots go to the least busy consumer first, and
one over its fair share of the worker leaves the last quarter of the slots to the others. A
slot is held from the start of the attempt until its HTTP exchange ends; the result then
joins the attempts waiting to be recorded, written together, one database write a batch
(`record_attempts`). No database transaction is held open across an HTTP call. A delivery
whose lease would no longer outlast its attempt and its recording by the time it gets a slot
is handed back unsent (the next round releases it), as is everything queued when the worker
stops.

Between rounds the worker sleeps until new transactions are committed (a `Notifier` pulse
from ingest in this process, PostgreSQL's NOTIFY from another, or on SQLite a change of the
database file seen by `SqliteWatcher`), a consumer that may have more due has room again,
the next retry falls due, or a second passes. A pulse that comes while a round runs is not
lost: the round notes the notifier's generation first, and the sleep returns at once if it
moved. An expired lease (a worker that died mid-attempt) makes the transaction due again, so
delivery is at-least-once; the `webhook-id` header, stable across attempts, lets receivers
drop repeats. A worker that starts while no other is alive gives back at once the leases a
dead one left (presence.py).

When the database cannot be used (down, restarting, out of disk), a failed round is logged
once with its traceback and then one line a try, and the worker waits before the next: half
a second, doubling to `BACKOFF_MAX_S`, or less when new work is committed meanwhile (which
proves the database is back). Attempts sent in the meantime keep their results and record
them when the database answers again, while their leases last, so a delivery made during an
outage is neither lost nor sent again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import deque
from dataclasses import dataclass

import orjson

from eventyard.clock import Clock
from eventyard.delivery.metrics import DeliveryMetrics
from eventyard.delivery.notify import Notifier, SqliteWatcher
from eventyard.delivery.presence import WorkerPresence
from eventyard.delivery.sender import AttemptResult, WebhookSender
from eventyard.domain import signing
from eventyard.domain.models import Consumer, Event, Transaction
from eventyard.domain.retry import next_delay_us
from eventyard.settings import Settings
from eventyard.store import Store
from eventyard.store import consumers as consumer_sql
from eventyard.store import transactions as txn_sql
from eventyard.store.connect import UNAVAILABLE
from eventyard.store.db import DatabaseTimeout, Db
from eventyard.views import event_json

logger = logging.getLogger("eventyard.delivery")

LEASE_MARGIN_US = 30 * 1_000_000  # beyond the attempt's own timeout
# An attempt starts only while its lease outlasts its timeout by this much, left for
# recording it: a claimed delivery may wait for a slot LEASE_MARGIN - RECORD_MARGIN at most.
RECORD_MARGIN_US = 20 * 1_000_000
PREFETCH = 16  # leases a consumer may hold, as a multiple of its concurrency
HOUSEKEEPING_EVERY_S = 5.0
IDLE_WAIT_S = 1.0
BACKOFF_MIN_S = 0.5  # after a failed round or recording, doubling to BACKOFF_MAX_S
BACKOFF_MAX_S = 10.0


def webhook_body(event: Event) -> bytes:
    return orjson.dumps(event_json(event))


def _summary(exc: BaseException) -> str:
    """An error on one line, for the log lines that repeat while an outage lasts."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {first}"


@dataclass
class _Round:
    """What one claim round found: the consumers it read, the leases it took for each, the
    consumers that got all they asked (more may be due), and when the next delivery of the
    others falls due (None: nothing pending for them)."""

    consumers: list[Consumer]
    claimed: dict[str, list[tuple[Transaction, Event]]]
    lease_until: dict[str, int]
    full: set[str]
    next_due: int | None


@dataclass
class _Leased:
    txn: Transaction
    event: Event
    lease_until: int


@dataclass
class _Result:
    """An attempt's result waiting to be recorded, with its consequence."""

    consumer: Consumer
    txn: Transaction
    result: AttemptResult
    now: int
    outcome: str  # finished, failed, or pending again
    next_attempt_at: int | None
    done: asyncio.Future[None]


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
        self._consumers: dict[str, Consumer] = {}  # as the last round read them
        self._held: dict[str, int] = {}  # consumer id → leases held, waiting or sending
        self._queued: dict[str, deque[_Leased]] = {}  # leased, waiting for a slot
        self._inflight: dict[str, int] = {}  # consumer id → attempts sending now
        self._full: set[str] = set()  # consumers whose last claim got all it asked
        self._give_back: list[tuple[str, int]] = []  # (transaction id, lease) not attempted
        self._tasks: set[asyncio.Task[None]] = set()  # attempts sending or being recorded
        self._to_record: list[_Result] = []
        self._recording: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._room = asyncio.Event()  # a consumer that may have more due can hold more
        self._last_housekeeping = 0.0
        self._next_due: int | None = None
        self._watcher: SqliteWatcher | None = None
        self._presence: WorkerPresence | None = None

    # --- one round ---------------------------------------------------------------------------

    async def run_once(self) -> int:
        """Claim what is due and start sending it; the number of deliveries claimed.

        A consumer may hold `consumer_concurrency` times PREFETCH leases (and the worker
        `worker_concurrency` times PREFETCH): claims come in batches, not one per freed slot.
        They go first as a fair share to each consumer, least busy first, then what is left
        to those that had more due.
        """
        free_total = self._settings.worker_concurrency * PREFETCH - sum(self._held.values())
        give_back, self._give_back = self._give_back, []
        found = await self._store.write(
            functools.partial(
                self._claim_round, dict(self._held), free_total, self._clock.now_us(), give_back
            )
        )
        self._consumers = {c.id: c for c in found.consumers}
        self._full = found.full
        claimed = 0
        for consumer_id, leased in found.claimed.items():
            lease_until = found.lease_until[consumer_id]
            queue = self._queued.setdefault(consumer_id, deque())
            queue.extend(_Leased(txn, event, lease_until) for txn, event in leased)
            self._held[consumer_id] = self._held.get(consumer_id, 0) + len(leased)
            claimed += len(leased)
        self._next_due = found.next_due
        self._dispatch()
        return claimed

    def _claim_round(
        self,
        held: dict[str, int],
        free_total: int,
        now: int,
        give_back: list[tuple[str, int]],
        db: Db,
    ) -> _Round:
        """The round's database work, in the writer: one op, however many consumers."""
        if give_back:
            txn_sql.release_leases(db, give_back)
        limit = self._settings.consumer_concurrency * PREFETCH
        consumers = consumer_sql.webhook_consumers_to_deliver(db)
        consumers.sort(key=lambda c: held.get(c.id, 0))  # stable: then by id
        share = max(1, free_total // max(1, len(consumers)))
        started = 0
        claimed: dict[str, list[tuple[Transaction, Event]]] = {}
        lease_until: dict[str, int] = {}
        full: set[str] = set()

        def claim(consumer: Consumer, want: int) -> int:
            free = min(limit - held.get(consumer.id, 0), want)
            if free <= 0:  # no room to ask for any: what is due waits for room, not a timer
                full.add(consumer.id)
                return 0
            lease_until[consumer.id] = now + self._timeout_us(consumer) + LEASE_MARGIN_US
            got = txn_sql.claim_due_webhooks(
                db,
                consumer_id=consumer.id,
                now=now,
                lease_until=lease_until[consumer.id],
                limit=free,
            )
            claimed.setdefault(consumer.id, []).extend(got)
            held[consumer.id] = held.get(consumer.id, 0) + len(got)
            if len(got) == free:
                full.add(consumer.id)
            else:
                full.discard(consumer.id)
            return len(got)

        wanting_more: list[Consumer] = []
        for consumer in consumers:
            want = min(share, free_total - started)
            got = claim(consumer, want)
            started += got
            if got and got == want:
                wanting_more.append(consumer)
        for consumer in wanting_more:
            started += claim(consumer, free_total - started)
        # One that got all it asked may have more due: room for it wakes the worker. For the
        # others, sleep until their next delivery falls due.
        rest = [c.id for c in consumers if c.id not in full]
        next_due = txn_sql.next_due_at(db, rest) if rest else None
        return _Round(consumers, claimed, lease_until, full, next_due)

    def _dispatch(self) -> None:
        """Start waiting deliveries in free slots, least busy consumer first.

        A consumer at or over its fair share of the worker (its slots divided among the
        consumers) does not take the last quarter of them (at most one per other consumer):
        slow endpoints filling the worker would otherwise leave a consumer whose next event
        comes a moment later waiting for one of their attempts to end.
        """
        limit = self._settings.consumer_concurrency
        total = self._settings.worker_concurrency
        free = total - sum(self._inflight.values())
        consumers = max(1, len(self._consumers))
        share = max(1, total // consumers)
        reserve = min(consumers - 1, total // 4)
        now = self._clock.now_us()
        while free > 0:
            best, fewest = None, limit
            for consumer_id, queue in self._queued.items():
                busy = self._inflight.get(consumer_id, 0)
                if queue and busy < fewest:
                    best, fewest = consumer_id, busy
            if best is None or (fewest >= share and free <= reserve):
                break
            leased = self._queued[best].popleft()
            consumer = self._consumers.get(best)
            if consumer is None or now + self._timeout_us(consumer) + RECORD_MARGIN_US > (
                leased.lease_until
            ):
                # Paused, changed or gone since the claim, or waited so long that its lease
                # could run out before it is recorded: hand it back rather than send it.
                self._give_back.append((leased.txn.id, leased.lease_until))
                self._release(best)
                continue
            self._start(consumer, leased.txn, leased.event)
            free -= 1
        for consumer_id in [c for c, queue in self._queued.items() if not queue]:
            del self._queued[consumer_id]

    def _start(self, consumer: Consumer, txn: Transaction, event: Event) -> None:
        self._inflight[consumer.id] = self._inflight.get(consumer.id, 0) + 1
        task = asyncio.create_task(self._deliver(consumer, txn, event))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _release(self, consumer_id: str) -> None:
        """One of the consumer's leases is done with (attempted or handed back)."""
        held = self._held[consumer_id] - 1
        if held:
            self._held[consumer_id] = held
        else:
            del self._held[consumer_id]
        limit = self._settings.consumer_concurrency * PREFETCH
        # Claim again while a quarter is gone, not when the queue runs dry: the next batch
        # comes while the rest of this one is sent.
        if consumer_id in self._full and held <= limit - limit // 4:
            self._room.set()

    def _end_attempt(self, consumer: Consumer) -> None:
        """The endpoint is done with an attempt: its slot goes to the next one waiting."""
        self._inflight[consumer.id] -= 1
        if not self._inflight[consumer.id]:
            del self._inflight[consumer.id]
        self._release(consumer.id)
        self._dispatch()

    async def drain(self) -> None:
        """Wait for every claimed delivery to be sent and recorded."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _timeout_us(self, consumer: Consumer) -> int:
        if consumer.timeout_ms is not None:
            return consumer.timeout_ms * 1000
        return self._settings.webhook_timeout_seconds * 1_000_000

    # --- one attempt ---------------------------------------------------------------------------

    async def _deliver(self, consumer: Consumer, txn: Transaction, event: Event) -> None:
        sending = True
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
            # The slot is free while the result is recorded: the lease keeps the transaction
            # from being claimed again until then.
            sending = False
            self._end_attempt(consumer)
            await self._record(consumer, txn, result)
        except Exception:
            # The lease runs out and the transaction is tried again; say why it was not now.
            logger.exception("delivering %s to consumer %s failed", txn.id, consumer.id)
        finally:
            if sending:
                self._end_attempt(consumer)

    async def _record(self, consumer: Consumer, txn: Transaction, result: AttemptResult) -> None:
        """Queue the attempt for the next batch and wait until it is committed."""
        now = self._clock.now_us()
        if result.ok:
            outcome, next_at = "finished", None
        else:
            schedule = consumer.retry_schedule or self._settings.default_retry_schedule
            delay = next_delay_us(schedule, txn.schedule_index + 1, result.retry_after_seconds)
            outcome, next_at = ("failed", None) if delay is None else ("pending", now + delay)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._to_record.append(_Result(consumer, txn, result, now, outcome, next_at, done))
        if self._recording is None or self._recording.done():
            self._recording = asyncio.create_task(self._record_batches())
        await done

    async def _record_batches(self) -> None:
        """Write what waits to be recorded, one batch per database write, until none waits:
        results that come while one batch commits make the next. While the database cannot
        be used, the results wait (backing off) as long as their leases keep the
        transactions from being claimed again; past that, they are dropped and sent again."""
        failures = 0
        while self._to_record:
            batch, self._to_record = self._to_record, []
            try:
                disabled = await self._store.write(
                    functools.partial(self._record_batch, batch), weight=len(batch)
                )
            except Exception as exc:
                now = self._clock.now_us()
                leased = [i for i in batch if (i.txn.lease_expires_at or 0) > now]
                # Not after a timeout: that write may still land, and recording twice would
                # count the attempt twice.
                if (
                    not isinstance(exc, UNAVAILABLE)
                    or isinstance(exc, DatabaseTimeout)
                    or self._stopping.is_set()
                ):
                    leased = []
                for item in batch:
                    if item not in leased and not item.done.done():
                        item.done.set_exception(exc)
                if leased:
                    failures += 1
                    self._to_record[:0] = leased
                    logger.warning(
                        "recording %d webhook attempts failed, the database is unavailable "
                        "(%s); keeping them to record when it answers",
                        len(leased),
                        _summary(exc),
                    )
                    await self._back_off(failures, self._notifier.generation)
                continue
            failures = 0
            for item in batch:
                if not item.done.done():
                    item.done.set_result(None)
                self._observe(item)
            for consumer, gone in disabled:
                logger.warning(
                    "consumer %s disabled: %s",
                    consumer.id,
                    "its endpoint answered 410 Gone"
                    if gone
                    else "every attempt has failed "
                    f"for {self._settings.disable_failing_after_seconds} s",
                )

    def _record_batch(self, batch: list[_Result], db: Db) -> list[tuple[Consumer, bool]]:
        """Record a batch of attempts and what they say about their consumers' health; the
        consumers this disabled, each with whether it was for a 410 Gone."""
        records = [
            txn_sql.AttemptRecord(
                item.txn,
                now=item.now,
                status_code=item.result.status_code,
                duration_ms=item.result.duration_ms,
                response_excerpt=item.result.response_excerpt or None,
                error=item.result.error,
                outcome=item.outcome,
                next_attempt_at=item.next_attempt_at,
            )
            for item in batch
        ]
        # A consumer whose every attempt here succeeded is healthy, whatever is recorded:
        # on PostgreSQL that goes in the same round trip as the attempts.
        failed = {item.consumer.id for item in batch if not item.result.ok}
        healthy = {item.consumer.id for item in batch} - failed  # marked healthy by this batch
        with db.pipeline():
            for consumer_id in sorted(healthy):
                consumer_sql.mark_healthy(db, consumer_id)
            recorded = txn_sql.record_attempts(db, records)
        disable_after = self._settings.disable_failing_after_seconds * 1_000_000
        disabled: list[tuple[Consumer, bool]] = []
        # In the order the attempts ended, as if each were recorded alone; a run of successes
        # marks its consumer healthy once.
        for item, kept in zip(batch, recorded, strict=True):
            consumer, r = item.consumer, item.result
            if r.ok:
                if consumer.id not in healthy:
                    consumer_sql.mark_healthy(db, consumer.id)
                    healthy.add(consumer.id)
                continue
            healthy.discard(consumer.id)
            if r.gone:
                consumer_sql.disable_gone(db, consumer.id, item.now)
                disabled.append((consumer, True))
            elif kept and consumer_sql.mark_failing(db, consumer.id, item.now, disable_after):
                disabled.append((consumer, False))
        return disabled

    def _observe(self, item: _Result) -> None:
        label = {"finished": "success", "pending": "retry", "failed": "failed"}[item.outcome]
        if item.result.error and "blocked" in item.result.error.lower():
            label = "blocked"
        self.metrics.observe(label, item.result.duration_ms / 1000)

    # --- housekeeping and the loop -----------------------------------------------------------

    async def _join_workers(self) -> None:
        """Hold the live workers' lock; when no other worker is alive, first give back the
        leases dead ones left (presence.py), so their deliveries go out now rather than
        when the leases run out."""
        presence = self._presence = WorkerPresence(self._store.session_url)
        try:
            alone = await asyncio.to_thread(presence.try_alone)
        except Exception:
            logger.warning("could not check for other workers; leases left run out", exc_info=True)
            presence.leave()
            return
        try:
            if alone:
                released = await self._store.write(txn_sql.release_all_webhook_leases)
                if released:
                    logger.info(
                        "no other delivery worker is alive: %d deliveries leased by one that "
                        "stopped without handing them back are due again",
                        released,
                    )
        except Exception:
            logger.warning("could not give back dead workers' leases; they run out", exc_info=True)
        finally:
            # Whatever became of the hand-back, the exclusive lock must not be kept: every
            # other worker's start waits for it to become shared.
            try:
                await asyncio.to_thread(presence.share)
            except Exception:
                logger.warning("could not hold the workers' lock", exc_info=True)
                presence.leave()

    async def housekeeping(self) -> None:
        if self._presence is not None:
            await asyncio.to_thread(self._presence.keep)
        now = self._clock.now_us()
        released = await self._store.write(lambda db: txn_sql.release_expired_leases(db, now))
        if released:
            logger.info("returned %d transactions with expired leases to the queue", released)

    async def _sleep_until_work(self, seen: int) -> None:
        """Sleep until new work (a pulse since generation `seen`), room for a consumer that
        may have more due, the next delivery falling due, or a second at most."""
        wait = IDLE_WAIT_S
        if self._next_due is not None:
            wait = min(wait, max(0.0, (self._next_due - self._clock.now_us()) / 1_000_000))
        if wait <= 0 or self._room.is_set():
            return
        pulse = asyncio.ensure_future(self._notifier.wait(wait, since=seen))
        freed = asyncio.ensure_future(self._room.wait())
        _, pending = await asyncio.wait(
            {pulse, freed}, timeout=wait, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()

    async def run(self) -> None:
        """Deliver until `stop()`; errors are logged and the loop goes on after a pause."""
        if self._store.backend == "sqlite" and self._watcher is None:
            self._watcher = SqliteWatcher(self._store.url, self._notifier)
            self._watcher.start()
        await self._join_workers()
        failures = 0  # rounds failed in a row
        while not self._stopping.is_set():
            try:
                if time.monotonic() - self._last_housekeeping > HOUSEKEEPING_EVERY_S:
                    self._last_housekeeping = time.monotonic()
                    await self.housekeeping()
                # Noted before looking, not after: work that arrives while the round reads the
                # database must still wake the sleep that follows.
                seen = self._notifier.generation
                self._room.clear()
                await self.run_once()
                await self._sleep_until_work(seen)
                if failures:
                    logger.info("delivery resumed after %d failed rounds", failures)
                    failures = 0
            except Exception as exc:
                failures += 1
                down = isinstance(exc, UNAVAILABLE)
                if failures == 1:
                    why = ": database unavailable" if down else ""
                    logger.exception("delivery round failed%s; backing off", why)
                elif down:
                    logger.warning(
                        "delivery round failed again (%d in a row): database unavailable: %s",
                        failures,
                        _summary(exc),
                    )
                else:
                    logger.error("delivery round failed again (%d in a row)", failures)
                await self._back_off(failures, self._notifier.generation)

    async def _back_off(self, failures: int, seen: int) -> None:
        """Wait after the `failures`-th failure in a row: at least BACKOFF_MIN_S, then until
        BACKOFF_MIN_S doubled per failure (at most BACKOFF_MAX_S), new work committed since
        generation `seen` (the database answers again), or `stop()`."""
        longest = min(BACKOFF_MAX_S, BACKOFF_MIN_S * 2 ** (failures - 1))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), BACKOFF_MIN_S)
            return
        if self._stopping.is_set() or longest <= BACKOFF_MIN_S:
            return
        stop = asyncio.ensure_future(self._stopping.wait())
        pulse = asyncio.ensure_future(self._notifier.wait(longest - BACKOFF_MIN_S, since=seen))
        _, pending = await asyncio.wait({stop, pulse}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()

    async def stop(self, grace_seconds: float = 10.0) -> None:
        self._stopping.set()
        self._notifier.pulse()
        if self._watcher is not None:
            self._watcher.stop()
            self._watcher = None
        # What waits for a slot is handed back at once, for another worker to take.
        for queue in self._queued.values():
            self._give_back.extend((leased.txn.id, leased.lease_until) for leased in queue)
        self._queued.clear()
        give_back, self._give_back = self._give_back, []
        if give_back:
            with contextlib.suppress(Exception):
                await self._store.write(lambda db: txn_sql.release_leases(db, give_back))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.drain(), grace_seconds)
        for task in list(self._tasks):
            task.cancel()
        if self._recording is not None:
            self._recording.cancel()
        await self._sender.aclose()
        if self._presence is not None:
            self._presence.leave()
            self._presence = None
