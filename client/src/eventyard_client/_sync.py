"""`Client`: the blocking shell around the sans-I/O core (`_core`).

It owns an `httpx.Client`, sends each `Call` with retries the core allows, and groups the
API's operations by resource: `client.events`, `client.triggers`, `client.keys`,
`client.consumers`, `client.transactions`, `client.project`. `AsyncClient` in `_async.py`
is the same, awaited.
"""

from __future__ import annotations

import builtins
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, Literal, TypeVar

import httpx

from eventyard_client import _core
from eventyard_client._core import Call, Ops, RetryPolicy, drop_none, time_param
from eventyard_client.consume import PullLoop, consume
from eventyard_client.errors import APIError, TransportError
from eventyard_client.queue import CLOSED_MESSAGE, BackgroundQueue, QueueStats, RejectedEvent
from eventyard_client.resource import Resource
from eventyard_client.stream import EventStream, stream_events

T = TypeVar("T")
TimeArg = datetime | int | str

# Every open Client, so a forked child can give each one connections and a queue of its own.
_live_clients: weakref.WeakSet[Client] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    """A child of `os.fork` must not write on the parent's pooled keep-alive sockets (the
    two would interleave requests on one connection and read each other's answers), nor
    send what the parent queued. Each client gets a fresh pool and an empty queue; the old
    pool is dropped, not closed, since closing would shut the sockets under the parent. (A
    transport you passed in is reused: make it fork-safe.)"""
    for client in list(_live_clients):
        client._http = client._new_http()
        client._queue_lock = threading.Lock()  # it may have been held at the fork
        if client._queue is not None:
            client._queue._after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class Client:
    """A connection to one eventyard server with one key.

    `url` and `key` default to the `EVENTYARD_URL` and `EVENTYARD_KEY` environment variables
    (and the URL to http://127.0.0.1:8000). Requests that fail in a way that is safe to
    repeat are retried `max_retries` times with exponential backoff, honouring Retry-After.
    `track()` queues events and sends them in batches from a background thread; the
    `batch_size`, `flush_interval`, `max_queue_size`, `on_full`, `max_backoff`,
    `shutdown_timeout` and `on_error` options shape that queue (see `QueueOptions` and
    `eventyard_client.queue`).
    """

    def __init__(
        self,
        url: str | None = None,
        key: str | None = None,
        *,
        timeout: float = 30.0,
        max_retries: int = 3,
        batch_size: int = 100,
        flush_interval: float = 0.5,
        max_queue_size: int = 10_000,
        on_full: Literal["drop", "block"] = "drop",
        max_backoff: float = 30.0,
        shutdown_timeout: float = 10.0,
        on_error: Callable[[RejectedEvent], None] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = _core.base_url(url or os.environ.get("EVENTYARD_URL"))
        self.key = key or os.environ.get("EVENTYARD_KEY")
        self.retry_policy = RetryPolicy(max_retries=max_retries)
        self.queue_options = _core.QueueOptions(
            batch_size=batch_size,
            flush_interval=flush_interval,
            max_queue_size=max_queue_size,
            on_full=on_full,
            shutdown_timeout=shutdown_timeout,
            max_backoff=max_backoff,
        )
        self.on_error = on_error
        self._timeout = timeout
        self._transport = transport
        self._http = self._new_http()
        self._closed = False
        self._queue: BackgroundQueue | None = None
        self._queue_lock = threading.Lock()  # track() may make the queue from many threads
        self.events = Events(self)
        self.triggers = Triggers(self)
        self.keys = Keys(self)
        self.consumers = Consumers(self)
        self.transactions = Transactions(self)
        self.project = Project(self)
        _live_clients.add(self)

    def _new_http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.url,
            headers=_core.request_headers(self.key),
            timeout=self._timeout,
            transport=self._transport,
        )

    # -- plumbing
    def request(self, call: Call[T], *, retries: bool = True) -> T:
        """Send one call, retrying what is safe to retry; return its parsed answer.
        `retries=False` sends it once (the queue keeps its own schedule of retries)."""
        policy = self.retry_policy if retries else RetryPolicy(max_retries=0)
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    params=call.params or None,
                    content=call.encoded(),
                    headers=_core.call_headers(call),
                )
            except httpx.TransportError as exc:
                sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout)
                delay = _core.retry_delay(policy, call, attempt, sent=sent)
                if delay is None:
                    raise TransportError(f"{call.method} {call.path}: {exc!r}") from exc
                time.sleep(delay)
                continue
            try:
                return call.parse(
                    _core.decode(response.status_code, response.headers, response.content)
                )
            except APIError as exc:
                delay = _core.retry_delay(
                    policy, call, attempt, status=exc.status, retry_after=exc.retry_after
                )
                if delay is None:
                    raise
                time.sleep(delay)

    def close(self) -> None:
        """Send what `track()` queued (for at most `shutdown_timeout` seconds), then close
        the connections. `track()` refuses events from then on."""
        self._closed = True
        if self._queue is not None:
            self._queue.close()
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- sending
    def send(
        self,
        trigger: str,
        user_id: str | int,
        payload: Mapping[str, Any] | None = None,
        *,
        timestamp: TimeArg | None = None,
        idempotency_key: str | None = None,
    ) -> Resource:
        """Send one event now and return it as stored (201) or as first stored (a repeat)."""
        body = _core.event_body(
            trigger, user_id, payload, timestamp=timestamp, idempotency_key=idempotency_key
        )
        return self.request(Ops.send_event(body))

    def track(
        self,
        trigger: str,
        user_id: str | int,
        payload: Mapping[str, Any] | None = None,
        *,
        timestamp: TimeArg | None = None,
        idempotency_key: str | None = None,
    ) -> str:
        """Queue one event for the background sender and return its idempotency key.

        Events go out in batches (`batch_size`, `flush_interval`); a transient failure is
        retried until it succeeds, so nothing queued is lost and, thanks to the key, nothing
        is stored twice. When `max_queue_size` events wait, `on_full="drop"` drops the new
        event (with a warning, counted in `queue_stats().dropped`) and `on_full="block"` waits
        for room. Events the server rejects are logged, counted in `queue_stats().rejected`
        and handed to `on_error`. A payload that is not JSON raises TypeError here; after
        `close()`, track() raises RuntimeError.
        """
        body = _core.event_body(
            trigger, user_id, payload, timestamp=timestamp, idempotency_key=idempotency_key
        )
        self._background().put(body)
        return str(body["idempotency_key"])

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every queued event has been sent (or given up on as rejected); False
        when `timeout` seconds passed first."""
        return True if self._queue is None else self._queue.flush(timeout)

    def queue_stats(self) -> QueueStats:
        """What the background queue has done: sent, duplicates, rejected, dropped, ..."""
        return QueueStats() if self._queue is None else self._queue.stats()

    def _background(self) -> BackgroundQueue:
        with self._queue_lock:
            if self._queue is None:
                if self._closed:
                    raise RuntimeError(CLOSED_MESSAGE)
                self._queue = BackgroundQueue(self, self.queue_options, self.on_error)
            return self._queue

    def consume(
        self,
        consumer_id: str,
        *,
        batch_size: int = 10,
        lease_seconds: int = 60,
        wait_seconds: float = 20.0,
        renew: bool = True,
        stop_when_empty: bool = False,
    ) -> PullLoop:
        """Claim and yield a pull consumer's transactions, until the loop ends or, with
        `stop_when_empty=True`, no work is left: up to `batch_size` a claim, each leased for
        `lease_seconds` (renewed while held when `renew`), long-polling up to `wait_seconds`
        for work (see `eventyard_client.consume`)."""
        return consume(
            self,
            consumer_id,
            batch_size=batch_size,
            lease_seconds=lease_seconds,
            wait_seconds=wait_seconds,
            renew=renew,
            stop_when_empty=stop_when_empty,
        )

    def send_batch(self, events: list[Mapping[str, Any]]) -> Resource:
        """Send up to 1,000 events in one request; one result per event, in order."""
        return self.request(Ops.send_batch([_core.with_idempotency_key(e) for e in events]))


class _Namespace:
    def __init__(self, client: Client) -> None:
        self._client = client


class Events(_Namespace):
    def create(
        self,
        trigger: str,
        user_id: str | int,
        payload: Mapping[str, Any] | None = None,
        *,
        timestamp: TimeArg | None = None,
        idempotency_key: str | None = None,
    ) -> Resource:
        """Send one event now (the same as `client.send`)."""
        return self._client.send(
            trigger, user_id, payload, timestamp=timestamp, idempotency_key=idempotency_key
        )

    def list(self, **filters: Any) -> Resource:
        """One page: `{"data": [...], "next_cursor": ...}`. Filters: trigger, user_id, source,
        since, until, consumer, state, limit, cursor."""
        return self._client.request(Ops.list_events(**filters))

    def iter(self, **filters: Any) -> Iterator[Resource]:
        """Every event matching the filters, newest first, fetching page after page."""
        filters.setdefault("limit", 1000)
        while True:
            page = self.list(**filters)
            yield from page["data"]
            if not page.get("next_cursor"):
                return
            filters["cursor"] = page["next_cursor"]

    def stream(
        self,
        *,
        trigger: str | None = None,
        user_id: str | int | None = None,
        since_id: str | None = None,
        max_seconds: float | None = None,
        reconnect: bool = True,
    ) -> EventStream:
        """New events as they are stored (`GET /v1/events/stream`), reconnecting with
        Last-Event-ID and dropping repeats: `trigger` and `user_id` filter, `since_id` starts
        after that event, `max_seconds` ends it, `reconnect=False` ends it with the first
        connection (see `eventyard_client.stream`). Closing it (`with`, `close()`)
        closes the connection."""
        return stream_events(
            self._client,
            trigger=trigger,
            user_id=user_id,
            since_id=since_id,
            max_seconds=max_seconds,
            reconnect=reconnect,
        )

    def get(self, event_id: str) -> Resource:
        """One event with its transactions and processing summary."""
        return self._client.request(Ops.get_event(event_id))

    def erase_user(self, user_id: str) -> Resource:
        """Erase every event of one user (delete scope)."""
        return self._client.request(Ops.erase_user(user_id))

    def stats(self, window: Literal["hour", "day"] = "hour") -> Resource:
        return self._client.request(Ops.stats(window))


class Triggers(_Namespace):
    def create(self, name: str, **fields: Any) -> Resource:
        """Create a trigger: `id`, `description`, `attributes` or `json_schema`, ..."""
        return self._client.request(Ops.create_trigger({"name": name, **fields}))

    def list(self, *, archived: bool = False) -> builtins.list[Resource]:
        return self._client.request(Ops.list_triggers(archived))

    def get(self, trigger_id: str) -> Resource:
        return self._client.request(Ops.get_trigger(trigger_id))

    def update(self, trigger_id: str, **fields: Any) -> Resource:
        return self._client.request(Ops.update_trigger(trigger_id, fields))

    def archive(self, trigger_id: str) -> Resource:
        """Archive: the trigger and its events stay; new events are refused."""
        return self._client.request(Ops.archive_trigger(trigger_id))


class Keys(_Namespace):
    def create(self, name: str, scopes: list[str]) -> Resource:
        """Mint a key; its secret is in `key`, this once."""
        return self._client.request(Ops.create_key(name, scopes))

    def list(self) -> builtins.list[Resource]:
        return self._client.request(Ops.list_keys())

    def get(self, key_id: str) -> Resource:
        return self._client.request(Ops.get_key(key_id))

    def revoke(self, key_id: str) -> Resource:
        return self._client.request(Ops.revoke_key(key_id))


class Consumers(_Namespace):
    def create(
        self,
        name: str,
        kind: Literal["webhook", "pull"] = "webhook",
        *,
        url: str | None = None,
        triggers: list[str] | None = None,
        **fields: Any,
    ) -> Resource:
        """Create a consumer; its signing secret is in `secret`, this once."""
        body = drop_none(name=name, kind=kind, url=url, triggers=triggers, **fields)
        return self._client.request(Ops.create_consumer(body))

    def list(self) -> builtins.list[Resource]:
        return self._client.request(Ops.list_consumers())

    def get(self, consumer_id: str) -> Resource:
        return self._client.request(Ops.get_consumer(consumer_id))

    def update(self, consumer_id: str, **fields: Any) -> Resource:
        return self._client.request(Ops.update_consumer(consumer_id, fields))

    def delete(self, consumer_id: str) -> Resource:
        return self._client.request(Ops.delete_consumer(consumer_id))

    def pause(self, consumer_id: str) -> Resource:
        return self._client.request(Ops.consumer_action(consumer_id, "pause"))

    def resume(self, consumer_id: str) -> Resource:
        return self._client.request(Ops.consumer_action(consumer_id, "resume"))

    def rotate_secret(self, consumer_id: str, *, overlap_seconds: int | None = None) -> Resource:
        body = drop_none(overlap_seconds=overlap_seconds)
        return self._client.request(Ops.consumer_action(consumer_id, "rotate-secret", body))

    def replay(self, consumer_id: str, since: TimeArg, *, only_failed: bool = False) -> Resource:
        body = {"since": time_param(since), "only_failed": only_failed}
        return self._client.request(Ops.consumer_action(consumer_id, "replay", body))

    def transactions(self, consumer_id: str, **filters: Any) -> Resource:
        """One page of the consumer's transactions: `state`, `limit`, `after`."""
        return self._client.request(Ops.consumer_transactions(consumer_id, **filters))

    def iter_transactions(self, consumer_id: str, **filters: Any) -> Iterator[Resource]:
        filters.setdefault("limit", 1000)
        while True:
            page = self.transactions(consumer_id, **filters)
            yield from page["data"]
            if not page.get("next_after"):
                return
            filters["after"] = page["next_after"]

    def claim(
        self,
        consumer_id: str,
        *,
        limit: int = 10,
        lease_seconds: int = 60,
        wait_seconds: float = 0,
    ) -> builtins.list[Resource]:
        """Claim pending transactions of a pull consumer, each with its `event`."""
        call = Ops.claim(consumer_id, limit, lease_seconds, wait_seconds)
        return self._client.request(call)


class Transactions(_Namespace):
    def get(self, transaction_id: str) -> Resource:
        return self._client.request(Ops.get_transaction(transaction_id))

    def report(
        self,
        transaction_id: str,
        state: str,
        output: Any = None,
        *,
        lease_seconds: int | None = None,
    ) -> Resource:
        """Set a transaction's state: finished, failed, pending, processing (renews the
        lease) or a state of your own."""
        return self._client.request(Ops.report(transaction_id, state, output, lease_seconds))

    def retry(self, transaction_id: str) -> Resource:
        return self._client.request(Ops.retry_transaction(transaction_id))


class Project(_Namespace):
    def get(self) -> Resource:
        return self._client.request(Ops.get_project())

    def update(self, **fields: Any) -> Resource:
        return self._client.request(Ops.update_project(fields))
