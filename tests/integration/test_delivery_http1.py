"""The sender's HTTP/1.1 client against servers that answer in the less common ways.

Each server here is a few lines on `asyncio.start_server` that answers raw bytes, so a test
can close a kept-alive connection at the worst moment, send an interim `100 Continue`, or end
an answer by closing its connection. The sender must come back with the right outcome every
time, and never mistake one answer for another.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from eventyard.delivery.sender import WebhookSender
from tests.receiver import Receiver

pytestmark = pytest.mark.anyio

BODY = b'{"id":"evt_1"}'
HEADERS = {"webhook-id": "txn_1", "content-type": "application/json"}
TIMEOUT = 2.0
OK = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok"

Handler = Callable[[int, int, asyncio.StreamReader, asyncio.StreamWriter], Awaitable[bool]]


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    return await reader.readexactly(length)


@contextlib.asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[tuple[str, list[tuple[int, int]]]]:
    """A server calling `handler(connection number, request number on it, reader, writer)`
    for each request, until the handler answers False; yields its URL and the (connection,
    request) pairs it read."""
    seen: list[tuple[int, int]] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        number = connections
        try:
            for n in range(1, 100):
                await read_request(reader)
                seen.append((number, n))
                if not await handler(number, n, reader, writer):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}/hook", seen
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    s = WebhookSender(allow_private=True)
    yield s
    await s.aclose()


async def test_a_connection_closed_as_the_next_request_goes_out_is_retried_on_a_new_one(
    sender: WebhookSender,
) -> None:
    # The server keeps the connection after the first answer, then drops the second request
    # unanswered (an idle timeout racing with the request): the sender sends it again on a
    # fresh connection instead of failing the attempt.
    async def handler(
        connection: int, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        if connection == 1 and n == 2:
            return False
        writer.write(OK)
        await writer.drain()
        return True

    async with raw_server(handler) as (url, seen):
        first = await sender.send(url, BODY, HEADERS, TIMEOUT)
        second = await sender.send(url, BODY, HEADERS, TIMEOUT)

    assert first.ok, first.error
    assert second.ok, second.error
    assert seen == [(1, 1), (1, 2), (2, 1)]


async def test_a_fresh_connection_closed_without_an_answer_is_a_failed_attempt(
    sender: WebhookSender,
) -> None:
    async def handler(
        connection: int, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        return False

    async with raw_server(handler) as (url, seen):
        result = await sender.send(url, BODY, HEADERS, TIMEOUT)

    assert not result.ok
    assert result.status_code is None
    assert result.error == "the server closed the connection without answering"
    assert seen == [(1, 1)]  # sent once: a new connection is not retried


async def test_a_connection_the_server_closed_while_idle_is_not_reused() -> None:
    sender = WebhookSender(allow_private=True)
    try:
        async with Receiver() as receiver:
            assert (await sender.send(receiver.url("/hook"), BODY, HEADERS, TIMEOUT)).ok
            await receiver.stop()  # drops the kept-alive connection
            await receiver.start()
            await asyncio.sleep(0.05)  # the close reaches the sender's idle connection
            again = await sender.send(receiver.url("/hook"), BODY, HEADERS, TIMEOUT)
            assert again.ok, again.error
            assert [r.connection for r in receiver.requests] == [1, 2]
    finally:
        await sender.aclose()


async def test_an_interim_100_continue_is_skipped_for_the_real_answer(
    sender: WebhookSender,
) -> None:
    async def handler(
        connection: int, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        writer.write(b"HTTP/1.1 503 Busy\r\nretry-after: 9\r\ncontent-length: 4\r\n\r\nbusy")
        await writer.drain()
        return True

    async with raw_server(handler) as (url, _seen):
        result = await sender.send(url, BODY, HEADERS, TIMEOUT)

    assert result.status_code == 503
    assert result.retry_after_seconds == 9.0
    assert result.response_excerpt == "busy"


async def test_an_answer_that_ends_with_its_connection_is_read_and_the_next_uses_another(
    sender: WebhookSender,
) -> None:
    async def handler(
        connection: int, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(b"HTTP/1.0 200 OK\r\n\r\nthe whole answer")
        await writer.drain()
        return False

    async with raw_server(handler) as (url, seen):
        first = await sender.send(url, BODY, HEADERS, TIMEOUT)
        second = await sender.send(url, BODY, HEADERS, TIMEOUT)

    assert first.ok
    assert second.ok
    assert first.response_excerpt == "the whole answer"
    assert seen == [(1, 1), (2, 1)]


async def test_an_answer_cut_off_in_the_middle_is_a_failed_attempt(sender: WebhookSender) -> None:
    async def handler(
        connection: int, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        await writer.drain()
        return False

    async with raw_server(handler) as (url, _seen):
        result = await sender.send(url, BODY, HEADERS, TIMEOUT)

    assert not result.ok
    assert result.error == "the server closed the connection in the middle of its answer"


async def test_an_answer_that_is_not_http_is_a_failed_attempt(sender: WebhookSender) -> None:
    async def handler(
        connection: int, n: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n")
        await writer.drain()
        return False

    async with raw_server(handler) as (url, _seen):
        result = await sender.send(url, BODY, HEADERS, TIMEOUT)

    assert not result.ok
    assert result.status_code is None
    assert result.error is not None
    assert "not valid HTTP/1.1" in result.error
