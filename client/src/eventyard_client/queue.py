"""The background queue behind `track()`: a thread for `Client`, a task for `AsyncClient`.

Both are thin drivers of `_batching.Buffer`, which decides what goes out when. The driver
waits until a batch is due, sends it once (`request(..., retries=False)`), and on a failure
that is not the server's "no" (a refused or broken connection, a timeout, a status in
`_core.transient`) waits
with exponential backoff and jitter, or the server's Retry-After, and sends the same batch
again, for as long as it takes: events are only ever settled by an answer. Events the
server rejects are logged and handed to `on_error`, never retried.

Each event is encoded to JSON when it is queued and sent as those bytes (see `_batching`):
changing a payload after `track()` changes nothing that is sent.

A forked child (os.fork, multiprocessing's "fork", a preforking server) starts with an empty
queue and no sending thread of its own: the events queued before the fork stay the parent's
to send, and sending them from the child too would send them twice. Events the child tracks
are sent by a thread the child starts. (A multiprocessing child ends without running exit
hooks: it should call `flush()` or `close()` before it returns.)

A `track()` from `on_error`, which runs on the sending thread, never waits for room: with
`on_full="block"` the event is queued even past `max_queue_size` (waiting would wait for the
very thread that frees room), with `"drop"` a full queue drops it as always.

`close()` (and, for `Client`, an exit hook, so a script that never calls it still sends
what it queued) stops new events, sends what is left and gives up after `shutdown_timeout`
seconds, logging how many events were not sent.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from eventyard_client._batching import (
    Batch,
    Buffer,
    Outcome,
    QueueStats,
    RejectedEvent,
    answered,
    batch_call,
    encode_event,
    failed,
    refused,
    report,
    retry_pause,
    retry_policy,
)
from eventyard_client._core import QueueOptions
from eventyard_client.errors import APIError, TransportError

if TYPE_CHECKING:
    from eventyard_client._async import AsyncClient
    from eventyard_client._sync import Client

__all__ = ["AsyncBackgroundQueue", "BackgroundQueue", "QueueStats", "RejectedEvent"]

logger = logging.getLogger("eventyard_client")

OnError = Callable[[RejectedEvent], None]
CLOSED_MESSAGE = "the client is closed: track() cannot queue events after close()"


def _warn_dropped(count: int | None, queued: int) -> None:
    if count is not None:
        logger.warning(
            "The event queue is full (%d events waiting): dropped %d event(s). The server is "
            "slow or unreachable; raise max_queue_size or pass on_full='block' to wait instead.",
            queued,
            count,
        )


def _wakes_sender(buffer: Buffer, now: float) -> bool:
    """Whether a new event changes what the sender waits for: a first event starts the
    interval's clock, a full batch is due at once. Other events need not wake it."""
    return len(buffer) == 1 or buffer.due(now)


def _log_failure(batch: Batch, outcome: Outcome, attempt: int, delay: float) -> None:
    # The first failure of a batch is worth a warning; the ones after it repeat it.
    level = logging.WARNING if attempt == 1 else logging.DEBUG
    logger.log(
        level,
        "Could not send a batch of %d events (%s); trying again in %.1f s, and until it is sent.",
        len(batch),
        outcome.failure,
        delay,
    )


def _log_unsent(count: int, timeout: float) -> None:
    if count:
        logger.error(
            "%d queued events were not sent: the server did not take them within the "
            "shutdown timeout (%s s).",
            count,
            timeout,
        )


