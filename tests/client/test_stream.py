"""Following the event stream: the SSE parser on its own, the stream's connection closed
when the caller stops early, then the client against a real server that is killed and
started again mid-stream."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from eventyard_client import (
    APIError,
    AsyncClient,
    AuthenticationError,
    BadRequest,
    Client,
    Resource,
    ServiceUnavailable,
    TransportError,
    _async,
    _sync,
)
from eventyard_client._core import RetryPolicy
from eventyard_client.errors import error_class
from eventyard_client.stream import (
    SEEN_IDS,
    SSEMessage,
    SSEParser,
    StreamSession,
    stream_events,
)

from tests.client.conftest import RunningServer
from tests.e2e.server import free_port


def _feed_bytewise(parser: SSEParser, raw: bytes) -> list[SSEMessage]:
    return [m for i in range(len(raw)) for m in parser.feed(raw[i : i + 1])]


@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_parser_reads_messages_whatever_the_line_ends_and_chunking(newline: bytes) -> None:
    raw = newline.join(
        [
            b"\xef\xbb\xbfretry: 2000",
            b": connected",
            b"",
            b"id: evt_1",
            b"event: event",
            b'data: {"a":',
            b"data:1}",
            b"",
            b": keep-alive",
            b"",
            b"id: evt_2",  # an id alone moves the last event id but sends nothing
            b"",
            b"data: caf\xc3\xa9",
            b"",
            b"",
        ]
    )
    expected = [
        SSEMessage('{"a":\n1}', "event", "evt_1", 2000),
        SSEMessage("café", "message", "evt_2", 2000),
    ]
    assert SSEParser().feed(raw) == expected
    assert _feed_bytewise(SSEParser(), raw) == expected


def test_parser_keeps_an_unfinished_message_until_its_blank_line() -> None:
    parser = SSEParser()
    assert parser.feed(b"id: evt_1\nevent: event\ndata: {}\n") == []
    assert parser.feed(b"\n") == [SSEMessage("{}", "event", "evt_1")]


def _session(**options: object) -> StreamSession:
    return StreamSession(RetryPolicy(max_retries=2, base_seconds=0.01), **options)  # type: ignore[arg-type]


def _message(event_id: str) -> bytes:
    return f'id: {event_id}\nevent: event\ndata: {{"id": "{event_id}"}}\n\n'.encode()


def test_session_drops_repeats_and_remembers_a_bounded_number_of_ids() -> None:
    session = _session()
    session.next_request()
    assert [e.id for e in session.feed(_message("evt_1") + _message("evt_2"))] == [
        "evt_1",
        "evt_2",
    ]
    request = session.next_request()
    assert request is not None
    assert request.headers["last-event-id"] == "evt_2"
    # The server's repeats of a resume are dropped; what follows is not.
    assert [e.id for e in session.feed(_message("evt_1") + _message("evt_3"))] == ["evt_3"]
    for n in range(SEEN_IDS + 10):
        session.feed(_message(f"evt_x{n}"))
    assert len(session._seen) == SEEN_IDS


def test_session_retries_what_may_pass_and_raises_what_will_not() -> None:
    def unavailable() -> ServiceUnavailable:
        return ServiceUnavailable(503, "unavailable", "busy", retry_after=0.5)

    session = _session()
    assert session.refused(unavailable()) == 0.5  # Retry-After is honoured
    session.refused(unavailable())
    with pytest.raises(ServiceUnavailable):  # before any connection opened: max_retries
        session.refused(unavailable())
    session.opened()
    for _ in range(10):  # once the stream has been open, reconnecting never gives up
        assert session.broken(httpx.ReadError("reset")) is not None
    with pytest.raises(AuthenticationError):
        session.refused(AuthenticationError(401, "unauthenticated", "bad key"))
    ended = _session(reconnect=False)
    ended.opened()
    assert ended.ended() is None
    with pytest.raises(TransportError):
        ended.broken(httpx.ReadError("reset"))


@pytest.mark.parametrize(
    ("status", "retried"),
    [(status, True) for status in (408, 425, 429, 500, 502, 503, 504, 507, 520, 522, 599)]
    + [(status, False) for status in (400, 401, 403, 404, 501, 505)],
)
def test_session_connects_again_after_a_transient_status_only(status: int, retried: bool) -> None:
    error = error_class(status)(status, "code", "message")
    session = _session()
    if retried:
        assert session.refused(error) is not None
    else:
        with pytest.raises(APIError):
            session.refused(error)


class EndlessStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    """The network edge: a stream that sends one event and then keep-alives for ever, and
    records whether the client closed it."""

    def __init__(self) -> None:
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield _message("evt_1")
        while not self.closed:
            time.sleep(0.01)
            yield b": keep-alive\n\n"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield _message("evt_1")
        while not self.closed:
            await asyncio.sleep(0.01)
            yield b": keep-alive\n\n"

    def close(self) -> None:
        self.closed = True

    async def aclose(self) -> None:
        self.closed = True


class EndlessStreams(httpx.MockTransport):
    def __init__(self) -> None:
        self.opened: list[EndlessStream] = []
        super().__init__(self._answer)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        stream = EndlessStream()
        self.opened.append(stream)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)


def test_a_stream_left_early_closes_its_connection() -> None:
    network = EndlessStreams()
    with Client("http://eventyard.test", "sk_live_x", transport=network) as client:
        with client.events.stream() as events:
            for _event in events:
                break
            # Still referenced, so only the end of the block can close it.
            assert not network.opened[-1].closed
        assert network.opened[-1].closed

        events = client.events.stream()
        assert next(events).id == "evt_1"
        events.close()
        assert network.opened[-1].closed

        for _event in client.events.stream():
            break
        assert network.opened[-1].closed
    assert len(network.opened) == 3


def test_an_async_stream_left_early_closes_its_connection() -> None:
    async def main() -> None:
        network = EndlessStreams()
        async with AsyncClient("http://eventyard.test", "sk_live_x", transport=network) as client:
            async with client.events.stream() as events:
                async for _event in events:
                    break
            assert network.opened[-1].closed

            events = client.events.stream()
            assert (await anext(events)).id == "evt_1"
            assert not network.opened[-1].closed
            await events.aclose()
            assert network.opened[-1].closed

    asyncio.run(main())


def test_both_shells_spell_out_the_stream_options_with_their_defaults() -> None:
    parameters = list(inspect.signature(stream_events).parameters.values())[1:]
    expected = {p.name: p.default for p in parameters}
    for shell in (_sync.Events, _async.Events):
        spelled = list(inspect.signature(shell.stream).parameters.values())[1:]
        assert {p.name: p.default for p in spelled} == expected, shell
        assert {p.kind for p in spelled} == {inspect.Parameter.KEYWORD_ONLY}


def _collect(
    client: Client, since_id: str, want: int, into: list[Resource], errors: list[BaseException]
) -> threading.Thread:
    def run() -> None:
        try:
            for event in client.events.stream(since_id=since_id, max_seconds=40):
                into.append(event)
                if len(into) >= want:
                    return
        except BaseException as exc:  # the test reports it
            errors.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _wait_for(condition: object, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_stream_follows_a_server_restart_without_losing_or_repeating_an_event(
    server: RunningServer,
) -> None:
    with (
        Client(server.url, server.live_key) as sender,
        Client(server.url, server.live_key) as reader,
    ):
        anchor = sender.send("tick", "u0")
        received: list[Resource] = []
        errors: list[BaseException] = []
        thread = _collect(reader, anchor.id, 10, received, errors)
        before = [sender.send("tick", f"u{n}").id for n in range(5)]
        _wait_for(lambda: len(received) >= 5 or errors)

        server.process.kill()  # a crash: the stream breaks mid-read
        server.process.start()
        # Sent while the reader is still backing off: it must get them by resuming.
        after = [sender.send("tick", f"v{n}").id for n in range(5)]
        thread.join(timeout=20)
        assert not errors
        assert not thread.is_alive()

    ids = [e.id for e in received]
    assert ids == before + after  # none lost, none repeated, in order
    assert received[0].trigger == "tick"
    assert received[0].transactions == []  # the same JSON as GET /v1/events/{id}


@pytest.mark.anyio
async def test_async_stream_resumes_after_last_event_id_drops_repeats_and_raises_refusals(
    server: RunningServer,
) -> None:
    async with AsyncClient(server.url, server.live_key) as client:
        first = await client.send("paid", "u1")
        second = await client.send("paid", "u2")
        third = await client.send("other", "u2")

        # Resuming from the newest event: the server repeats the last two seconds at or
        # below it (it says so, and this checks it does), and the client yields none.
        raw = await client._http.get(
            "/v1/events/stream",
            params={"max_seconds": "0.5"},
            headers={"last-event-id": third.id},
        )
        assert first.id in raw.text
        assert third.id in raw.text
        repeats = client.events.stream(since_id=third.id, max_seconds=0.5)
        assert [e async for e in repeats] == []

        got = [e.id async for e in client.events.stream(since_id=first.id, max_seconds=0.5)]
        assert got == [second.id, third.id]
        only = client.events.stream(since_id=first.id, trigger="other", max_seconds=0.5)
        assert [e.id async for e in only] == [third.id]

        with pytest.raises(BadRequest):
            await anext(client.events.stream(since_id="not-an-id"))

    # Refusals are raised at once; an unreachable server after the client's retries.
    async with AsyncClient(server.url, "sk_live_" + "x" * 32) as wrong:
        started = time.monotonic()
        with pytest.raises(AuthenticationError):
            await anext(wrong.events.stream())
        assert time.monotonic() - started < 2
    nowhere = f"http://127.0.0.1:{free_port()}"
    async with AsyncClient(nowhere, server.live_key, max_retries=1) as client:
        with pytest.raises(TransportError):
            await anext(client.events.stream())
