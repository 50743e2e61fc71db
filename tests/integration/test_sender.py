"""One delivery attempt against a real local receiver: every outcome the worker must record."""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trustme

from eventyard.delivery.sender import WebhookSender, parse_retry_after
from eventyard.domain.signing import generate_secret, verify, webhook_headers
from tests.receiver import HANG, Receiver, Reply

pytestmark = pytest.mark.anyio

BODY = b'{"id":"evt_1","trigger":"signup","user_id":"u1","payload":{}}'
TIMEOUT = 0.5


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver() as r:
        yield r


@pytest.fixture
async def sender() -> AsyncIterator[WebhookSender]:
    s = WebhookSender(allow_private=True)
    yield s
    await s.aclose()


def signed(body: bytes = BODY) -> tuple[str, dict[str, str]]:
    secret = generate_secret()
    return secret, webhook_headers([secret], "txn_1", int(time.time()), body)


async def test_a_2xx_is_ok_and_the_receiver_gets_the_signed_body(
    receiver: Receiver, sender: WebhookSender
) -> None:
    receiver.enqueue(Reply(202, body=b"accepted"))
    secret, headers = signed()

    result = await sender.send(receiver.url("/hooks/a?x=1"), BODY, headers, TIMEOUT)

    assert result.ok
    assert result.status_code == 202
    assert result.error is None
    assert result.response_excerpt == "accepted"
    assert not result.gone
    assert result.retry_after_seconds is None
    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/hooks/a?x=1"
    assert request.body == BODY
    assert request.headers["host"] == f"127.0.0.1:{receiver.port}"
    assert request.headers["content-type"] == "application/json"
    verify(secret, request.body, request.headers)


async def test_a_500_fails_and_keeps_the_answer(receiver: Receiver, sender: WebhookSender) -> None:
    receiver.enqueue(Reply(500, body=b'{"error":"database down"}'))

    result = await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)

    assert not result.ok
    assert result.status_code == 500
    assert result.response_excerpt == '{"error":"database down"}'
    assert result.error is not None
    assert "500" in result.error
    assert not result.gone


async def test_a_410_means_gone(receiver: Receiver, sender: WebhookSender) -> None:
    receiver.enqueue(Reply(410))

    result = await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)

    assert not result.ok
    assert result.gone
    assert result.status_code == 410


async def test_a_429_carries_its_retry_after(receiver: Receiver, sender: WebhookSender) -> None:
    receiver.enqueue(Reply(429, headers={"Retry-After": "7"}), Reply(503))

    limited = await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)
    unavailable = await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)

    assert limited.status_code == 429
    assert limited.retry_after_seconds == 7.0
    assert not limited.ok
    assert unavailable.status_code == 503
    assert unavailable.retry_after_seconds is None


async def test_retry_after_may_be_an_http_date(receiver: Receiver, sender: WebhookSender) -> None:
    receiver.enqueue(Reply(503, headers={"Retry-After": "Wed, 21 Oct 2099 07:28:00 GMT"}))

    result = await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)

    assert result.retry_after_seconds is not None
    assert result.retry_after_seconds > 365 * 24 * 3600


def test_retry_after_parsing() -> None:
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now=now) == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:01:30 GMT", now=now) == 90.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0  # in the past
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5", now=now) is None
    assert parse_retry_after(None, now=now) is None


async def test_a_hanging_receiver_times_out(receiver: Receiver, sender: WebhookSender) -> None:
    receiver.enqueue(HANG)

    attempt = asyncio.create_task(sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT))
    await receiver.wait_for(1)  # it did arrive; the answer never comes
    assert not attempt.done()
    result = await attempt

    assert not result.ok
    assert result.status_code is None
    assert result.error is not None
    assert "timeout" in result.error
    assert TIMEOUT * 1000 <= result.duration_ms < TIMEOUT * 1000 + 400


async def test_a_slow_body_is_bounded_by_the_same_timeout(
    receiver: Receiver, sender: WebhookSender
) -> None:
    # Headers arrive at once, then a byte every 0.2 s: no single read waits as long as the
    # timeout, but the whole attempt still may not outlast it.
    receiver.enqueue(Reply(200, body=b"x" * 20, drip_seconds=0.2))

    started = time.monotonic()
    result = await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)

    assert time.monotonic() - started < TIMEOUT + 0.4
    assert result.error is not None
    assert "timeout" in result.error


async def test_a_stopped_receiver_refuses_the_connection(
    receiver: Receiver, sender: WebhookSender
) -> None:
    await receiver.stop()

    result = await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)

    assert not result.ok
    assert result.status_code is None
    assert result.error is not None
    assert "connection refused" in result.error

    await receiver.start()  # back on the same port: the next attempt gets through
    again = await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)
    assert again.ok
    assert len(receiver.requests) == 1


async def test_a_redirect_is_not_followed(receiver: Receiver, sender: WebhookSender) -> None:
    receiver.enqueue(Reply(302, headers={"Location": receiver.url("/elsewhere")}))

    result = await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)

    assert not result.ok
    assert result.status_code == 302
    assert result.error is not None
    assert "redirect" in result.error
    assert [r.path for r in receiver.requests] == ["/hook"]