class BackgroundQueue:
    """`Client`'s queue: callers on any thread, one daemon thread sending."""

    def __init__(
        self, client: Client, options: QueueOptions, on_error: OnError | None = None
    ) -> None:
        self._client = client
        self._options = options
        self._on_error = on_error
        self._buffer = Buffer(options)
        self._policy = retry_policy(options, client.retry_policy.base_seconds)
        # One condition for every wait: the sender for work, callers for room or a flush.
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._deadline: float | None = None  # once closing: when to give up what is left

    def put(self, event: Mapping[str, Any]) -> bool:
        """Queue one event; False when the queue is full and `on_full` is "drop"."""
        body = encode_event(event)
        with self._changed:
            self._check_open()
            # A full queue only empties if a sender runs: make sure one does before waiting
            # for room or dropping (its thread may be gone: a fork, or a crash).
            self._start()
            if self._buffer.has_room() or self._options.on_full == "block":
                # From on_error, on the sending thread, waiting would wait for itself: the
                # event goes in past the limit instead (see the module docstring).
                on_sender = threading.current_thread() is self._thread
                while not on_sender and not self._buffer.has_room():
                    self._changed.wait()
                    self._check_open()
                now = time.monotonic()
                self._buffer.add(body, now)
                if _wakes_sender(self._buffer, now):
                    self._changed.notify_all()
                return True
            count = self._buffer.drop(time.monotonic())
            queued = len(self._buffer)
        _warn_dropped(count, queued)
        return False

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued so far is settled; False after `timeout` seconds."""
        if threading.current_thread() is self._thread:
            raise RuntimeError("flush() cannot wait for the queue from its own on_error")
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            target = self._buffer.want_flush()
            if len(self._buffer) and not self._closed:
                self._start()
            self._changed.notify_all()
            while not self._buffer.flushed(target):
                if self._closed and not self._sending():
                    return False  # closed, and what is left will not be sent
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def close(self) -> None:
        """Stop taking events, send what is queued within `shutdown_timeout`, and stop."""
        timeout = self._options.shutdown_timeout
        with self._changed:
            if self._closed:
                return
            self._closed = True
            self._buffer.want_flush()
            self._deadline = time.monotonic() + timeout
            self._changed.notify_all()
            thread = self._thread
        atexit.unregister(self.close)
        if thread is not None and thread is not threading.current_thread():
            # A send in progress may outlast the deadline; the thread is a daemon, so it
            # cannot hold the process open.
            thread.join(max(self._deadline - time.monotonic(), 0.0))
        with self._changed:
            _log_unsent(len(self._buffer), timeout)

    def stats(self) -> QueueStats:
        with self._changed:
            return self._buffer.stats()

    # -- the sending thread
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(CLOSED_MESSAGE)

    def _after_fork(self) -> None:
        """In a forked child: the parent's sending thread does not exist here, and the lock
        may have been held when the process forked. Start again with a fresh lock, no
        thread and an empty buffer: what was queued before the fork is the parent's to send.
        The counters start again too, so `stats()` tells what this process did."""
        self._changed = threading.Condition()
        self._thread = None
        self._buffer = Buffer(self._options)

    def _start(self) -> None:
        # A sender that is gone (the process forked, or it died) is replaced: what is
        # queued must not wait for nobody.
        if self._thread is None or not self._thread.is_alive():
            if self._thread is not None:
                logger.warning("The queue's sending thread was gone; starting a new one.")
            self._thread = threading.Thread(
                target=self._run, name="eventyard-client-queue", daemon=True
            )
            self._thread.start()
            atexit.register(self.close)

    def _sending(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _pause(self, seconds: float) -> bool:
        """Wait before a retry; False once the shutdown deadline has passed. New events do
        not cut a pause short; `close()` does, once (its time is for sending), and no pause
        runs past its deadline."""
        with self._changed:
            closing = self._deadline is not None
            if self._deadline is not None:
                seconds = min(seconds, max(self._deadline - time.monotonic(), 0.0))
            self._changed.wait_for(lambda: not closing and self._deadline is not None, seconds)
            return not self._expired()

    def _next_batch(self) -> Batch | None:
        """Wait for a due batch; None when closing and done, or out of time."""
        with self._changed:
            while True:
                if self._expired() or (self._closed and not len(self._buffer)):
                    return None
                now = time.monotonic()
                if self._buffer.due(now):
                    return self._buffer.take()
                wait = self._buffer.wait_time(now)
                if self._deadline is not None:
                    left = self._deadline - now
                    wait = left if wait is None else min(wait, left)
                self._changed.wait(wait)

    def _run(self) -> None:
        try:
            while (batch := self._next_batch()) is not None:
                if not self._send(batch):
                    return
        finally:
            with self._changed:
                self._changed.notify_all()  # a flush() waiting for a sender that is gone

    def _send(self, batch: Batch) -> bool:
        """Send one batch until it is settled; False when the shutdown deadline passed."""
        attempt = 0
        while True:
            outcome = self._attempt(batch)
            if not outcome.retry:
                break
            attempt += 1
            delay = retry_pause(self._policy, attempt, outcome)
            _log_failure(batch, outcome, attempt, delay)
            with self._changed:
                self._buffer.note_failure(outcome)
            if not self._pause(delay):
                return False
        with self._changed:
            self._buffer.finish(batch, outcome)
            self._changed.notify_all()
        if attempt and not outcome.split:
            logger.info("Sent a batch of %d events after %d retries.", len(batch), attempt)
        report(batch, outcome, self._on_error)
        return True

    def _attempt(self, batch: Batch) -> Outcome:
        try:
            answer = self._client.request(batch_call(batch), retries=False)
        except APIError as exc:
            return refused(batch, exc)
        except TransportError as exc:
            return failed(exc)
        except Exception as exc:
            # Not a failure the client knows; the batch is kept and sent again all the same.
            # (Past the deadline it is the client closing its connections under a late send.)
            if not self._expired():
                logger.exception("Unexpected failure sending a batch of %d events", len(batch))
            return failed(exc)
        return answered(batch, answer)


class AsyncBackgroundQueue:
    """`AsyncClient`'s queue: one task on the event loop of the first `track()`."""

    def __init__(
        self, client: AsyncClient, options: QueueOptions, on_error: OnError | None = None
    ) -> None:
        self._client = client
        self._options = options
        self._on_error = on_error
        self._buffer = Buffer(options)
        self._policy = retry_policy(options, client.retry_policy.base_seconds)
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._deadline: float | None = None

    async def put(self, event: Mapping[str, Any]) -> bool:
        """Queue one event; False when the queue is full and `on_full` is "drop"."""
        body = encode_event(event)
        self._check_open()
        if not self._buffer.has_room():
            if self._options.on_full == "drop":
                _warn_dropped(self._buffer.drop(time.monotonic()), len(self._buffer))
                return False
            async with self._changed:
                await self._changed.wait_for(lambda: self._closed or self._buffer.has_room())
            self._check_open()
        now = time.monotonic()
        self._buffer.add(body, now)
        self._start()
        if _wakes_sender(self._buffer, now):
            await self._notify()
        return True

    async def flush(self, timeout: float | None = None) -> bool:
        """Wait until every event queued so far is settled; False after `timeout` seconds."""
        target = self._buffer.want_flush()
        if self._buffer.flushed(target):
            return True
        if not self._closed:
            self._start()
        task = self._task
        if task is None or task.done():
            return False  # closed, and what is left will not be sent
        await self._notify()
        settled = asyncio.ensure_future(self._settled(target))
        try:
            # The sender ending (closed and out of time) ends the wait as well.
            await asyncio.wait(
                {settled, task}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            settled.cancel()
        return self._buffer.flushed(target)

    async def _settled(self, target: int) -> None:
        async with self._changed:
            await self._changed.wait_for(lambda: self._buffer.flushed(target))

    async def close(self) -> None:
        """Stop taking events, send what is queued within `shutdown_timeout`, and stop."""
        if self._closed:
            return
        timeout = self._options.shutdown_timeout
        self._closed = True
        self._buffer.want_flush()
        self._deadline = time.monotonic() + timeout
        await self._notify()
        task = self._task
        if task is not None and not task.done():
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout)
            except TimeoutError:
                task.cancel()  # a send that outlasts the deadline
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        _log_unsent(len(self._buffer), timeout)

    def stats(self) -> QueueStats:
        return self._buffer.stats()

    # -- the sending task
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(CLOSED_MESSAGE)

    def _start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name="eventyard-client-queue"
            )

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    async def _pause(self, seconds: float) -> bool:
        """Wait before a retry; see `BackgroundQueue._pause`."""
        closing = self._deadline is not None
        if self._deadline is not None:
            seconds = min(seconds, max(self._deadline - time.monotonic(), 0.0))
        async with self._changed:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._changed.wait_for(lambda: not closing and self._deadline is not None),
                    seconds,
                )
        return not self._expired()

    async def _next_batch(self) -> Batch | None:
        async with self._changed:
            while True:
                if self._expired() or (self._closed and not len(self._buffer)):
                    return None
                now = time.monotonic()
                if self._buffer.due(now):
                    return self._buffer.take()
                wait = self._buffer.wait_time(now)
                if self._deadline is not None:
                    left = self._deadline - now
                    wait = left if wait is None else min(wait, left)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), wait)

    async def _run(self) -> None:
        try:
            while (batch := await self._next_batch()) is not None:
                if not await self._send(batch):
                    return
        except asyncio.CancelledError:
            if not self._closed and len(self._buffer):
                # The loop is ending (asyncio.run returning) without close() or flush().
                logger.error(
                    "%d queued events were not sent: the event loop stopped before "
                    "AsyncClient.close() or flush() was awaited.",
                    len(self._buffer),
                )
            raise

    async def _send(self, batch: Batch) -> bool:
        attempt = 0
        while True:
            outcome = await self._attempt(batch)
            if not outcome.retry:
                break
            attempt += 1
            delay = retry_pause(self._policy, attempt, outcome)
            _log_failure(batch, outcome, attempt, delay)
            self._buffer.note_failure(outcome)
            if not await self._pause(delay):
                return False
        self._buffer.finish(batch, outcome)
        await self._notify()
        if attempt and not outcome.split:
            logger.info("Sent a batch of %d events after %d retries.", len(batch), attempt)
        report(batch, outcome, self._on_error)
        return True

    async def _attempt(self, batch: Batch) -> Outcome:
        try:
            answer = await self._client.request(batch_call(batch), retries=False)
        except APIError as exc:
            return refused(batch, exc)
        except TransportError as exc:
            return failed(exc)
        except Exception as exc:
            logger.exception("Unexpected failure sending a batch of %d events", len(batch))
            return failed(exc)
        return answered(batch, answer)
