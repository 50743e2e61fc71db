"""Following `GET /v1/events/stream`: new events as they are stored, across dropped
connections and server restarts, with no event lost and none yielded twice.

The logic is sans-I/O, shared by the blocking and the async twin. `SSEParser` turns bytes
into server-sent-event messages (any mix of LF, CRLF and CR line ends; multi-line `data:`;
comments such as `: keep-alive`). `StreamSession` decides everything else: the query and
`Last-Event-ID` of each connection, which messages become events, and after a failure
whether to connect again and after how long. `stream_events` and `stream_events_async` only
move bytes between httpx and the session; they return an `EventStream` / `AsyncEventStream`,
an iterator that is also a context manager, so the connection can be closed for certain when
the caller stops early: `with` / `close()`, and `async with` / `aclose()` (an `async for`
left by `break` does not close its iterator; the event loop gets to it later, if at all).

Resuming: the server repeats the events of the last two seconds at or below the resume id
(one of them may have been committed after we last read), so the session keeps a bounded set
of the ids it has yielded and drops repeats; a `since_id` given by the caller is taken as
"everything up to here I have", so nothing at or below it is yielded. Reconnecting: once a
connection has been open, a broken or ended one is reopened with backoff (0.5 s doubling to
30 s, with jitter) for as long as it takes — a server restart is a pause, not an end. Before
the first connection has opened, failures are retried as any request is (the client's
`max_retries`), then raised, so a wrong URL fails fast. Only the statuses in
`_core.transient` are tried again; other refusals (401, 403, 404, 400, 501, ...) are raised
at once as the client's typed errors.

There is no read timeout as such: the server sends a keep-alive comment every 15 seconds,
so 45 seconds of silence means the connection is dead, and it is reopened.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING

import httpx

from eventyard_client._core import RetryPolicy, api_error, query, transient
from eventyard_client.errors import APIError, TransportError
from eventyard_client.resource import Resource

if TYPE_CHECKING:
    from eventyard_client._async import AsyncClient
    from eventyard_client._sync import Client

logger = logging.getLogger("eventyard_client.stream")

STREAM_PATH = "/v1/events/stream"
# Three missed keep-alives (the server sends one every 15 s) mean the connection is dead.
READ_TIMEOUT_SECONDS = 45.0
# How many recently yielded ids are remembered to drop the repeats of a resume. The server
# repeats two seconds' worth; this covers that at 5,000 events a second.
SEEN_IDS = 10_000
MAX_SERVER_SECONDS = 86_400.0
# Reconnecting after a connection that was open: never gives up.
RECONNECT = RetryPolicy(max_retries=0, base_seconds=0.5, max_seconds=30.0)


@dataclass(frozen=True)
class SSEMessage:
    """One dispatched server-sent event. `id` is the last event id at its dispatch (SSE
    keeps it across messages), `event` defaults to "message"."""

    data: str
    event: str = "message"
    id: str | None = None
    retry_ms: int | None = None


class SSEParser:
    """Server-sent events, as the HTML standard defines their parsing: feed it bytes, get
    the complete messages so far. A partial line or message waits for the next chunk."""

    def __init__(self, last_event_id: str | None = None) -> None:
        self.last_event_id = last_event_id
        self.retry_ms: int | None = None
        self._buffer = b""
        self._skip_lf = False  # the previous chunk ended with CR: a leading LF is its pair
        self._first_line = True
        self._data: list[str] = []
        self._event = ""

    def feed(self, chunk: bytes) -> list[SSEMessage]:
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        self._skip_lf = False
        self._buffer += chunk
        messages: list[SSEMessage] = []
        start = 0
        buffer = self._buffer
        while True:
            cr = buffer.find(b"\r", start)
            lf = buffer.find(b"\n", start)
            if cr < 0 and lf < 0:
                break
            if cr >= 0 and (lf < 0 or cr < lf):
                end, after = cr, cr + 1
                if after < len(buffer):
                    if buffer[after : after + 1] == b"\n":
                        after += 1
                else:
                    self._skip_lf = True
            else:
                end, after = lf, lf + 1
            message = self.feed_line(buffer[start:end].decode("utf-8", "replace"))
            if message is not None:
                messages.append(message)
            start = after
        self._buffer = buffer[start:]
        return messages

    def feed_line(self, line: str) -> SSEMessage | None:
        """One line without its line end; a message when the line is blank and ends one."""
        if self._first_line:
            self._first_line = False
            line = line.removeprefix("\ufeff")
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None  # a comment: the server's keep-alive
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value or None
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry_ms = int(value)
        return None  # unknown fields are ignored, as the standard says

    def _dispatch(self) -> SSEMessage | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SSEMessage("\n".join(data), event or "message", self.last_event_id, self.retry_ms)


@dataclass(frozen=True)
class StreamRequest:
    params: dict[str, str]
    headers: dict[str, str]
    timeout: httpx.Timeout


@dataclass
class StreamSession:
    """The state of one followed stream across its connections."""

    policy: RetryPolicy
    trigger: str | None = None
    user_id: str | None = None
    resume_id: str | None = None
    max_seconds: float | None = None
    reconnect: bool = True
    connect_timeout: float | None = 30.0
    clock: Callable[[], float] = time.monotonic
    failures: int = 0
    opened_once: bool = False
    deadline: float | None = None
    _seen: set[str] = field(default_factory=set)
    _seen_order: deque[str] = field(default_factory=deque)
    _parser: SSEParser = field(default_factory=SSEParser)

    def __post_init__(self) -> None:
        # The caller's `since_id`: what is at or below it, they have. (Ids sort by time.)
        self._floor = self.resume_id
        if self.max_seconds is not None:
            if self.max_seconds <= 0:
                raise ValueError(f"max_seconds must be positive; got {self.max_seconds}")
            self.deadline = self.clock() + self.max_seconds

    def _left(self) -> float | None:
        return None if self.deadline is None else self.deadline - self.clock()

    def next_request(self) -> StreamRequest | None:
        """The next connection to open, or None when the stream's time is up."""
        left = self._left()
        if left is not None and left <= 0.05:
            return None
        headers = {"accept": "text/event-stream", "cache-control": "no-cache"}
        if self.resume_id:
            headers["last-event-id"] = self.resume_id
        params = query(
            trigger=self.trigger,
            user_id=self.user_id,
            # The server's own limit is a day: a longer stream is continued by reconnecting.
            max_seconds=round(min(left, MAX_SERVER_SECONDS), 3) if left is not None else None,
        )
        # A fresh parser per connection: half a message from a broken one is discarded.
        self._parser = SSEParser(self.resume_id)
        timeout = httpx.Timeout(self.connect_timeout, read=READ_TIMEOUT_SECONDS)
        return StreamRequest(params, headers, timeout)

    def opened(self) -> None:
        self.opened_once = True
        self.failures = 0

    def feed(self, chunk: bytes) -> list[Resource]:
        """The new events in a chunk of the body, repeats dropped."""
        events: list[Resource] = []
        for message in self._parser.feed(chunk):
            if message.id:
                self.resume_id = message.id
            if message.event != "event":
                continue
            event = json.loads(message.data, object_hook=Resource)
            event_id = message.id or event.get("id")
            if event_id:
                if event_id in self._seen or (self._floor and event_id <= self._floor):
                    continue
                self._remember(event_id)
            events.append(event)
        return events

    def _remember(self, event_id: str) -> None:
        self._seen.add(event_id)
        self._seen_order.append(event_id)
        if len(self._seen_order) > SEEN_IDS:
            self._seen.discard(self._seen_order.popleft())

    def ended(self) -> float | None:
        """The server closed the stream: seconds until the next connection, or None to stop."""
        left = self._left()
        if not self.reconnect or (left is not None and left <= 0.05):
            return None
        # A clean end with time left: a restart, a proxy's limit, or a revoked key (which
        # the next connection reports as 401).
        return self._wait(None)

    def broken(self, error: httpx.TransportError) -> float | None:
        """The connection failed or broke: seconds until the next one, or raise."""
        if self.opened_once and not self.reconnect:
            raise TransportError(f"GET {STREAM_PATH}: the stream broke: {error!r}") from error
        if not self.opened_once and self.failures >= self.policy.max_retries:
            raise TransportError(f"GET {STREAM_PATH}: {error!r}") from error
        logger.warning("event stream: %r; connecting again", error)
        return self._wait(None)

    def refused(self, error: APIError) -> float | None:
        """A status other than 200: raise it, unless trying again can help."""
        if not transient(error) or (self.opened_once and not self.reconnect):
            raise error
        if not self.opened_once and self.failures >= self.policy.max_retries:
            raise error
        logger.warning("event stream refused: %s; connecting again", error)
        return self._wait(error.retry_after)

    def _wait(self, retry_after: float | None) -> float | None:
        self.failures += 1
        policy = self.policy if not self.opened_once else RECONNECT
        delay = policy.delay(self.failures, retry_after)
        left = self._left()
        if left is not None and delay >= left:
            return None
        return delay


