"""The background queue's decisions, with no I/O, no threads and no clock of its own.

`Buffer` holds the events `track()` queued, in order, and hands out one batch at a time:
at most `batch_size` events and at most `MAX_BATCH_BYTES` of JSON, once the batch is full,
its oldest event has waited `flush_interval` seconds, or someone is waiting for a flush.
A batch stays "in flight" (still counted as queued, still taking room) until its answer is
settled, so a failure never loses it: the shell sends the same batch again, and the
idempotency key every event carries makes the server answer `duplicate` for the ones it had
already stored. Batches go out one after another, so events are settled in the order they
were queued and "everything queued before this point is settled" is one counter.

Each event is encoded to JSON once, when it is queued, and the buffer keeps those bytes: a
batch's body is the queued bytes joined (`batch_call`), so a payload the caller changes after
`track()` cannot change what is sent, nor make a retried batch differ from its first send
(which the server would refuse as a reused idempotency key).

`answered`, `refused` and `failed` turn what happened to one send into an `Outcome`: the
counts of sent, duplicate and rejected events, or "send it again" (a refused connection, a
timeout, or a refusal `_core.transient` names: 408, 425, 429, any 5xx but 501 and 505, an
answer that is not eventyard's) with the server's Retry-After, or "split it" (a 413 for a
batch of more than one event); any other refusal is final. `report` logs an outcome and
hands rejected events to the caller's `on_error`. `Client` and `AsyncClient` drive all of
this from `queue.py`.
"""

from __future__ import annotations

import json
import logging
import re
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from eventyard_client._core import Call, QueueOptions, RetryPolicy, encode_body, transient
from eventyard_client.errors import APIError, FieldError
from eventyard_client.resource import Resource, to_resource

logger = logging.getLogger("eventyard_client")

# The server refuses requests over 512 KB; a batch stops growing well before that.
MAX_BATCH_BYTES = 384 * 1024
_ENVELOPE_BYTES = len(b'{"events":[]}')
_MIN_BATCH_BYTES = 1024
# A retry pause is capped long before the exponent matters; this keeps 2**n a small number
# when a server stays away for days.
_MAX_BACKOFF_EXPONENT = 32
# At most one "queue is full" warning this often, however many events are dropped.
DROP_WARNING_SECONDS = 10.0
_BATCH_PATH = re.compile(r"^\$\.events\[\d+\]")


@dataclass(frozen=True)
class QueueStats:
    """What the background queue has done since the client was made.

    `queued` events wait to be sent (including the batch being sent now); `sent` were
    stored, `duplicates` were already stored (a batch sent again after its answer was lost,
    or an idempotency key the server had seen), `rejected` were refused by the server and
    not retried, `dropped` were refused by a full queue (`on_full="drop"`), and `retries`
    counts the sends that failed and were tried again. `last_error` says why the last
    failed send failed.
    """

    queued: int = 0
    sent: int = 0
    duplicates: int = 0
    rejected: int = 0
    dropped: int = 0
    retries: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class RejectedEvent:
    """An event the server refused and the queue gave up on, as given to `on_error`.

    `status` is the HTTP status when the server refused the whole batch, None when it
    refused this one event in a batch it otherwise took (see `errors` for why). `event` is
    the event exactly as it was sent (decoded from the bytes queued by `track()`).
    """

    event: dict[str, Any]
    code: str
    message: str
    errors: list[FieldError] = field(default_factory=list)
    status: int | None = None


@dataclass(frozen=True)
class _Item:
    body: bytes  # the event's JSON, encoded once when it was queued
    added_at: float

    @property
    def size(self) -> int:
        return len(self.body)


@dataclass(frozen=True)
class Batch:
    items: tuple[_Item, ...]

    @property
    def content(self) -> bytes:
        """The request body: the queued bytes, joined."""
        return b'{"events":[' + b",".join(item.body for item in self.items) + b"]}"

    @property
    def events(self) -> list[dict[str, Any]]:
        """The events as sent, decoded (for the log and `on_error`)."""
        return [json.loads(item.body) for item in self.items]

    @property
    def size(self) -> int:
        """Bytes of the request body."""
        return _ENVELOPE_BYTES + sum(item.size for item in self.items) + len(self.items) - 1

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class Outcome:
    """What one send of a batch came to."""

    sent: int = 0
    duplicates: int = 0
    rejected: tuple[RejectedEvent, ...] = ()
    # The whole batch was refused for good (rejected holds every event of it).
    refusal: APIError | None = None
    # Send the same batch again, after Retry-After when the server gave one.
    retry: bool = False
    retry_after: float | None = None
    # Send the events again in smaller batches (the server found the request too large).
    split: bool = False
    # Why the send failed, for the log and `QueueStats.last_error`.
    failure: str | None = None


