"""Where webhooks may go: refusing private destinations (an SSRF guard).

Whoever creates a consumer chooses the URL eventyard will POST to, so without a guard a key
holder could make the server call its own loopback services, the internal network or the
cloud metadata endpoint and read the answers back from the attempt log. `check_webhook_url`
refuses URLs that are malformed for the purpose; `resolve_public` resolves a host and refuses
it when any of its addresses is not public (private, loopback, link-local, shared, multicast,
reserved, unspecified, an IPv6 form that embeds one of those, or a metadata address), unless
the operator allows private destinations (EVENTYARD_WEBHOOK_ALLOW_PRIVATE=true, for local
use and tests). The sender resolves and vets the name again on every attempt and then
connects to exactly the address that was checked, so a DNS answer that changes after the
consumer was created, or between the check and the connection (DNS rebinding), cannot get
past. Redirects are never followed (see `sender`): a 3xx is a failed attempt.

`destination_problem` is the same guard at the door: creating or changing a consumer
refuses a URL whose host is, or resolves to, a refused address (a 422 naming the address),
so the mistake shows at once rather than as failed attempts later. A name that does not
resolve (yet) is accepted there; every attempt checks it again anyway.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
from urllib.parse import urlsplit

import httpx

MAX_URL_LENGTH = 2000
ALLOWED_SCHEMES = frozenset({"http", "https"})
ALLOW_PRIVATE_HINT = "set EVENTYARD_WEBHOOK_ALLOW_PRIVATE=true to allow it for local use"

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

METADATA_ADDRESSES: frozenset[_IPAddress] = frozenset(
    {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")}
)
# NAT64 maps IPv4 into this prefix; an address in it reaches the IPv4 it embeds.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class BlockedDestination(Exception):
    """A webhook destination that resolves to an address eventyard refuses to call."""


def check_webhook_url(url: str) -> str | None:
    """Why `url` cannot be a webhook endpoint, or None when it can."""
    if len(url) > MAX_URL_LENGTH:
        return f"the URL is longer than {MAX_URL_LENGTH} characters"
    if any(ch.isspace() or not ch.isprintable() for ch in url):
        return "the URL contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        port = parts.port
        _ = httpx.URL(url).host  # what the sender will parse: refuse now what it would then
    except (ValueError, httpx.InvalidURL) as exc:
        return f"the URL cannot be parsed: {exc}"
    if parts.scheme.lower() not in ALLOWED_SCHEMES:
        return "the URL scheme must be http or https"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "the URL may not contain credentials (user:password@)"
    if "#" in url:
        return "the URL may not contain a fragment (#...)"
    if port == 0:
        return "the URL port must be between 1 and 65535"
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def blocked_reason(address: _IPAddress) -> str | None:
    """Why a private-destination guard refuses `address`, or None when it is public."""
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = blocked_reason(embedded)
            if inner is not None:
                return f"an IPv6 address embedding {embedded}, {inner}"
    for flag, reason in (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
    ):
        if flag:
            return f"a {reason} address"
    # Catches the rest of the special-purpose registry, 100.64.0.0/10 (shared) among them.
    if not address.is_global:
        return "not a public address"
    return None


@functools.lru_cache(maxsize=1024)
def _vet_literal(host: str, allow_private: bool) -> tuple[list[str], str | None]:
    """An IP literal's verdict, which never changes, worked out once per literal: (the
    address to connect to, why it is refused or None)."""
    address = _parse_ip(host)
    assert address is not None
    reason = None if allow_private else blocked_reason(address)
    if reason is not None:
        return [], f"blocked destination: {host} is {reason}; {ALLOW_PRIVATE_HINT}"
    return [str(address)], None


@functools.lru_cache(maxsize=1024)
def _parse_ip(host: str) -> _IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


RESOLVE_AT_CREATION_SECONDS = 1.0  # a slow resolver delays a consumer's creation no longer


async def destination_problem(
    url: str, *, allow_private: bool, resolve_seconds: float = RESOLVE_AT_CREATION_SECONDS
) -> str | None:
    """Why a webhook to `url` would be refused as a private destination, or None.

    For a well-formed URL (`check_webhook_url` first): an IP literal is vetted as it is; a
    name is resolved (for at most `resolve_seconds`) and refused when any address is. A name
    that does not resolve, or not in time, passes: the sender checks it on every attempt.
    """
    if allow_private:
        return None
    parts = urlsplit(url)
    if not parts.hostname:
        return None
    try:
        async with asyncio.timeout(resolve_seconds):
            await resolve_public(parts.hostname, parts.port or 443, allow_private=False)
    except BlockedDestination as exc:
        return str(exc)
    except (OSError, TimeoutError, ValueError):  # unresolvable (or an odd IDNA name): not now
        return None
    return None


async def resolve_public(host: str, port: int, *, allow_private: bool) -> list[str]:
    """The addresses to connect to for `host`, each of them vetted.

    An IP literal is checked as it is; a name is resolved once, and refused when ANY of its
    addresses is blocked (an attacker could otherwise list a public and a private one). The
    caller must connect to one of the returned addresses, never resolve the name again.
    Raises `BlockedDestination`, or `OSError` (socket.gaierror) when the name does not resolve.
    """
    if _parse_ip(host) is not None:
        addresses, refusal = _vet_literal(host, allow_private)
        if refusal is not None:
            raise BlockedDestination(refusal)
        return addresses
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    candidates = []
    for _family, _type, _proto, _canonname, sockaddr in infos:
        address = ipaddress.ip_address(str(sockaddr[0]))
        if address not in candidates:
            candidates.append(address)
    if not candidates:
        raise socket.gaierror(f"{host} resolved to no address")
    if not allow_private:
        for address in candidates:
            reason = blocked_reason(address)
            if reason is not None:
                raise BlockedDestination(
                    f"blocked destination: {host} resolves to {address}, {reason}; "
                    f"{ALLOW_PRIVATE_HINT}"
                )
    return [str(address) for address in candidates]