def _session(
    client: Client | AsyncClient,
    trigger: str | None,
    user_id: str | int | None,
    since_id: str | None,
    max_seconds: float | None,
    reconnect: bool,
) -> StreamSession:
    return StreamSession(
        client.retry_policy,
        trigger=trigger,
        user_id=None if user_id is None else str(user_id),
        resume_id=since_id,
        max_seconds=max_seconds,
        reconnect=reconnect,
        connect_timeout=client._http.timeout.connect,
    )


def _refusal(response: httpx.Response) -> APIError:
    return api_error(response.status_code, response.headers, response.content)


class EventStream(Iterator[Resource]):
    """The iterator `Client.events.stream()` returns. Its connection is closed when the
    iteration ends, when the iterator is closed (`close()`, or the end of a `with` block),
    or when the last reference to it goes (a `for` left by `break`)."""

    def __init__(self, events: Generator[Resource, None, None]) -> None:
        # The generator must not refer back to this object, so that dropping the last
        # reference closes it at once (see consume.PullLoop).
        self._events = events

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> Resource:
        return next(self._events)

    def close(self) -> None:
        """Stop following the stream and close its connection."""
        self._events.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AsyncEventStream(AsyncIterator[Resource]):
    """The async iterator `AsyncClient.events.stream()` returns. An `async for` left early
    does not close it (the event loop does, later, if at all): use `async with
    client.events.stream(...) as events:` or `await events.aclose()` to close the
    connection when you stop."""

    def __init__(self, events: AsyncGenerator[Resource, None]) -> None:
        self._events = events

    def __aiter__(self) -> AsyncEventStream:
        return self

    async def __anext__(self) -> Resource:
        return await self._events.__anext__()

    async def aclose(self) -> None:
        """Stop following the stream and close its connection."""
        await self._events.aclose()

    async def __aenter__(self) -> AsyncEventStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def stream_events(
    client: Client,
    *,
    trigger: str | None = None,
    user_id: str | int | None = None,
    since_id: str | None = None,
    max_seconds: float | None = None,
    reconnect: bool = True,
) -> EventStream:
    """Each new event (as `GET /v1/events/{id}` shows it) as it is stored.

    `trigger` and `user_id` filter; `since_id` starts just after that event instead of now;
    `max_seconds` ends the iteration after that long in all; `reconnect=False` ends it when
    the server ends the stream and raises `TransportError` when the connection breaks.
    Stop early with `break`, `close()` or a `with` block: the connection is closed.
    """
    session = _session(client, trigger, user_id, since_id, max_seconds, reconnect)
    return EventStream(_follow(client, session))


