"""Pull consumers: claim transactions in batches, hand them out one at a time, and keep the
lease of every transaction held alive until it is reported.

    for txn in client.consume("con_..."):
        invoice = make_invoice(txn.event.user_id, txn.event.payload)
        txn.finish({"invoice": invoice.id})  # or txn.fail(exc), txn.set_state("shipping")

The loop claims up to `batch_size` pending transactions (`POST /v1/consumers/{id}/claim`,
long-polling up to `wait_seconds` for work to arrive, shortened to end 5 s within the
client's read timeout), yields them one by one, and claims again when they are all handed
out. It runs until the loop is left (`break`, an exception, `close()`), `stop()` is called,
or, with `stop_when_empty=True`, a claim finds no work. The options are checked when
`consume()` is called, before anything is claimed.

Leases. A claim leases each transaction for `lease_seconds`; a lease that runs out returns
it to `pending` for another consumer. With `renew=True` (the default) a background renewer
— a thread for `Client`, a task for `AsyncClient` — renews every held transaction (claimed
and not yet reported, handed out or still waiting in the batch) once a third of its lease
has passed, by reporting `processing` again: so work may take as long as it takes. A renewal
does not add to the transaction's history (the state does not change); only the lease moves.
A transaction stops being renewed once it is reported: `finish`/`fail` end it, `release`
hands it back, and a state of your own (`set_state("shipping")`) has no lease on the server,
so it is held, without expiry, until you report again. A renewal that fails for a moment is
retried; one the server refuses (409: the transaction changed, say an operator retried it)
is logged and that transaction is no longer renewed.

One slow transaction never holds up the others' renewals: a renewal is sent once, without
the client's retries (no Retry-After is slept in the renewer), and a failure is tried again
at a later round; a transaction that is being reported at that moment (a report or `renew()`
of yours still under way) is skipped for the round rather than waited for.

When the loop ends — however it ends — the renewer stops and the transactions claimed but
not yet handed out are released at once (reported `pending`), so another consumer can take
them without waiting for their leases. A transaction that was handed out and never reported
is left as it is: its lease is no longer renewed and it returns to `pending` when the lease
runs out (a warning names it). The loop cannot know whether that work is still going on in
another thread, or failed in a way that would fail again at once; waiting out the lease
gives both a pause. In CPython, leaving a `for` loop closes the iterator at once; for
certainty (and always with `async for`, whose iterators are closed later, by the event
loop) use it as a context manager: `with client.consume(...) as txns: for txn in txns:`.

Failures. A claim that fails in a way that may pass (no connection, a timeout, a refusal
`_core.transient` names: 408, 425, 429, any 5xx but 501 and 505, an answer that is not
eventyard's) is logged to the `eventyard_client` logger and tried again with exponential
backoff (the client's retry policy, honouring Retry-After), for as long as the loop runs: a
consumer outlives a server restart. Refusals that will not pass (401, 403, 404 for an
unknown consumer, 409 for a webhook consumer) are raised. A claim that comes back empty
sooner than a second (a paused consumer answers at once) is followed by a pause, so an idle
loop never spins.

Reports. `finish(output)`, `fail(error, output)`, `set_state(state, output)`,
`release(output)` and `renew(lease_seconds)` each send `PATCH /v1/transactions/{id}` and
return the transaction as the server answers it, which also updates `txn.state`, `txn.output`
and `txn.history`. `fail(error)` records the error in the output, as
`{"error": "<text>"}` (an exception as `"TypeName: message"`), merged into `output` when that
is a JSON object and beside it (`{"error": ..., "output": ...}`) when it is not. A finished
or failed transaction takes no more reports: the server answers 409 (`Conflict`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import deque
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Generator,
    Iterable,
    Iterator,
    Mapping,
)
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any

from eventyard_client._core import Ops, transient
from eventyard_client.errors import APIError, TransportError
from eventyard_client.resource import Resource, to_resource

if TYPE_CHECKING:
    from eventyard_client._async import AsyncClient
    from eventyard_client._sync import Client

logger = logging.getLogger("eventyard_client")

PROCESSING = "processing"
PENDING = "pending"
FINISHED = "finished"
FAILED = "failed"
# States the loop no longer holds: ended, or handed back to the queue.
LET_GO = frozenset({FINISHED, FAILED, PENDING})

MAX_BATCH_SIZE = 1000  # the server's limits for a claim
MAX_LEASE_SECONDS = 3600
MAX_WAIT_SECONDS = 30.0
# Renew once this share of the lease has passed: two more tries fit before it runs out.
RENEW_AFTER = 1 / 3
# An empty claim that came back sooner than this is followed by a pause up to it.
IDLE_FLOOR_SECONDS = 1.0
# Leave this much of the client's read timeout free around a long poll.
TIMEOUT_MARGIN_SECONDS = 5.0


def _transient(exc: BaseException) -> bool:
    """A failure worth trying again: the server did not answer, or said "not now"."""
    if isinstance(exc, TransportError):
        return True
    return isinstance(exc, APIError) and transient(exc)


@dataclass(frozen=True)
class ConsumeOptions:
    """How a consume loop claims: up to `batch_size` transactions a claim, each leased for
    `lease_seconds` (renewed while held when `renew`), waiting up to `wait_seconds` for work
    (the server's long poll, at most 30); with `stop_when_empty` the loop ends when a claim
    finds nothing."""

    batch_size: int = 10
    lease_seconds: int = 60
    wait_seconds: float = 20.0
    renew: bool = True
    stop_when_empty: bool = False

    def __post_init__(self) -> None:
        if _not_int(self.batch_size) or not 1 <= self.batch_size <= MAX_BATCH_SIZE:
            raise ValueError(
                f"batch_size must be from 1 to {MAX_BATCH_SIZE}; got {self.batch_size!r}"
            )
        if _not_int(self.lease_seconds) or not 1 <= self.lease_seconds <= MAX_LEASE_SECONDS:
            raise ValueError(
                f"lease_seconds must be whole seconds from 1 to {MAX_LEASE_SECONDS}; "
                f"got {self.lease_seconds!r}"
            )
        wait = self.wait_seconds
        if isinstance(wait, bool) or not isinstance(wait, int | float):
            raise ValueError(f"wait_seconds must be a number; got {wait!r}")
        if not 0 <= wait <= MAX_WAIT_SECONDS:
            raise ValueError(f"wait_seconds must be from 0 to {MAX_WAIT_SECONDS:g}; got {wait!r}")

    def claim_wait(self, read_timeout: float | None) -> float:
        """The long poll to ask for: `wait_seconds`, shortened to end well within the
        client's read timeout, so a quiet queue never looks like a dead server."""
        if read_timeout is None:
            return float(self.wait_seconds)
        return max(0.0, min(float(self.wait_seconds), read_timeout - TIMEOUT_MARGIN_SECONDS))


def _not_int(value: object) -> bool:
    return isinstance(value, bool) or not isinstance(value, int)


def failure_output(error: str | BaseException | None, output: Any) -> Any:
    """What `fail(error, output)` records as the transaction's output."""
    if error is None:
        return output
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    if output is None:
        return {"error": text}
    if isinstance(output, Mapping):
        return {**output, "error": text}
    return {"error": text, "output": output}


class _Pulled:
    """What the sync and async transactions share: the data, and the renewal bookkeeping."""

    def __init__(self, resource: Resource, lease_seconds: int, leased_at: float) -> None:
        self.resource = resource
        self.event: Resource = to_resource(resource.get("event") or {})
        self._lease_seconds = lease_seconds
        self._leased_at = leased_at  # time.monotonic() when the current lease was asked for
        self._retry_at = 0.0  # after a failed renewal, no new try before this
        self._renewing = False  # the loop's renewer looks after it
        self._handed_out = False

    # -- the transaction as the server last described it
    @property
    def id(self) -> str:
        return str(self.resource["id"])

    @property
    def state(self) -> str:
        return str(self.resource["state"])

    @property
    def output(self) -> Any:
        return self.resource.get("output")

    @property
    def attempts(self) -> int:
        return int(self.resource.get("attempts") or 0)

    @property
    def history(self) -> list[Resource]:
        return list(self.resource.get("history") or [])

    @property
    def consumer_id(self) -> str:
        return str(self.resource.get("consumer_id"))

    @property
    def lease_expires_at(self) -> str | None:
        value = self.resource.get("lease_expires_at")
        return None if value is None else str(value)

    def __repr__(self) -> str:
        trigger = self.event.get("trigger")
        return f"{type(self).__name__}(id={self.id!r}, state={self.state!r}, trigger={trigger!r})"

    # -- bookkeeping
    def _lease_for(self, state: str, lease_seconds: int | None) -> int | None:
        if state != PROCESSING:
            return None
        return self._lease_seconds if lease_seconds is None else lease_seconds

    def _answered(self, answer: Resource, sent_at: float, lease_seconds: int | None) -> None:
        self.resource = Resource({**answer, "event": self.event})
        if lease_seconds is not None and self.state == PROCESSING:
            self._lease_seconds = lease_seconds
            self._leased_at = sent_at
            self._retry_at = 0.0

    def _renewal_due(self, now: float) -> bool:
        return (
            self._renewing
            and self.state == PROCESSING
            and now >= max(self._next_renewal(), self._retry_at)
        )

    def _next_renewal(self) -> float:
        return self._leased_at + self._lease_seconds * RENEW_AFTER

    def _renewal_failed(self, exc: Exception, now: float) -> None:
        if _transient(exc):
            self._retry_at = now + min(1.0, self._lease_seconds / 6)
            logger.warning("could not renew the lease of %s, trying again: %s", self.id, exc)
        elif isinstance(exc, APIError):
            self._renewing = False
            logger.warning(
                "stopped renewing the lease of %s: the server refused (%s); another consumer "
                "may take it when its lease runs out",
                self.id,
                exc,
            )
        else:
            self._renewing = False
            logger.error("stopped renewing the lease of %s", self.id, exc_info=exc)


class _Held:
    """The transactions a loop holds, shared between the loop and its renewer."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[_Pulled] = []

    def add(self, txns: Iterable[_Pulled]) -> None:
        with self._lock:
            self._items.extend(txns)

    def current(self) -> list[_Pulled]:
        """The ones still held (dropping those reported since)."""
        with self._lock:
            self._items = [t for t in self._items if t.state not in LET_GO]
            return list(self._items)

    def stop_renewing(self) -> list[_Pulled]:
        items = self.current()
        for txn in items:
            txn._renewing = False
        return items

    def next_wake(self, now: float) -> float:
        """Seconds until the renewer has something to do; at most a second."""
        due = [
            max(t._next_renewal(), t._retry_at)
            for t in self.current()
            if t._renewing and t.state == PROCESSING
        ]
        return min(1.0, max(0.05, min(due, default=now + 1.0) - now))


def _warn_unreported(held: list[_Pulled]) -> None:
    unreported = [t.id for t in held if t._handed_out and t.state == PROCESSING]
    if unreported:
        logger.warning(
            "the consume loop ended with %d transaction(s) handed out and not reported (%s): "
            "their leases are no longer renewed, so they return to pending when they run out",
            len(unreported),
            ", ".join(unreported),
        )


def _claim_failed(exc: APIError | TransportError, failures: int, delay: float) -> None:
    logger.warning(
        "claiming failed (%d in a row), trying again in %.1f s: %s", failures, delay, exc
    )


def _retry_after(exc: Exception) -> float | None:
    return exc.retry_after if isinstance(exc, APIError) else None


# -- blocking ---------------------------------------------------------------------------------


class PulledTransaction(_Pulled):
    """One claimed transaction: `id`, `state`, `attempts`, `history`, `output`, the `event`
    (a `Resource`: `id`, `trigger`, `user_id`, `payload`, `timestamp`, ...) and `resource`,
    the transaction exactly as the server last answered. Report with `finish`, `fail`,
    `set_state` or `release`; `renew` extends the lease (the loop does it for you)."""

    def __init__(
        self, client: Client, resource: Resource, lease_seconds: int, leased_at: float
    ) -> None:
        super().__init__(resource, lease_seconds, leased_at)
        self._client = client
        self._lock = threading.Lock()

    def finish(self, output: Any = None) -> Resource:
        """Done: the transaction is `finished`, with `output` (kept as it was when None)."""
        return self._report(FINISHED, output)

    def fail(self, error: str | BaseException | None = None, output: Any = None) -> Resource:
        """Given up: the transaction is `failed`; `error` goes into the output as
        `{"error": "..."}`. Retry or replay it to process it again."""
        return self._report(FAILED, failure_output(error, output))

    def set_state(self, state: str, output: Any = None) -> Resource:
        """A state of your own (a lowercase name such as `shipping`), or any of the
        standard ones. A state of your own has no lease: it is held until reported again."""
        return self._report(state, output)

    def release(self, output: Any = None) -> Resource:
        """Hand it back: `pending` again, for any consumer to claim at once."""
        return self._report(PENDING, output)

    def renew(self, lease_seconds: int | None = None) -> Resource:
        """Extend the lease by `lease_seconds` from now (the loop's lease when None)."""
        return self._report(PROCESSING, None, lease_seconds)

    def _report(self, state: str, output: Any, lease_seconds: int | None = None) -> Resource:
        with self._lock:
            return self._send(state, output, self._lease_for(state, lease_seconds))

    def _send(
        self, state: str, output: Any, lease_seconds: int | None, *, retries: bool = True
    ) -> Resource:
        sent_at = time.monotonic()
        call = Ops.report(self.id, state, output, lease_seconds)
        answer = self._client.request(call, retries=retries)
        self._answered(answer, sent_at, lease_seconds)
        return answer

    def _keep_alive(self) -> None:
        """The renewer's turn: renew if due. A report under way is not waited for (it may be
        slow, and the other transactions' leases are running out meanwhile): it is skipped
        this round. The renewal is sent once; a failure waits for a later round."""
        if not self._renewal_due(time.monotonic()):
            return
        if not self._lock.acquire(blocking=False):
            return
        try:
            if not self._renewal_due(time.monotonic()):  # a report may have come first
                return
            try:
                self._send(PROCESSING, None, self._lease_seconds, retries=False)
            except Exception as exc:
                self._renewal_failed(exc, time.monotonic())
        finally:
            self._lock.release()

    def _let_go(self) -> None:
        """Release a transaction the loop never handed out; a failure is only logged (the
        lease runs out on its own)."""
        try:
            with self._lock:
                self._send(PENDING, None, None)
        except Exception as exc:
            logger.warning("could not release %s (its lease will run out): %s", self.id, exc)


class _RenewerThread:
    def __init__(self, held: _Held) -> None:
        self._held = held
        self.stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="eventyard-lease-renewer", daemon=True
            )
            self._thread.start()

    def _run(self) -> None:
        while not self.stopping.is_set():
            for txn in self._held.current():
                if self.stopping.is_set():
                    return
                assert isinstance(txn, PulledTransaction)
                txn._keep_alive()
            self.stopping.wait(self._held.next_wake(time.monotonic()))

    def stop(self) -> None:
        self.stopping.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            # A renewal under way finishes first (a request at most); none starts after.
            self._thread.join(timeout=TIMEOUT_MARGIN_SECONDS)


class PullLoop(Iterator[PulledTransaction]):
    """The iterator `Client.consume()` returns; see the module docstring.

    Use it in a `for` loop, and as a context manager to be certain the loop's end releases
    what it holds at once. `stop()` (from any thread, a signal handler say) ends the loop
    before it hands out another transaction; a long poll under way finishes first.
    """

    def __init__(self, client: Client, consumer_id: str, options: ConsumeOptions) -> None:
        self.options = options
        self._puller = _Puller(client, consumer_id, options)
        # The generator refers to the puller, never to this object: when the last reference
        # to the loop goes (a `for` left by break or an exception), the generator is closed
        # at once, not whenever the cycle collector would get to a cycle.
        self._loop = self._puller.run()

    def __iter__(self) -> PullLoop:
        return self

    def __next__(self) -> PulledTransaction:
        return next(self._loop)

    def stop(self) -> None:
        """End the loop before the next transaction is handed out."""
        self._puller.stopping.set()

    def close(self) -> None:
        """End the loop now: release what it claimed and has not handed out."""
        self._loop.close()

    def __enter__(self) -> PullLoop:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _Puller:
    """A sync loop's state and its generator."""

    def __init__(self, client: Client, consumer_id: str, options: ConsumeOptions) -> None:
        self._client = client
        self._consumer_id = consumer_id
        self.options = options
        self.stopping = threading.Event()
        self._held = _Held()
        self._renewer = _RenewerThread(self._held)

    def _claim(self) -> list[PulledTransaction]:
        """One claim, registered with the renewer; an empty one paused up to the idle floor."""
        options = self.options
        wait = options.claim_wait(self._client._http.timeout.read)
        call = Ops.claim(self._consumer_id, options.batch_size, options.lease_seconds, wait)
        sent_at = time.monotonic()
        claimed = self._client.request(call)
        txns = [
            PulledTransaction(self._client, item, options.lease_seconds, sent_at)
            for item in claimed
        ]
        for txn in txns:
            txn._renewing = options.renew
        self._held.add(txns)
        if txns and options.renew:
            self._renewer.start()
        elif not txns:
            idle = IDLE_FLOOR_SECONDS - (time.monotonic() - sent_at)
            if idle > 0 and not options.stop_when_empty:
                self.stopping.wait(idle)
        return txns

    def run(self) -> Generator[PulledTransaction, None, None]:
        waiting: deque[PulledTransaction] = deque()
        failures = 0
        try:
            while not self.stopping.is_set():
                if not waiting:
                    try:
                        claimed = self._claim()
                    except (APIError, TransportError) as exc:
                        if not _transient(exc):
                            raise
                        failures += 1
                        delay = self._client.retry_policy.delay(failures, _retry_after(exc))
                        _claim_failed(exc, failures, delay)
                        self.stopping.wait(delay)
                        continue
                    if failures:
                        logger.info("claiming works again after %d failure(s)", failures)
                        failures = 0
                    if not claimed:
                        if self.options.stop_when_empty:
                            return
                        continue
                    waiting.extend(claimed)
                txn = waiting.popleft()
                txn._handed_out = True
                yield txn
        finally:
            self._renewer.stop()
            held = self._held.stop_renewing()
            for txn in waiting:
                txn._let_go()
            _warn_unreported(held)


def consume(
    client: Client,
    consumer_id: str,
    *,
    batch_size: int = 10,
    lease_seconds: int = 60,
    wait_seconds: float = 20.0,
    renew: bool = True,
    stop_when_empty: bool = False,
) -> PullLoop:
    """Claim a pull consumer's transactions and yield them one at a time; see the module
    docstring. The options are checked here, before anything is claimed."""
    options = ConsumeOptions(batch_size, lease_seconds, wait_seconds, renew, stop_when_empty)
    return PullLoop(client, consumer_id, options)


# -- asyncio ----------------------------------------------------------------------------------


class AsyncPulledTransaction(_Pulled):
    """`PulledTransaction` for `AsyncClient`: the same data, and awaitable reports."""

    def __init__(
        self, client: AsyncClient, resource: Resource, lease_seconds: int, leased_at: float
    ) -> None:
        super().__init__(resource, lease_seconds, leased_at)
        self._client = client
        self._lock = asyncio.Lock()

    async def finish(self, output: Any = None) -> Resource:
        """Done: the transaction is `finished`, with `output` (kept as it was when None)."""
        return await self._report(FINISHED, output)

    async def fail(self, error: str | BaseException | None = None, output: Any = None) -> Resource:
        """Given up: the transaction is `failed`; `error` goes into the output as
        `{"error": "..."}`. Retry or replay it to process it again."""
        return await self._report(FAILED, failure_output(error, output))

    async def set_state(self, state: str, output: Any = None) -> Resource:
        """A state of your own (a lowercase name such as `shipping`), or any of the
        standard ones. A state of your own has no lease: it is held until reported again."""
        return await self._report(state, output)

    async def release(self, output: Any = None) -> Resource:
        """Hand it back: `pending` again, for any consumer to claim at once."""
        return await self._report(PENDING, output)

    async def renew(self, lease_seconds: int | None = None) -> Resource:
        """Extend the lease by `lease_seconds` from now (the loop's lease when None)."""
        return await self._report(PROCESSING, None, lease_seconds)

    async def _report(self, state: str, output: Any, lease_seconds: int | None = None) -> Resource:
        async with self._lock:
            return await self._send(state, output, self._lease_for(state, lease_seconds))

    async def _send(
        self, state: str, output: Any, lease_seconds: int | None, *, retries: bool = True
    ) -> Resource:
        sent_at = time.monotonic()
        call = Ops.report(self.id, state, output, lease_seconds)
        answer = await self._client.request(call, retries=retries)
        self._answered(answer, sent_at, lease_seconds)
        return answer

    async def _keep_alive(self) -> None:
        """See `PulledTransaction._keep_alive`."""
        if not self._renewal_due(time.monotonic()) or self._lock.locked():
            return
        async with self._lock:  # not contended: nothing was awaited since locked()
            if not self._renewal_due(time.monotonic()):
                return
            try:
                await self._send(PROCESSING, None, self._lease_seconds, retries=False)
            except Exception as exc:
                self._renewal_failed(exc, time.monotonic())

    async def _let_go(self) -> None:
        try:
            async with self._lock:
                await self._send(PENDING, None, None)
        except Exception as exc:
            logger.warning("could not release %s (its lease will run out): %s", self.id, exc)


class AsyncPullLoop(AsyncIterator[AsyncPulledTransaction]):
    """The async iterator `AsyncClient.consume()` returns; see the module docstring.

    Use it as an async context manager (`async with client.consume(...) as txns:`) so that
    leaving the loop releases what it holds at once: an `async for` that is left early
    closes its iterator only when the event loop gets to it. `stop()` ends the loop before it
    hands out another transaction.
    """

    def __init__(self, client: AsyncClient, consumer_id: str, options: ConsumeOptions) -> None:
        self.options = options
        self._puller = _AsyncPuller(client, consumer_id, options)
        self._loop = self._puller.run()  # no reference back to this object: see PullLoop

    def __aiter__(self) -> AsyncPullLoop:
        return self

    async def __anext__(self) -> AsyncPulledTransaction:
        return await self._loop.__anext__()

    def stop(self) -> None:
        """End the loop before the next transaction is handed out."""
        self._puller.stopping.set()

    async def aclose(self) -> None:
        """End the loop now: release what it claimed and has not handed out."""
        await self._loop.aclose()

    async def __aenter__(self) -> AsyncPullLoop:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


class _AsyncPuller:
    """An async loop's state and its async generator."""

    def __init__(self, client: AsyncClient, consumer_id: str, options: ConsumeOptions) -> None:
        self._client = client
        self._consumer_id = consumer_id
        self.options = options
        self.stopping = asyncio.Event()
        self._held = _Held()
        self._renewer: asyncio.Task[None] | None = None

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    async def _renew_forever(self) -> None:
        while True:
            for txn in self._held.current():
                assert isinstance(txn, AsyncPulledTransaction)
                await txn._keep_alive()
            await asyncio.sleep(self._held.next_wake(time.monotonic()))

    async def _claim(self) -> list[AsyncPulledTransaction]:
        options = self.options
        wait = options.claim_wait(self._client._http.timeout.read)
        call = Ops.claim(self._consumer_id, options.batch_size, options.lease_seconds, wait)
        sent_at = time.monotonic()
        claimed = await self._client.request(call)
        txns = [
            AsyncPulledTransaction(self._client, item, options.lease_seconds, sent_at)
            for item in claimed
        ]
        for txn in txns:
            txn._renewing = options.renew
        self._held.add(txns)
        if txns and options.renew and self._renewer is None:
            self._renewer = asyncio.create_task(
                self._renew_forever(), name="eventyard-lease-renewer"
            )
        elif not txns:
            idle = IDLE_FLOOR_SECONDS - (time.monotonic() - sent_at)
            if idle > 0 and not options.stop_when_empty:
                await self._pause(idle)
        return txns

    async def run(self) -> AsyncGenerator[AsyncPulledTransaction, None]:
        waiting: deque[AsyncPulledTransaction] = deque()
        failures = 0
        try:
            while not self.stopping.is_set():
                if not waiting:
                    try:
                        claimed = await self._claim()
                    except (APIError, TransportError) as exc:
                        if not _transient(exc):
                            raise
                        failures += 1
                        delay = self._client.retry_policy.delay(failures, _retry_after(exc))
                        _claim_failed(exc, failures, delay)
                        await self._pause(delay)
                        continue
                    if failures:
                        logger.info("claiming works again after %d failure(s)", failures)
                        failures = 0
                    if not claimed:
                        if self.options.stop_when_empty:
                            return
                        continue
                    waiting.extend(claimed)
                txn = waiting.popleft()
                txn._handed_out = True
                yield txn
        finally:
            if self._renewer is not None:
                self._renewer.cancel()
                # wait() rather than awaiting the task: a cancellation of this loop itself
                # must go on propagating, not be swallowed with the renewer's.
                await asyncio.wait({self._renewer})
            held = self._held.stop_renewing()
            for txn in waiting:
                await txn._let_go()
            _warn_unreported(held)


def consume_async(
    client: AsyncClient,
    consumer_id: str,
    *,
    batch_size: int = 10,
    lease_seconds: int = 60,
    wait_seconds: float = 20.0,
    renew: bool = True,
    stop_when_empty: bool = False,
) -> AsyncPullLoop:
    """The async twin of `consume`: an async iterator of `AsyncPulledTransaction`s."""
    options = ConsumeOptions(batch_size, lease_seconds, wait_seconds, renew, stop_when_empty)
    return AsyncPullLoop(client, consumer_id, options)
