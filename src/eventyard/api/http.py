"""The little HTTP toolkit the handlers use: `Request`, `Response` and body reading.

eventyard speaks ASGI directly rather than through a framework: the ingest route is hot, and
a framework's request model, middleware stack and validation layer cost more per request
than the whole of our own work (see bench/). What a framework would give us we keep here,
small: lazy headers, query parsing that refuses bad UTF-8, and a body reader that enforces
the size limit while reading, so an oversized body is refused before it is in memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, parse_qsl

import orjson

from eventyard.domain.jsonbody import parse_json
from eventyard.errors import InvalidRequest, PayloadTooLarge, UnsupportedMediaType

logger = logging.getLogger("eventyard.api")

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Form:
    """A submitted HTML form (`application/x-www-form-urlencoded`)."""

    def __init__(self, fields: dict[str, list[str]]) -> None:
        self.fields = fields

    def get(self, name: str, default: str = "") -> str:
        values = self.fields.get(name)
        return values[0] if values else default

    def getlist(self, name: str) -> list[str]:
        return list(self.fields.get(name, ()))


class Request:
    __slots__ = ("_body", "_form", "_headers", "_query", "path_params", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self._headers: dict[str, str] | None = None
        self._query: list[tuple[str, str]] | None = None
        self._body: bytes | None = None  # kept once read, so a second reader gets it too
        self._form: Form | None = None
        self.path_params: dict[str, str] = {}

    @property
    def method(self) -> str:
        method: str = self.scope["method"]
        return method

    @property
    def headers(self) -> Mapping[str, str]:
        if self._headers is None:
            self._headers = {
                k.decode("latin-1").lower(): v.decode("latin-1")
                for k, v in self.scope.get("headers", ())
            }
        return self._headers

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    @property
    def path(self) -> str:
        path: str = self.scope["path"]
        return path

    @property
    def is_https(self) -> bool:
        return self.scope.get("scheme") == "https"

    def cookie(self, name: str) -> str | None:
        for part in (self.header("cookie") or "").split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return value
        return None

    def utf8_header(self, name: str) -> str | None:
        """A header whose value is text a client chose (an idempotency key), read as UTF-8."""
        value = self.headers.get(name)
        if value is None:
            return None
        try:
            return value.encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(f"The {name} header is not valid UTF-8.") from None

    @property
    def query(self) -> list[tuple[str, str]]:
        if self._query is None:
            raw = self.scope.get("query_string", b"").decode("latin-1")
            try:
                self._query = parse_qsl(raw, keep_blank_values=True, errors="strict")
            except UnicodeDecodeError:
                raise InvalidRequest("The query string is not valid UTF-8.") from None
            if any("\x00" in n or "\x00" in v for n, v in self._query):
                raise InvalidRequest("The query string holds a NUL character (%00).")
        return self._query

    def query_params(self, allowed: set[str]) -> dict[str, str]:
        """The query as a dict; refuses unknown and repeated parameters with a clear 400."""
        out: dict[str, str] = {}
        for name, value in self.query:
            if name not in allowed:
                known = ", ".join(sorted(allowed)) or "none"
                raise InvalidRequest(
                    f"Unknown query parameter {name!r}; this route takes: {known}."
                )
            if name in out:
                raise InvalidRequest(f"The query parameter {name!r} is given more than once.")
            out[name] = value
        return out

    async def body(self, limit: int) -> bytes:
        """The body, refused past `limit` while reading; read once, then kept for re-reads."""
        if self._body is not None:
            if len(self._body) > limit:
                raise _too_large(len(self._body), limit)
            return self._body
        length = self.header("content-length")
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                raise InvalidRequest(f"Content-Length {length!r} is not a number.") from None
            if declared > limit:
                raise _too_large(declared, limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise InvalidRequest("The client disconnected before sending the whole body.")
            chunk = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise _too_large(size, limit, at_least=True)
                chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self._body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        return self._body

    async def json(self, limit: int, max_depth: int) -> Any:
        return parse_json(await self.body(limit), max_depth)

    async def form(self, limit: int) -> Form:
        """The body as an HTML form; read once, then kept."""
        if self._form is None:
            media = (self.header("content-type") or "").split(";", 1)[0].strip().lower()
            if media != "application/x-www-form-urlencoded":
                raise UnsupportedMediaType(
                    f"This form takes application/x-www-form-urlencoded, not {media or 'none'}."
                )
            raw = await self.body(limit)
            try:
                text = raw.decode("utf-8")
                fields = parse_qs(text, keep_blank_values=True, errors="strict")
            except UnicodeDecodeError:
                raise InvalidRequest("The form is not valid UTF-8.") from None
            if any("\x00" in v for values in fields.values() for v in values):
                raise InvalidRequest("The form holds a NUL character.")
            self._form = Form(fields)
        return self._form


def _too_large(size: int, limit: int, *, at_least: bool = False) -> PayloadTooLarge:
    amount = f"more than {limit:,}" if at_least else f"{size:,}"
    return PayloadTooLarge(
        f"The request body is {amount} bytes; the limit is {limit:,} bytes a request.",
        extra={"limit": limit, "size": None if at_least else size},
    )


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    media_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[str] = field(default_factory=list)  # each a whole Set-Cookie value

    def _head(self, *, length: bool = True) -> list[tuple[bytes, bytes]]:
        headers = [(b"content-type", self.media_type.encode("latin-1"))]
        if length:
            headers.append((b"content-length", str(len(self.body)).encode("latin-1")))
        headers.extend(
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()
        )
        headers.extend((b"set-cookie", c.encode("latin-1")) for c in self.cookies)
        return headers

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self._head()})
        await send({"type": "http.response.body", "body": self.body})


@dataclass
class StreamResponse(Response):
    """A response whose body is written as `chunks` yields it, until the client goes.

    Used for server-sent events: the body never ends on its own, so the client's disconnect
    (seen on `receive`) stops the stream at once rather than at the next chunk.
    """

    chunks: Callable[[], AsyncIterator[bytes]] | None = None
    receive: Receive | None = None

    async def send(self, send: Send) -> None:
        assert self.chunks is not None
        assert self.receive is not None
        head = self._head(length=False)
        await send({"type": "http.response.start", "status": self.status, "headers": head})
        receive = self.receive

        async def until_disconnect() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        async def pump(chunks: AsyncIterator[bytes]) -> None:
            # aclosing: a cancelled pump closes the source at once (its `finally` runs now,
            # not whenever the garbage collector gets to it).
            async with contextlib.aclosing(chunks):  # type: ignore[type-var]
                async for chunk in chunks:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})

        tasks = {
            asyncio.create_task(until_disconnect()),
            asyncio.create_task(pump(self.chunks())),
        }
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                try:
                    await task
                except (asyncio.CancelledError, OSError):
                    pass
                except Exception:  # the stream's source failed: end the stream, say why
                    logger.exception("an event stream ended with an error")
        with contextlib.suppress(OSError):
            await send({"type": "http.response.body", "body": b"", "more_body": False})


def redirect(location: str, status: int = 303) -> Response:
    return Response(status, b"", "text/plain; charset=utf-8", {"location": location})


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, orjson.dumps(data), "application/json", headers or {})


def html_response(html: str, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, html.encode("utf-8"), "text/html; charset=utf-8", headers or {})
