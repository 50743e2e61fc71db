"""The little HTTP toolkit the handlers use: `Request`, `Response` and body reading.

eventyard speaks ASGI directly rather than through a framework: the ingest route is hot, and
a framework's request model, middleware stack and validation layer cost more per request
than the whole of our own work (see bench/). What a framework would give us we keep here,
small: lazy headers, query parsing that refuses bad UTF-8, and a body reader that enforces
the size limit while reading, so an oversized body is refused before it is in memory.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import orjson

from eventyard.domain.jsonbody import parse_json
from eventyard.errors import InvalidRequest, PayloadTooLarge

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


class Request:
    __slots__ = ("_body", "_headers", "_query", "path_params", "receive", "scope")

    def __init__(self, scope: Scope, receive: Receive) -> None:
        self.scope = scope
        self.receive = receive
        self._headers: dict[str, str] | None = None
        self._query: list[tuple[str, str]] | None = None
        self._body: bytes | None = None  # kept once read, so a second reader gets it too
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

    async def send(self, send: Send) -> None:
        headers = [
            (b"content-type", self.media_type.encode("latin-1")),
            (b"content-length", str(len(self.body)).encode("latin-1")),
        ]
        headers.extend(
            (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()
        )
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": self.body})


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(status, orjson.dumps(data), "application/json", headers or {})


def html_response(html: str, status: int = 200) -> Response:
    return Response(status, html.encode("utf-8"), "text/html; charset=utf-8")
