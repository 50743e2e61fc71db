"""A small HTTP/1.1 client for webhook attempts: POST over kept-alive connections.

The sender needs little of HTTP: one POST with a body it already has, to an address it has
already vetted, and the status, the headers and the first kilobyte of the answer. httpx did
that at a cost that bounded delivery: a few hundred microseconds of Python per request in
h11 and httpcore, and a connection pool whose bookkeeping grows with the square of the
requests in flight (one worker process managed about 70 attempts a second with 64 in
flight). Here a request is one write of bytes built in one go, and the answer is parsed by
httptools (llhttp, in C, which uvicorn already uses for the server side).

`ConnectionPool.post` sends one request to an `Origin` — the vetted address, the port, and for
https the name the certificate must carry (sent as SNI) — and keeps the connection for the
next request to the same origin when the answer was read to its end and both sides allow it.
An answer longer than `limit` bytes is read only that far and its connection dropped, never
drained; one whose headers run past `MAX_HEAD_BYTES` is a failed attempt. A kept-alive
connection the server has meanwhile closed is noticed before use, or, when the close races
with the request and nothing at all comes back, the request goes once more on a fresh
connection (the classic keep-alive race; receivers drop repeats by `webhook-id` anyway).
Time limits are the caller's (`asyncio.timeout` around the call): a cancelled request closes
its connection.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass

import httptools

KEEPALIVE_EXPIRY_S = 5.0  # an idle connection older than this is closed, not reused
READ_SIZE = 64 * 1024
# The most of an answer read before its headers end (status line, headers, 1xx answers).
# The receiver is whoever the consumer's owner chose: without a bound, one that sends
# headers forever would grow the worker's memory until the attempt's timeout.
MAX_HEAD_BYTES = 64 * 1024


class ConnectFailed(Exception):
    """No connection could be made (refused, unreachable, TLS refused); nothing was sent.
    The OSError is the `__cause__`."""


class AnswerFailed(Exception):
    """The connection broke or the answer was not HTTP; the request may have been received."""


@dataclass(frozen=True)
class Origin:
    scheme: str  # "http" or "https"
    address: str  # the vetted IP address to connect to
    port: int
    server_name: str | None  # https: the name sent as SNI and checked against the certificate


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]  # names lower-cased; a repeated header keeps its last value
    body: bytes  # at most the first `limit` bytes


class _Stale(Exception):
    """A reused connection gave no answer at all: the server had closed it."""


class _Reading:
    """httptools' callbacks: collect the status line's headers and the start of the body."""

    __slots__ = ("body", "complete", "headers", "headers_done", "keep_alive", "limit", "parser")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.parser = httptools.HttpResponseParser(self)
        self.keep_alive = False
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.headers_done = False
        self.complete = False

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.headers_done = True
        # Asked now: llhttp's answer is only meaningful before the message completes.
        self.keep_alive = self.parser.should_keep_alive()

    def on_body(self, body: bytes) -> None:
        room = self.limit - len(self.body)
        if room > 0:
            self.body += body[:room]

    def on_message_complete(self) -> None:
        if self.parser.get_status_code() < 200:  # 1xx: an interim answer; the real one follows
            self.headers, self.body, self.headers_done = {}, bytearray(), False
            return
        self.complete = True

    @property
    def delimited_by_close(self) -> bool:
        return "content-length" not in self.headers and "chunked" not in self.headers.get(
            "transfer-encoding", ""
        )


class _Connection:
    __slots__ = ("idle_since", "reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0

    def usable(self, now: float) -> bool:
        """Still open (the server has not closed it while idle), and not old."""
        return (
            not self.writer.transport.is_closing()
            and not self.reader.at_eof()
            and now - self.idle_since < KEEPALIVE_EXPIRY_S
        )

    def close(self) -> None:
        self.writer.close()


class ConnectionPool:
    """Kept-alive connections per origin; see the module docstring."""

    def __init__(self, *, tls: ssl.SSLContext, max_idle_per_origin: int = 100) -> None:
        self._tls = tls
        self._max_idle = max_idle_per_origin
        self._idle: dict[Origin, list[_Connection]] = {}

    async def post(
        self,
        origin: Origin,
        target: str,
        host: str,
        headers: Mapping[str, str],
        body: bytes,
        *,
        limit: int,
    ) -> Answer:
        """POST `body` to `target` (path and query) with these headers and `host`."""
        request = _request_bytes(target, host, headers, body)
        connection = self._take(origin)
        if connection is not None:
            try:
                return await self._exchange(origin, connection, request, limit, reused=True)
            except _Stale:
                pass  # closed by the server while idle: once more, on a fresh connection
        connection = await self._open(origin)
        try:
            return await self._exchange(origin, connection, request, limit, reused=False)
        except _Stale:  # pragma: no cover - a fresh connection is never stale
            raise AnswerFailed("the connection closed without an answer") from None

    async def aclose(self) -> None:
        idle, self._idle = self._idle, {}
        for connections in idle.values():
            for connection in connections:
                connection.close()

    def _take(self, origin: Origin) -> _Connection | None:
        connections = self._idle.get(origin)
        now = time.monotonic()
        while connections:
            connection = connections.pop()
            if connection.usable(now):
                return connection
            connection.close()
        return None

    def _keep(self, origin: Origin, connection: _Connection) -> None:
        connections = self._idle.setdefault(origin, [])
        if len(connections) >= self._max_idle:
            connection.close()
            return
        connection.idle_since = time.monotonic()
        connections.append(connection)

    async def _open(self, origin: Origin) -> _Connection:
        tls = self._tls if origin.scheme == "https" else None
        try:
            reader, writer = await asyncio.open_connection(
                origin.address,
                origin.port,
                ssl=tls,
                server_hostname=origin.server_name if tls is not None else None,
                limit=READ_SIZE,
            )
        except OSError as exc:
            raise ConnectFailed(str(exc) or type(exc).__name__) from exc
        return _Connection(reader, writer)

    async def _exchange(
        self, origin: Origin, connection: _Connection, request: bytes, limit: int, *, reused: bool
    ) -> Answer:
        """Send and read one answer; keep or close the connection. Raises _Stale when a reused
        connection turned out closed before any byte of an answer came."""
        keep = False
        try:
            answer, keep = await _round_trip(connection, request, limit, reused=reused)
            return answer
        finally:
            if keep:
                self._keep(origin, connection)
            else:
                connection.close()


async def _round_trip(
    connection: _Connection, request: bytes, limit: int, *, reused: bool
) -> tuple[Answer, bool]:
    """(the answer, whether the connection may carry another request)."""
    reading = _Reading(limit)
    received = 0
    try:
        connection.writer.write(request)
        await connection.writer.drain()
        while not reading.complete:
            data = await connection.reader.read(READ_SIZE)
            if not data:
                if received == 0:
                    if reused:
                        raise _Stale
                    raise AnswerFailed("the server closed the connection without answering")
                if reading.headers_done and reading.delimited_by_close:
                    break  # an answer that ends with its connection
                raise AnswerFailed("the server closed the connection in the middle of its answer")
            received += len(data)
            reading.parser.feed_data(data)
            if reading.headers_done and len(reading.body) >= limit:
                break  # enough read: the rest is dropped with the connection
            if not reading.headers_done and received > MAX_HEAD_BYTES:
                raise AnswerFailed(
                    f"the answer's status line and headers are longer than "
                    f"{MAX_HEAD_BYTES // 1024} KB (the limit); the connection was dropped"
                )
    except ConnectionError as exc:
        if reused and received == 0:
            raise _Stale from exc
        raise AnswerFailed(f"the connection broke: {exc or type(exc).__name__}") from exc
    except httptools.HttpParserError as exc:
        raise AnswerFailed(f"the answer is not valid HTTP/1.1: {exc}") from exc
    keep = reading.complete and reading.keep_alive
    answer = Answer(reading.parser.get_status_code(), reading.headers, bytes(reading.body))
    return answer, keep


def _request_bytes(target: str, host: str, headers: Mapping[str, str], body: bytes) -> bytes:
    lines = [f"POST {target} HTTP/1.1", f"host: {host}"]
    for name, value in headers.items():
        lowered = name.lower()
        if lowered in ("host", "content-length", "transfer-encoding"):
            continue  # these are the request's own
        if "\r" in value or "\n" in value or "\r" in name or "\n" in name or ":" in name:
            raise ValueError(f"the header {name!r} cannot be sent as it is")
        lines.append(f"{name}: {value}")
    lines.append(f"content-length: {len(body)}\r\n\r\n")
    return "\r\n".join(lines).encode("latin-1") + body
