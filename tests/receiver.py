"""A real HTTP receiver for webhook tests: it records what arrives and answers as told.

`Receiver` listens on 127.0.0.1 (a free port unless one is given) with a small HTTP/1.1
server built on `asyncio.start_server`, in the test's own event loop. Each request is
recorded as a `ReceivedRequest` (method, path, lower-cased headers, body, when it arrived)
and answered with the next queued `Reply`, or with `default` once the queue is empty. A
reply can be delayed, or can hang (never answer, until the receiver stops). `stop()` closes
the listener and every open connection, and `start()` listens again on the same port, so a
test can simulate an endpoint that goes down and comes back::

    async with Receiver() as receiver:
        receiver.enqueue(Reply(500), Reply(503, headers={"retry-after": "7"}))
        ...  # point a consumer at receiver.url("/hook") and deliver
        first, second, third = await receiver.wait_for(3)
        assert third.headers["webhook-id"] == first.headers["webhook-id"]

Because it runs in the test's loop, the code under test must be async (or run in another
thread or process) for the receiver to answer. It speaks just enough HTTP for webhooks:
Content-Length or chunked request bodies, keep-alive, and TLS when given a server context
(`tls=`, e.g. from trustme).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import ssl
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType

MAX_HEADER_BYTES = 64 * 1024


@dataclass(frozen=True)
class Reply:
    """How to answer one request, after `delay_seconds`.

    `hang=True` never answers (until the receiver stops); `stall_after_bytes=n` sends the
    status, the headers (with the full Content-Length) and n bytes of the body, then hangs;
    `drip_seconds` sends the body slowly, one byte at a time.
    """

    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    delay_seconds: float = 0.0
    hang: bool = False
    stall_after_bytes: int | None = None  # send only this much of the body, then hang
    drip_seconds: float = 0.0  # send the body a byte at a time, pausing this long before each


HANG = Reply(hang=True)


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str  # with the query string
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes
    received_at: datetime  # UTC wall time
    monotonic: float  # time.monotonic() at arrival, to measure gaps between requests
    connection: int  # which TCP connection it came on: 1, 2, ... since the receiver was made

    def json(self) -> object:
        import json

        return json.loads(self.body)


class Receiver:
    """A local webhook endpoint; see the module docstring. Use as an async context manager."""

    def __init__(
        self, *, port: int = 0, default: Reply | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.host = "127.0.0.1"
        self.port = port
        self.tls = tls
        self.default = default or Reply(200, body=b"ok")
        self.requests: list[ReceivedRequest] = []
        self._replies: deque[Reply] = deque()
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()  # serving work, cancellable
        self._handlers: set[asyncio.Task[None]] = set()  # the tasks asyncio.Server started
        self._arrived = asyncio.Condition()
        self._connection_numbers = itertools.count(1)

    async def __aenter__(self) -> Receiver:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def url(self, path: str = "/", *, host: str | None = None) -> str:
        """This receiver's URL; `host` names it differently (for tests that fake DNS)."""
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{host or self.host}:{self.port}{path}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def enqueue(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order, then with `default`."""
        self._replies.extend(replies)

    async def start(self) -> None:
        """Listen (again) on `port`; the first start picks a free port when it is 0."""
        if self._server is not None:
            return
        self._server = await asyncio.start_server(
            self._serve_connection, self.host, self.port, reuse_address=True, ssl=self.tls
        )
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        """Stop listening and drop every open connection, including hanging ones."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await server.wait_closed()

    async def wait_for(self, count: int, within: float = 5.0) -> list[ReceivedRequest]:
        """Wait until `count` requests have arrived in all; return the first `count`."""
        async with asyncio.timeout(within), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)
        return self.requests[:count]

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        # The work runs in an inner task that stop() may cancel: the task asyncio.start_server
        # makes for this callback must end normally (Python 3.11 reports it when cancelled).
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        number = next(self._connection_numbers)
        inner = asyncio.create_task(self._serve_requests(reader, writer, number))
        self._connections.add(inner)
        try:
            await inner
        except asyncio.CancelledError:
            if not inner.cancelled():
                raise
        finally:
            self._connections.discard(inner)
            self._handlers.discard(handler)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve_requests(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, number: int
    ) -> None:
        try:
            while await self._serve_request(reader, writer, number):
                pass
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass  # the client went away or spoke nonsense: drop the connection

    async def _serve_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int
    ) -> bool:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial:
                raise
            return False  # a clean close between requests
        if len(head) > MAX_HEADER_BYTES:
            return False
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, path, _version = request_line.split(" ", 2)
        headers: dict[str, str] = {}
        for line in header_lines:
            if line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = await _read_chunked(reader)
        else:
            body = await reader.readexactly(int(headers.get("content-length", "0")))

        async with self._arrived:
            self.requests.append(
                ReceivedRequest(
                    method=method,
                    path=path,
                    headers=headers,
                    body=body,
                    received_at=datetime.now(UTC),
                    monotonic=time.monotonic(),
                    connection=connection,
                )
            )
            self._arrived.notify_all()

        reply = self._replies.popleft() if self._replies else self.default
        if reply.hang:
            await asyncio.Event().wait()  # until stop() cancels this connection
        if reply.delay_seconds:
            await asyncio.sleep(reply.delay_seconds)
        await _write_reply(writer, reply)
        return headers.get("connection", "").lower() != "close"


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    body = bytearray()
    while True:
        size_line = await reader.readuntil(b"\r\n")
        size = int(size_line.split(b";", 1)[0], 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass  # trailers
            return bytes(body)
        body += await reader.readexactly(size)
        await reader.readexactly(2)


async def _write_reply(writer: asyncio.StreamWriter, reply: Reply) -> None:
    try:
        phrase = HTTPStatus(reply.status).phrase
    except ValueError:
        phrase = "Status"
    headers = {"content-length": str(len(reply.body)), **reply.headers}
    lines = [f"HTTP/1.1 {reply.status} {phrase}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
    if reply.drip_seconds:
        for byte in reply.body:
            await asyncio.sleep(reply.drip_seconds)
            writer.write(bytes([byte]))
            await writer.drain()
        return
    if reply.stall_after_bytes is None:
        writer.write(reply.body)
        await writer.drain()
        return
    writer.write(reply.body[: reply.stall_after_bytes])
    await writer.drain()
    await asyncio.Event().wait()  # until stop() cancels this connection
