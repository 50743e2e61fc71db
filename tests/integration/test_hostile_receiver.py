"""A receiver is whoever a consumer's owner points it at: what it sends back is bounded.

A raw TCP server on 127.0.0.1 plays a hostile receiver. One that sends headers without end
(or one interim 1xx answer after another) ends the attempt as soon as 64 KB of head has
come, with an error naming the limit — not at the attempt's timeout, and without the
worker's memory growing meanwhile. One that answers with a body of many megabytes has only
its first kilobyte read.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from eventyard.delivery.http1 import MAX_HEAD_BYTES
from eventyard.delivery.sender import EXCERPT_BYTES, WebhookSender

pytestmark = pytest.mark.anyio

TIMEOUT_S = 20.0
Talk = Callable[[asyncio.StreamWriter], Awaitable[None]]


@contextlib.asynccontextmanager
async def hostile(talk: Talk) -> AsyncIterator[str]:
    """A server that reads the request's head, then lets `talk` answer; its URL."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError):
            await reader.readuntil(b"\r\n\r\n")
            await talk(writer)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        server.close()


async def endless(writer: asyncio.StreamWriter, first: bytes, line: bytes) -> None:
    writer.write(first)
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        writer.write(line * 64)
        await writer.drain()


async def send(url: str) -> tuple[str | None, float, int | None]:
    sender = WebhookSender(allow_private=True)
    try:
        started = time.monotonic()
        result = await sender.send(url, b"{}", {"content-type": "application/json"}, TIMEOUT_S)
        return result.error, time.monotonic() - started, result.status_code
    finally:
        await sender.aclose()


async def test_endless_headers_end_the_attempt_at_the_limit() -> None:
    async def talk(writer: asyncio.StreamWriter) -> None:
        await endless(writer, b"HTTP/1.1 200 OK\r\n", b"x-filler: " + b"a" * 1000 + b"\r\n")

    async with hostile(talk) as url:
        error, took, status = await send(url)
    assert status is None
    assert error is not None
    assert f"longer than {MAX_HEAD_BYTES // 1024} KB" in error
    assert took < TIMEOUT_S / 2, f"the attempt ran {took:.1f} s: it waited for the timeout"


async def test_endless_interim_answers_end_the_attempt_at_the_limit() -> None:
    async def talk(writer: asyncio.StreamWriter) -> None:
        await endless(writer, b"", b"HTTP/1.1 100 Continue\r\n\r\n")

    async with hostile(talk) as url:
        error, took, status = await send(url)
    assert status is None
    assert error is not None
    assert "KB" in error
    assert took < TIMEOUT_S / 2, f"the attempt ran {took:.1f} s: it waited for the timeout"


async def test_a_huge_body_is_read_only_as_far_as_the_excerpt() -> None:
    body = b"<" + b"x" * (50 * 1024 * 1024)

    async def talk(writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 500 Oops\r\ncontent-length: %d\r\n\r\n" % len(body))
        with contextlib.suppress(ConnectionError):
            for start in range(0, len(body), 1024 * 1024):
                writer.write(body[start : start + 1024 * 1024])
                await writer.drain()

    async with hostile(talk) as url:
        sender = WebhookSender(allow_private=True)
        try:
            started = time.monotonic()
            result = await sender.send(url, b"{}", {}, TIMEOUT_S)
            took = time.monotonic() - started
        finally:
            await sender.aclose()
    assert result.status_code == 500
    assert len(result.response_excerpt.encode()) <= EXCERPT_BYTES
    assert result.response_excerpt.startswith("<xxx")
    assert took < TIMEOUT_S / 2