def _follow(client: Client, session: StreamSession) -> Generator[Resource, None, None]:
    while (request := session.next_request()) is not None:
        delay: float | None
        try:
            with client._http.stream(
                "GET",
                STREAM_PATH,
                params=request.params,
                headers=request.headers,
                timeout=request.timeout,
            ) as response:
                if response.status_code != 200:
                    response.read()
                    delay = session.refused(_refusal(response))
                else:
                    session.opened()
                    for chunk in response.iter_bytes():
                        yield from session.feed(chunk)
                    delay = session.ended()
        except httpx.TransportError as exc:
            delay = session.broken(exc)
        if delay is None:
            return
        time.sleep(delay)


def stream_events_async(
    client: AsyncClient,
    *,
    trigger: str | None = None,
    user_id: str | int | None = None,
    since_id: str | None = None,
    max_seconds: float | None = None,
    reconnect: bool = True,
) -> AsyncEventStream:
    """The awaitable twin of `stream_events`: `async with ... as events: async for event in
    events:` (the `async with` closes the connection when the block ends)."""
    session = _session(client, trigger, user_id, since_id, max_seconds, reconnect)
    return AsyncEventStream(_follow_async(client, session))


async def _follow_async(
    client: AsyncClient, session: StreamSession
) -> AsyncGenerator[Resource, None]:
    while (request := session.next_request()) is not None:
        delay: float | None
        try:
            async with client._http.stream(
                "GET",
                STREAM_PATH,
                params=request.params,
                headers=request.headers,
                timeout=request.timeout,
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    delay = session.refused(_refusal(response))
                else:
                    session.opened()
                    async for chunk in response.aiter_bytes():
                        for event in session.feed(chunk):
                            yield event
                    delay = session.ended()
        except httpx.TransportError as exc:
            delay = session.broken(exc)
        if delay is None:
            return
        await asyncio.sleep(delay)