async def test_a_huge_answer_is_read_only_in_part(
    receiver: Receiver, sender: WebhookSender
) -> None:
    # 5 MB announced, 64 KB sent, then nothing: only a sender that stops after the first
    # kilobyte comes back before the timeout.
    receiver.enqueue(Reply(500, body=b"E" * (5 * 1024 * 1024), stall_after_bytes=64 * 1024))

    result = await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)

    assert result.status_code == 500
    assert result.response_excerpt == "E" * 1024
    assert result.error == "HTTP 500"
    assert result.duration_ms < TIMEOUT * 1000


async def test_a_huge_answer_sent_in_full_is_cut_short(
    receiver: Receiver, sender: WebhookSender
) -> None:
    receiver.enqueue(Reply(200, body=b"E" * (5 * 1024 * 1024)), Reply(200, body=b"next"))

    first = await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)
    second = await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)

    assert first.ok
    assert first.response_excerpt == "E" * 1024
    # The unread rest is dropped with its connection, never mistaken for the next answer.
    assert second.response_excerpt == "next"
    assert receiver.requests[1].connection != receiver.requests[0].connection


async def test_undecodable_answers_are_replaced_not_fatal(
    receiver: Receiver, sender: WebhookSender
) -> None:
    receiver.enqueue(Reply(400, body=b"bad \xff\xfe input"))

    result = await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)

    assert result.response_excerpt == "bad \ufffd\ufffd input"


async def test_loopback_is_blocked_unless_private_destinations_are_allowed(
    receiver: Receiver,
) -> None:
    guarded = WebhookSender(allow_private=False)
    try:
        result = await guarded.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)
    finally:
        await guarded.aclose()

    assert not result.ok
    assert result.status_code is None
    assert result.error is not None
    assert "blocked" in result.error
    assert "EVENTYARD_WEBHOOK_ALLOW_PRIVATE" in result.error
    assert receiver.requests == []


async def test_the_connection_goes_to_the_vetted_address_with_the_original_host(
    receiver: Receiver, sender: WebhookSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name is resolved exactly once, by the guard; the request then goes to that address
    # (no second lookup a rebinding DNS server could answer differently) and still names the
    # host the consumer configured.
    lookups: list[str] = []

    async def fake_getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
    url = f"http://hooks.example.test:{receiver.port}/hook"

    result = await sender.send(url, BODY, signed()[1], TIMEOUT)

    assert result.ok, result.error
    assert lookups == ["hooks.example.test"]
    assert receiver.requests[0].headers["host"] == f"hooks.example.test:{receiver.port}"


async def test_an_invalid_url_is_an_error_not_an_exception(sender: WebhookSender) -> None:
    result = await sender.send("ftp://127.0.0.1/hook", BODY, {}, TIMEOUT)

    assert not result.ok
    assert result.error is not None
    assert "scheme" in result.error


async def test_an_unresolvable_name_is_an_error_not_an_exception(
    sender: WebhookSender, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def failing_getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", failing_getaddrinfo)

    result = await sender.send("https://nowhere.example.test/hook", BODY, {}, TIMEOUT)

    assert not result.ok
    assert result.error is not None
    assert "resolve" in result.error


async def test_keep_alive_connections_are_reused(receiver: Receiver, sender: WebhookSender) -> None:
    for _ in range(3):
        assert (await sender.send(receiver.url("/hook"), BODY, signed()[1], TIMEOUT)).ok
    assert [r.connection for r in receiver.requests] == [1, 1, 1]


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


async def https_send(
    ca: trustme.CA, cert_host: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[Receiver, list[str], Any]:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(cert_host).configure_cert(server_tls)
    client_tls = ssl.create_default_context()
    ca.configure_trust(client_tls)

    async def fake_getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
    sender = WebhookSender(allow_private=True, verify=client_tls)
    async with Receiver(tls=server_tls) as receiver:
        try:
            result = await sender.send(
                receiver.url("/hook", host="hooks.example.test"), BODY, signed()[1], TIMEOUT
            )
        finally:
            await sender.aclose()
    return receiver, [r.headers["host"] for r in receiver.requests], result


async def test_https_to_a_pinned_address_checks_the_certificate_of_the_url_host(
    ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Connected to 127.0.0.1, the certificate is still checked against hooks.example.test:
    # the name goes out as SNI and is the name verified.
    receiver, hosts, result = await https_send(ca, "hooks.example.test", monkeypatch)

    assert result.ok, result.error
    assert hosts == [f"hooks.example.test:{receiver.port}"]


async def test_https_refuses_a_certificate_for_another_name(
    ca: trustme.CA, monkeypatch: pytest.MonkeyPatch
) -> None:
    _receiver, hosts, result = await https_send(ca, "other.example.test", monkeypatch)

    assert not result.ok
    assert result.error is not None
    assert "certificate" in result.error.lower()
    assert hosts == []
