"""One webhook delivery attempt: POST, time it, and describe what happened.

`WebhookSender.send` never raises for network trouble: every outcome, from a 2xx to a DNS
failure, becomes an `AttemptResult` the worker records on the transaction and feeds to the
retry schedule. The whole attempt (resolution, connection, request, reading the answer) is
bounded by one timeout. Redirects are not followed (a redirect could lead anywhere, past the
destination check), only the first kilobyte of an answer is read, and the connection goes to
the address `resolve_public` vetted, with the URL's own host in the `Host` header and, for
https, as the TLS server name, so certificates are checked against the name the consumer gave.
"""

from __future__ import annotations

import asyncio
import functools
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from eventyard.delivery.http1 import Answer, AnswerFailed, ConnectFailed, ConnectionPool, Origin
from eventyard.delivery.outbound import BlockedDestination, check_webhook_url, resolve_public

EXCERPT_BYTES = 1024


@dataclass(frozen=True)
class AttemptResult:
    ok: bool  # a 2xx answer
    status_code: int | None  # None when no answer came
    duration_ms: int
    response_excerpt: str  # the first 1 KB of the answer's body
    error: str | None  # what went wrong, in words: timeout, connection refused, blocked, ...
    retry_after_seconds: float | None  # the Retry-After of a non-2xx answer, in seconds
    gone: bool  # 410 Gone: the receiver asks us to stop; the caller disables the consumer


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delay-seconds or an HTTP date), or None."""
    if value is None:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # an HTTP date is GMT, even when written as -0000
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


@dataclass(frozen=True)
class _Destination:
    """A webhook URL taken apart once: where to resolve, what to send as target and Host."""

    scheme: str
    host: str  # the name (or IP literal) to resolve and vet
    port: int
    target: str  # path and query, as sent on the request line
    host_header: str  # the URL's own host (and port, unless the scheme's default)


@functools.lru_cache(maxsize=1024)
def _destination(url: str) -> _Destination | str:
    """The parts of `url` an attempt needs, or why it cannot be a webhook endpoint. Cached:
    a consumer's URL is parsed once, not on every attempt."""
    problem = check_webhook_url(url)
    if problem is not None:
        return f"invalid URL: {problem}"
    try:
        parsed = httpx.URL(url)
        host = parsed.host  # decoded lazily: an IDNA error shows only now
        host_header = httpx.Request("POST", parsed).headers["host"]
    except (httpx.InvalidURL, ValueError) as exc:  # idna errors are ValueErrors
        return f"invalid URL: {exc}"
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    target = parsed.raw_path.decode("ascii")
    return _Destination(parsed.scheme, host, port, target, host_header)


class WebhookSender:
    """Sends webhook attempts over one pool of kept-alive connections (`http1`)."""

    def __init__(
        self,
        *,
        allow_private: bool,
        max_connections: int = 100,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        """`verify`: the TLS context that checks receivers' certificates (default: certifi's
        authorities, as httpx uses; never the environment's). `max_connections`: how many
        idle connections to keep per destination."""
        self._allow_private = allow_private
        tls = verify if verify is not None else httpx.create_ssl_context(trust_env=False)
        self._pool = ConnectionPool(tls=tls, max_idle_per_origin=max_connections)

    async def aclose(self) -> None:
        await self._pool.aclose()

    async def send(
        self, url: str, body: bytes, headers: Mapping[str, str], timeout_seconds: float
    ) -> AttemptResult:
        started = time.monotonic()

        def result(
            *,
            status: int | None = None,
            excerpt: str = "",
            error: str | None = None,
            retry_after: float | None = None,
        ) -> AttemptResult:
            return AttemptResult(
                ok=status is not None and 200 <= status < 300,
                status_code=status,
                duration_ms=round((time.monotonic() - started) * 1000),
                response_excerpt=excerpt,
                error=error,
                retry_after_seconds=retry_after,
                gone=status == 410,
            )

        destination = _destination(url)
        if isinstance(destination, str):
            return result(error=destination)
        try:
            async with asyncio.timeout(timeout_seconds):
                answer = await self._attempt(destination, body, headers)
        except TimeoutError:
            return result(error=f"timeout: no complete answer within {timeout_seconds:g} s")
        except BlockedDestination as exc:
            return result(error=str(exc))
        except ConnectFailed as exc:
            if isinstance(exc.__cause__, ConnectionRefusedError):
                return result(error="connection refused")
            return result(error=f"connection failed: {exc}")
        except AnswerFailed as exc:
            return result(error=str(exc))
        except OSError as exc:  # DNS resolution failures (socket.gaierror)
            return result(error=f"cannot resolve host: {exc or type(exc).__name__}")

        status, response_headers = answer.status, answer.headers
        excerpt = answer.body.decode("utf-8", errors="replace")
        error = None
        if 300 <= status < 400:
            location = response_headers.get("location", "")
            error = f"redirect ({status} to {location or 'nowhere'}) not followed"
        elif not 200 <= status < 300:
            error = f"HTTP {status}"
        retry_after = None
        if not 200 <= status < 300:
            retry_after = parse_retry_after(response_headers.get("retry-after"))
        return result(status=status, excerpt=excerpt, error=error, retry_after=retry_after)

    async def _attempt(
        self, destination: _Destination, body: bytes, headers: Mapping[str, str]
    ) -> Answer:
        port = destination.port
        addresses = await resolve_public(destination.host, port, allow_private=self._allow_private)
        server_name = destination.host if destination.scheme == "https" else None
        request_headers = dict(headers)
        # Asking for the body unencoded keeps the excerpt readable and the 1 KB read bounded
        # (a compressed chunk could expand to many megabytes).
        request_headers.setdefault("accept-encoding", "identity")
        last_error: ConnectFailed | None = None
        for address in addresses:
            # Connect to the vetted address; the Host header and the TLS name stay the URL's.
            origin = Origin(destination.scheme, address, port, server_name)
            try:
                return await self._pool.post(
                    origin,
                    destination.target,
                    destination.host_header,
                    request_headers,
                    body,
                    limit=EXCERPT_BYTES,
                )
            except ConnectFailed as exc:
                # Nothing was sent yet: the next address of the same host may answer.
                last_error = exc
        assert last_error is not None  # resolve_public never returns an empty list
        raise last_error