def encode_event(event: Mapping[str, Any]) -> bytes:
    """The event as it will be sent. Encoding it when it is queued fixes what is sent (the
    caller may change the payload afterwards) and refuses, in the caller's own thread, a
    payload that cannot be sent as JSON."""
    body = encode_body(event)
    assert body is not None
    return body


def batch_call(batch: Batch) -> Call[Resource]:
    """`POST /v1/events/batch` with the batch's pre-encoded body. Every event carries an
    idempotency key, so sending it again is safe."""
    return Call(
        "POST",
        "/v1/events/batch",
        to_resource,
        headers={"content-type": "application/json"},
        retry_safe=True,
        content=batch.content,
    )


class Buffer:
    """The queued events and the counters; see the module's docstring. Not thread-safe:
    the sync shell holds a lock around it, the async one runs it on one event loop."""

    def __init__(self, options: QueueOptions, max_batch_bytes: int = MAX_BATCH_BYTES) -> None:
        self.options = options
        self.max_batch_bytes = max_batch_bytes
        self._waiting: deque[_Item] = deque()
        self._waiting_bytes = 0
        self._in_flight: Batch | None = None
        self.added = 0  # events ever queued
        self.settled = 0  # of those, the ones sent, duplicate or rejected (in order)
        self._flush_target = 0  # settle at least this many before waiting for a full batch
        self._sent = 0
        self._duplicates = 0
        self._rejected = 0
        self._dropped = 0
        self._retries = 0
        self._last_error: str | None = None
        self._drops_unreported = 0
        self._last_drop_warning: float | None = None

    def __len__(self) -> int:
        in_flight = len(self._in_flight) if self._in_flight is not None else 0
        return len(self._waiting) + in_flight

    def has_room(self) -> bool:
        return len(self) < self.options.max_queue_size

    def add(self, body: bytes, now: float) -> int:
        """Queue one encoded event (`encode_event`); its sequence number, for `flushed`."""
        self._waiting.append(_Item(body, now))
        self._waiting_bytes += len(body)
        self.added += 1
        return self.added

    def drop(self, now: float) -> int | None:
        """Count one event refused by the full queue; how many drops to warn about now, or
        None while the last warning is recent."""
        self._dropped += 1
        self._drops_unreported += 1
        last = self._last_drop_warning
        if last is not None and now - last < DROP_WARNING_SECONDS:
            return None
        self._last_drop_warning = now
        count, self._drops_unreported = self._drops_unreported, 0
        return count

    def want_flush(self) -> int:
        """Send everything queued so far without waiting for full batches; the sequence
        number `flushed` waits for."""
        self._flush_target = max(self._flush_target, self.added)
        return self.added

    def flushed(self, target: int) -> bool:
        return self.settled >= target

    def due(self, now: float) -> bool:
        """Whether a batch should go out now."""
        if self._in_flight is not None or not self._waiting:
            return False
        return (
            len(self._waiting) >= self.options.batch_size
            or self._waiting_bytes >= self.max_batch_bytes
            or self._flush_target > self.settled
            or now - self._waiting[0].added_at >= self.options.flush_interval
        )

    def wait_time(self, now: float) -> float | None:
        """Seconds until a batch is due if nothing else happens; None for "not until
        something is queued"."""
        if self._in_flight is not None or not self._waiting:
            return None
        if self.due(now):
            return 0.0
        return self._waiting[0].added_at + self.options.flush_interval - now

    def take(self) -> Batch:
        """The next batch: the oldest events, up to `batch_size` of them and up to
        `max_batch_bytes` of JSON (always at least one)."""
        assert self._in_flight is None
        assert self._waiting
        items: list[_Item] = []
        size = _ENVELOPE_BYTES
        while self._waiting and len(items) < self.options.batch_size:
            item = self._waiting[0]
            grown = size + item.size + (1 if items else 0)
            if items and grown > self.max_batch_bytes:
                break
            items.append(self._waiting.popleft())
            self._waiting_bytes -= item.size
            size = grown
        self._in_flight = Batch(tuple(items))
        return self._in_flight

    def note_failure(self, outcome: Outcome) -> None:
        self._retries += 1
        self._last_error = outcome.failure

    def finish(self, batch: Batch, outcome: Outcome) -> None:
        """Settle the batch in flight: count it, or put it back to go out in smaller ones."""
        assert batch is self._in_flight
        assert not outcome.retry
        self._in_flight = None
        if outcome.split:
            # The server's request limit is lower than ours (a proxy's, or its own setting):
            # halve ours for good, and the same events go out first, in smaller batches.
            self.max_batch_bytes = max(batch.size // 2, _MIN_BATCH_BYTES)
            self._waiting.extendleft(reversed(batch.items))
            self._waiting_bytes += sum(item.size for item in batch.items)
            return
        self.settled += len(batch)
        self._sent += outcome.sent
        self._duplicates += outcome.duplicates
        self._rejected += len(outcome.rejected)
        if outcome.refusal is not None:
            self._last_error = _describe(outcome.refusal)

    def stats(self) -> QueueStats:
        return QueueStats(
            queued=len(self),
            sent=self._sent,
            duplicates=self._duplicates,
            rejected=self._rejected,
            dropped=self._dropped,
            retries=self._retries,
            last_error=self._last_error,
        )


def retry_policy(options: QueueOptions, base_seconds: float) -> RetryPolicy:
    """The queue's backoff: the client's first pause, doubling up to `max_backoff`."""
    return RetryPolicy(base_seconds=base_seconds, max_seconds=options.max_backoff)


def retry_pause(policy: RetryPolicy, attempt: int, outcome: Outcome) -> float:
    """Seconds to wait before sending a batch again after its `attempt`-th failure."""
    return policy.delay(min(attempt, _MAX_BACKOFF_EXPONENT), outcome.retry_after)


def answered(batch: Batch, answer: Any) -> Outcome:
    """Read the server's 200 answer to a batch: one result per event, in order."""
    results = answer.get("results") if isinstance(answer, Mapping) else None
    if not isinstance(results, list) or len(results) != len(batch):
        # Not an answer from an eventyard server (a proxy's page?); sending the batch
        # again is safe and the next answer may be a real one.
        return Outcome(retry=True, failure="the answer to a batch had no result per event")
    sent = duplicates = 0
    rejected: list[RejectedEvent] = []
    for item, result in zip(batch.items, results, strict=True):
        status = result.get("status") if isinstance(result, Mapping) else None
        if status == "accepted":
            sent += 1
        elif status == "duplicate":
            duplicates += 1
        else:
            rejected.append(_rejected_item(json.loads(item.body), result))
    return Outcome(sent=sent, duplicates=duplicates, rejected=tuple(rejected))


def refused(batch: Batch, error: APIError) -> Outcome:
    """Read a refusal of the whole batch: try again later, split it, or give it up."""
    if transient(error):
        return Outcome(retry=True, retry_after=error.retry_after, failure=_describe(error))
    if error.status == 413 and len(batch) > 1:
        return Outcome(split=True)
    rejected = tuple(
        RejectedEvent(event, error.code, error.message, list(error.errors), error.status)
        for event in batch.events
    )
    return Outcome(rejected=rejected, refusal=error)


def failed(error: Exception) -> Outcome:
    """A send that got no answer (refused, reset, timed out): send it again."""
    return Outcome(retry=True, failure=str(error) or type(error).__name__)


def report(
    batch: Batch, outcome: Outcome, on_error: Callable[[RejectedEvent], None] | None
) -> None:
    """Log what a settled batch came to and hand its rejected events to `on_error`."""
    if outcome.split:
        logger.warning(
            "The server found a batch of %d events (%d bytes) too large; sending smaller "
            "batches from now on.",
            len(batch),
            batch.size,
        )
    elif outcome.refusal is not None:
        logger.error(
            "The server refused a batch of %d events (%s); they are not sent again.",
            len(batch),
            _describe(outcome.refusal),
        )
    elif outcome.rejected:
        shown = "; ".join(_describe_rejected(r) for r in outcome.rejected[:5])
        more = len(outcome.rejected) - 5
        logger.warning(
            "The server rejected %d of %d events in a batch; they are not sent again: %s%s",
            len(outcome.rejected),
            len(batch),
            shown,
            f"; and {more} more" if more > 0 else "",
        )
    if on_error is None:
        return
    for rejected in outcome.rejected:
        try:
            on_error(rejected)
        except Exception:
            logger.exception("on_error raised for a rejected event")


def _rejected_item(event: dict[str, Any], result: Any) -> RejectedEvent:
    result = result if isinstance(result, Mapping) else {}
    # Paths point into the batch ($.events[3].payload.x); the caller knows the event.
    errors = [
        FieldError(_BATCH_PATH.sub("$", str(e.get("path", ""))), str(e.get("message", "")))
        for e in result.get("errors") or []
        if isinstance(e, Mapping)
    ]
    message = "; ".join(f"{e.path}: {e.message}" for e in errors) or "the event was rejected"
    return RejectedEvent(event, str(result.get("code") or "rejected"), message, errors)


def _describe(error: APIError) -> str:
    return f"{error.status} {error.code}: {error.message}"


def _describe_rejected(rejected: RejectedEvent) -> str:
    event = rejected.event
    # Not the user id or the payload: logs travel further than the events' own store.
    return (
        f"{event.get('trigger')!r} (idempotency key {event.get('idempotency_key')!r}): "
        f"{rejected.code}: {rejected.message}"
    )
