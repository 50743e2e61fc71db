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
import ssl
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

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


def _pinned_request(
    client: httpx.AsyncClient,
    url: httpx.URL,
    address: str,
    body: bytes,
    headers: Mapping[str, str],
) -> httpx.Request:
    # Connect to the vetted address; keep the name where the server looks for it.
    host_header = httpx.Request("POST", url).headers["host"]
    request_headers = {k: v for k, v in headers.items() if k.lower() != "host"}
    request_headers["host"] = host_header
    # Asking for the body unencoded keeps the excerpt readable and the 1 KB read bounded
    # (a compressed chunk could expand to many megabytes).
    request_headers.setdefault("accept-encoding", "identity")
    extensions = {"sni_hostname": url.host} if url.scheme == "https" else {}
    return client.build_request(
        "POST",
        url.copy_with(host=address),
        content=body,
        headers=request_headers,
        extensions=extensions,
    )


class WebhookSender:
    """Sends webhook attempts through one shared connection pool."""

    def __init__(
        self,
        *,
        allow_private: bool,
        max_connections: int = 100,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        """`verify`: the TLS context that checks receivers' certificates (default: certifi)."""
        self._allow_private = allow_private
        self._client = httpx.AsyncClient(
            verify=verify if verify is not None else True,
            follow_redirects=False,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            trust_env=False,  # never route webhooks through a proxy found in the environment
        )

    async def aclose(self) -> None:
        await self._client.aclose()

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

        problem = check_webhook_url(url)
        if problem is not None:
            return result(error=f"invalid URL: {problem}")
        try:
            parsed = httpx.URL(url)
            _ = parsed.host  # decoded lazily: an IDNA error shows only now
        except (httpx.InvalidURL, ValueError) as exc:  # idna errors are ValueErrors
            return result(error=f"invalid URL: {exc}")
        try:
            async with asyncio.timeout(timeout_seconds):
                status, response_headers, excerpt = await self._attempt(
                    parsed, body, headers, timeout_seconds
                )
        except (TimeoutError, httpx.TimeoutException):
            return result(error=f"timeout: no complete answer within {timeout_seconds:g} s")
        except BlockedDestination as exc:
            return result(error=str(exc))
        except httpx.ConnectError as exc:
            reason = _describe(exc)
            if reason != "connection refused":
                reason = f"connection failed: {reason}"
            return result(error=reason)
        except httpx.HTTPError as exc:
            return result(error=f"{type(exc).__name__}: {_describe(exc)}")
        except OSError as exc:  # DNS resolution failures (socket.gaierror)
            return result(error=f"cannot resolve host: {_describe(exc)}")

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
        self, url: httpx.URL, body: bytes, headers: Mapping[str, str], timeout_seconds: float
    ) -> tuple[int, httpx.Headers, str]:
        port = url.port or (443 if url.scheme == "https" else 80)
        addresses = await resolve_public(url.host, port, allow_private=self._allow_private)
        last_error: httpx.ConnectError | None = None
        for address in addresses:
            request = _pinned_request(self._client, url, address, body, headers)
            request.extensions["timeout"] = httpx.Timeout(timeout_seconds).as_dict()
            try:
                response = await self._client.send(request, stream=True)
            except httpx.ConnectError as exc:
                # Nothing was sent yet: the next address of the same host may answer.
                last_error = exc
                continue
            try:
                excerpt = await _read_excerpt(response)
            finally:
                # Closing before the end drops the connection instead of draining it.
                await response.aclose()
            return response.status_code, response.headers, excerpt
        assert last_error is not None  # resolve_public never returns an empty list
        raise last_error


async def _read_excerpt(response: httpx.Response) -> str:
    received = bytearray()
    chunks = response.aiter_raw()
    try:
        async for chunk in chunks:
            received += chunk
            if len(received) >= EXCERPT_BYTES:
                break
    finally:
        if isinstance(chunks, AsyncGenerator):
            await chunks.aclose()
    return bytes(received[:EXCERPT_BYTES]).decode("utf-8", errors="replace")


def _describe(exc: BaseException) -> str:
    """The most telling words in an exception chain: "connection refused" when it is one."""
    seen: list[BaseException] = []
    pending: list[BaseException] = [exc]
    while pending:
        current = pending.pop(0)
        if current in seen:
            continue
        seen.append(current)
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, BaseExceptionGroup):
            pending.extend(current.exceptions)
        for linked in (current.__cause__, current.__context__):
            if linked is not None:
                pending.append(linked)
    return next((str(e) for e in seen if str(e)), type(exc).__name__)
