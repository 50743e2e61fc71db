"""uvicorn's httptools protocol with the deadlines it lacks against slow clients.

uvicorn closes an idle keep-alive connection, but nothing bounds how long a client may take
to send a request: a slowloris client that sends its headers a byte every few seconds, or a
body a byte at a time, holds its connection (and, for a body, a handler) for as long as it
likes, and so do connections that are opened and never written to. `DeadlineProtocol`
adds two timers, each armed only while the server is waiting for the client:

- the *header* deadline runs from the moment a connection is accepted (or from the first
  byte of a later request on it) until the request's headers are complete;
- the *body* deadline runs from the end of the headers until the body is complete, and is
  armed only when a body is still outstanding after the bytes at hand are parsed, so a
  request that arrives whole (the usual case) sets no timer at all.

When one runs out, the client gets `408 request_timeout` (the one problem+json shape, naming
the setting and its value) if no answer has begun, and the connection is closed. The
handler that was waiting for the body sees the client gone. A connection is also closed
once an answer is complete while the request's body is still unread (a 413 for an oversized
body, a 401 before the body was needed): the answer ends with a FIN, and what the client
still sends is read and dropped, unparsed and unbuffered, until the body deadline, so a
client that writes its whole body before reading gets the answer rather than a reset, and
one that goes on sending is cut off.

httptools buffers a header line until it ends, so an endless header would grow the process
without bound: the bytes of a request's head are counted as they arrive, and past
`max_header_bytes` the client gets `431 headers_too_large` and the connection is closed.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from eventyard.api.errors import PROBLEM_TYPE, problem_body
from eventyard.settings import Settings


class DeadlineProtocol(HttpToolsProtocol):
    header_timeout: float = 10.0
    body_timeout: float = 30.0
    max_header_bytes: int = 64 * 1024

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._reading_headers = False
        # The head being read, measured two ways, each no more than its true size: its
        # parsed parts (request line and complete header lines), and the raw bytes of the
        # reads that arrived while it was already unfinished (an endless header line is
        # only seen so, as the parser holds it until it ends).
        self._head_parsed = 0
        self._head_raw = 0
        self._head_tail = (
            b""  # the last bytes of the head so far: its blank line may straddle reads
        )
        self._lingering = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._lingering:  # the answer is out; the rest of the body is dropped unparsed
            return
        if self._reading_headers:  # the head began in an earlier read: this read continues it
            part = _head_part(self._head_tail + data) - len(self._head_tail)
            self._head_raw += max(0, part)
        super().data_received(data)
        if self.transport.is_closing():
            return
        if self._reading_headers:  # unfinished: its blank line may begin in this read's end
            self._head_tail = (self._head_tail + data)[-3:]
        if self._reading_headers and self._head_size() > self.max_header_bytes:
            self._disarm()  # an unfinished head past the limit: answered, and no more read
            self._refuse(
                431, "headers_too_large", "Request header fields too large", self._too_large()
            )
        elif self._deadline is not None:
            return
        elif self._reading_headers:  # a later request on the connection has begun
            self._arm(self.header_timeout, self._headers_late)
        elif self._body_outstanding():
            self._arm(self.body_timeout, self._body_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_headers = True
        self._head_parsed = self._head_raw = 0
        self._head_tail = b""

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._head_parsed += len(url) + 14  # with the method and " HTTP/1.1\r\n"

    def on_header(self, name: bytes, value: bytes) -> None:
        super().on_header(name, value)
        self._head_parsed += len(name) + len(value) + 4  # ": " and the line end

    def on_headers_complete(self) -> None:
        self._reading_headers = False
        self._disarm()
        if self._head_size() > self.max_header_bytes:
            # A whole head past the limit (it came in one read): this request, in its turn
            # among pipelined ones, is answered 431 instead of reaching the app.
            app, self.app = (
                self.app,
                _refusal(
                    431, "headers_too_large", "Request header fields too large", self._too_large()
                ),
            )
            try:
                super().on_headers_complete()
            finally:
                self.app = app
        else:
            super().on_headers_complete()
        if self.cycle is not None:
            self._say_close_when_answering_early(self.cycle)

    def _head_size(self) -> int:
        return max(self._head_parsed, self._head_raw)

    def _too_large(self) -> str:
        return (
            f"The request's line and headers are more than {self.max_header_bytes:,} "
            "bytes; the limit is EVENTYARD_MAX_HEADER_BYTES. The connection is closed."
        )

    def _say_close_when_answering_early(self, cycle: Any) -> None:
        """An answer that starts while the body is still arriving (a 401, a 413) says
        `connection: close`, since the connection ends after it (`_linger`): a client
        with a pool of kept-alive connections then sends its next request on another one
        rather than on this one, as it closes. uvicorn, seeing the header, would close
        at once; keep-alive is set back so the answer ends with a linger, not a reset."""
        send = cycle.send

        async def send_saying_close(message: dict[str, Any]) -> None:
            if message["type"] != "http.response.start" or not self._body_outstanding():
                await send(message)
                return
            was_kept = cycle.keep_alive
            headers = [*message.get("headers", ()), (b"connection", b"close")]
            await send({**message, "headers": headers})
            cycle.keep_alive = was_kept

        cycle.send = send_saying_close

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if self._body_outstanding():
            self.server_state.total_requests += 1
            self._linger()
            return
        super().on_response_complete()
        if self._deadline is None and self._body_outstanding():  # a pipelined request's
            self._arm(self.body_timeout, self._body_late)

    def _linger(self) -> None:
        """After an answer that came before the body: end the answer with a FIN, then read
        and drop what the client still sends until the body deadline, and close. A client
        that writes its whole body before it reads (urllib, requests) then gets the answer
        rather than a reset; one that goes on sending is cut off at the deadline."""
        if self.transport.is_closing():
            return
        if not self.transport.can_write_eof():  # pragma: no cover - TLS
            self.transport.close()
            return
        self._lingering = True
        self.transport.write_eof()
        self.flow.resume_reading()
        if self._deadline is None:
            self._arm(self.body_timeout, self._body_late)

    def _body_outstanding(self) -> bool:
        cycle = self.cycle
        return cycle is not None and cycle.more_body and not self.pipeline

    def _arm(self, seconds: float, late: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, late)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            # A pipelined request is arriving behind one still being answered (an event
            # stream, say): the answer in progress must not be cut into. Look again later.
            self._arm(self.header_timeout, self._headers_late)
            return
        if not self._reading_headers:  # not a byte of a request yet: just an idle connection
            self.transport.close()
            return
        self._refuse(
            408,
            "request_timeout",
            "Request timeout",
            f"The request's headers did not arrive within {_seconds(self.header_timeout)} "
            "(EVENTYARD_HEADER_TIMEOUT_SECONDS); the connection is closed.",
        )

    def _body_late(self) -> None:
        self._deadline = None
        if self._lingering:
            self.transport.close()
            return
        cycle = self.cycle
        if cycle is None or not cycle.more_body or cycle.response_complete:
            return
        if cycle.response_started:
            self.transport.close()
            return
        # The handler waiting for the rest of the body sees the client gone; nothing it
        # sends from now on is written, so the 408 below is the whole answer.
        cycle.disconnected = True
        cycle.message_event.set()
        self._refuse(
            408,
            "request_timeout",
            "Request timeout",
            f"The request body did not arrive within {_seconds(self.body_timeout)} "
            "(EVENTYARD_BODY_TIMEOUT_SECONDS); the connection is closed.",
        )

    def _refuse(self, status: int, code: str, title: str, message: str) -> None:
        """Answer `status` in the one problem shape and close; only close if an answer to an
        earlier request on the connection is still being written (never cut into it)."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if cycle is not None and cycle.response_started and not cycle.response_complete:
            self.transport.close()
            return
        body = orjson.dumps(problem_body(status, code, title, message))
        head = (
            f"content-type: {PROBLEM_TYPE}\r\ncontent-length: {len(body)}\r\n"
            "connection: close\r\n\r\n"
        )
        self.transport.write(STATUS_LINE[status] + head.encode("latin-1") + body)
        self.transport.close()


def _refusal(status: int, code: str, title: str, message: str) -> Any:
    """An ASGI app that answers every request `status` in the one problem shape, and
    closes the connection after it."""
    body = orjson.dumps(problem_body(status, code, title, message))
    headers = [
        (b"content-type", PROBLEM_TYPE.encode()),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    return app


def _head_part(data: bytes) -> int:
    """How many bytes of `data` belong to a request's head: up to its blank line (CRLF or,
    as the parser also takes, bare LF line ends), or all of it when the head goes on."""
    ends = [i + 4 for i in (data.find(b"\r\n\r\n"),) if i >= 0]
    ends += [i + 2 for i in (data.find(b"\n\n"),) if i >= 0]
    return min(ends) if ends else len(data)


def _seconds(value: float) -> str:
    return f"{value:g} s"


def deadline_protocol(settings: Settings) -> type[DeadlineProtocol]:
    """The protocol class for `uvicorn.run(http=...)`, with the settings' deadlines."""
    return type(
        "DeadlineProtocol",
        (DeadlineProtocol,),
        {
            "header_timeout": float(settings.header_timeout_seconds),
            "body_timeout": float(settings.body_timeout_seconds),
            "max_header_bytes": settings.max_header_bytes,
        },
    )
