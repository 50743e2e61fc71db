"""The private-destination guard: what it refuses, what it lets through. Nothing connects.

(A real receiver on 127.0.0.1, redirects and DNS rebinding through the worker:
tests/integration/test_webhook_destinations.py.)"""

from __future__ import annotations

import ipaddress
import socket
from typing import Any

import pytest

from eventyard.delivery.outbound import (
    BlockedDestination,
    check_webhook_url,
    destination_problem,
    resolve_public,
)

pytestmark = pytest.mark.anyio

BLOCKED = [
    "127.0.0.1",
    "127.8.9.10",
    "::1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "fd00:ec2::254",
    "100.64.0.1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",
    "0.0.0.0",
    "::",
    "fe80::1",
    "224.0.0.1",
    "240.0.0.1",
    "2002:7f00:1::1",  # 6to4 wrapping 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 wrapping 169.254.169.254
    "2001::a9fe:a9fe",  # Teredo
    "198.18.0.1",  # benchmarking
    "192.0.2.1",  # documentation
    "::ffff:169.254.169.254",
    "fc00::1",
    "255.255.255.255",
    "0.1.2.3",  # "this network"
    "::127.0.0.1",  # IPv4-compatible (deprecated) form
    "::ffff:7f00:1",  # the mapped form written in hex
    "fe80::1%eth0",  # link-local with a zone
]


@pytest.mark.parametrize("address", BLOCKED)
async def test_private_literals_are_refused_unless_allowed(address: str) -> None:
    with pytest.raises(BlockedDestination) as caught:
        await resolve_public(address, 443, allow_private=False)
    message = str(caught.value)
    assert address in message
    assert "EVENTYARD_WEBHOOK_ALLOW_PRIVATE=true" in message

    allowed = await resolve_public(address, 443, allow_private=True)
    assert allowed == [str(ipaddress.ip_address(address))]


async def test_bracketed_ipv6_literals_are_checked_too() -> None:
    with pytest.raises(BlockedDestination, match="loopback"):
        await resolve_public("[::1]", 80, allow_private=False)


async def test_localhost_by_name_is_refused_unless_allowed() -> None:
    with pytest.raises(BlockedDestination) as caught:
        await resolve_public("localhost", 80, allow_private=False)
    assert "localhost resolves to" in str(caught.value)

    addresses = await resolve_public("localhost", 80, allow_private=True)
    assert addresses
    assert set(addresses) <= {"127.0.0.1", "::1"}


async def test_public_literals_pass_without_dns() -> None:
    assert await resolve_public("93.184.215.14", 443, allow_private=False) == ["93.184.215.14"]
    assert await resolve_public("2606:4700:4700::1111", 443, allow_private=False) == [
        "2606:4700:4700::1111"
    ]


async def test_a_name_with_any_private_address_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    # A hostile DNS answer mixing a public and a private address must not get through.
    import asyncio

    async def fake_getaddrinfo(host: str, port: int, **kwargs: Any) -> list[Any]:
        assert host == "hooks.example.test"
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ]

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", fake_getaddrinfo)
    with pytest.raises(BlockedDestination, match=r"hooks\.example\.test resolves to 10\.0\.0\.7"):
        await resolve_public("hooks.example.test", 443, allow_private=False)
    assert await resolve_public("hooks.example.test", 443, allow_private=True) == [
        "93.184.215.14",
        "10.0.0.7",
    ]


@pytest.mark.parametrize(
    "url",
    [
        "https://hooks.example.com/eventyard",
        "http://hooks.example.com:8080/a?b=c",
        "https://93.184.215.14/hook",
        "http://[2606:4700:4700::1111]:8080/",
        "HTTPS://Hooks.Example.com/",
    ],
)
def test_good_urls_pass(url: str) -> None:
    assert check_webhook_url(url) is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("ftp://hooks.example.com/", "scheme"),
        ("file:///etc/passwd", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("data:text/html,<script>alert(1)</script>", "scheme"),
        ("hooks.example.com/hook", "scheme"),
        ("https:///hook", "no host"),
        ("https://user:pw@hooks.example.com/", "credentials"),
        ("https://user@hooks.example.com/", "credentials"),
        ("https://hooks.example.com/#frag", "fragment"),
        ("https://hooks.example.com/#", "fragment"),
        ("https://hooks.example.com/" + "a" * 2000, "longer than 2000"),
        ("https://hooks.example.com:99999/", "cannot be parsed"),
        ("https://hooks.example.com:0/", "port"),
        ("https://xn--/hook", "cannot be parsed"),
        ("http://[::1/", "cannot be parsed"),
        ("https://hooks.example.com/a b", "whitespace"),
        ("https://hooks.example.com/\nHost: evil", "whitespace"),
    ],
)
def test_bad_urls_are_refused_with_a_reason(url: str, reason: str) -> None:
    problem = check_webhook_url(url)
    assert problem is not None
    assert reason in problem


# --- the same guard at the door: creating or changing a consumer --------------------------


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://127.0.0.1:8080/hook", "127.0.0.1 is a loopback address"),
        ("http://[::1]/hook", "::1 is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "a cloud metadata address"),
        ("http://[fd00:ec2::254]/", "a cloud metadata address"),
        ("https://10.1.2.3/hook", "a private address"),
        ("https://[fe80::1]/hook", "a link-local address"),
        # Names that really resolve (the resolver reads these numeric forms and /etc/hosts).
        ("http://localhost:8080/hook", "localhost resolves to"),
        ("http://2130706433/hook", "2130706433 resolves to 127.0.0.1"),
        ("http://127.1/hook", "127.1 resolves to 127.0.0.1"),
    ],
)
async def test_a_private_destination_is_named_at_the_door(url: str, named: str) -> None:
    problem = await destination_problem(url, allow_private=False)
    assert problem is not None
    assert named in problem
    assert "EVENTYARD_WEBHOOK_ALLOW_PRIVATE=true" in problem
    assert await destination_problem(url, allow_private=True) is None


async def test_a_public_destination_passes_the_door() -> None:
    assert await destination_problem("https://93.184.215.14/hook", allow_private=False) is None


async def test_a_name_that_does_not_resolve_passes_the_door_and_is_checked_later() -> None:
    # .invalid never resolves (RFC 6761); each attempt resolves and vets the name again.
    assert await destination_problem("https://hooks.invalid/x", allow_private=False) is None
    with pytest.raises(socket.gaierror):
        await resolve_public("hooks.invalid", 443, allow_private=False)


async def test_a_slow_resolver_delays_the_door_by_the_timeout_at_most(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import asyncio

    async def hanging(host: str, port: int, **kwargs: Any) -> list[Any]:
        await asyncio.sleep(30)
        return []

    monkeypatch.setattr(asyncio.get_running_loop(), "getaddrinfo", hanging)
    started = asyncio.get_running_loop().time()
    problem = await destination_problem(
        "https://slow.example.test/", allow_private=False, resolve_seconds=0.2
    )
    assert problem is None
    assert asyncio.get_running_loop().time() - started < 5
