"""What the client raises: one exception class per kind of refusal, all carrying the server's
problem body.

The server answers every refusal with the same RFC 9457 body: a stable `code` for programs, a
`message` for people and, for validation, `errors: [{path, message}]`. `APIError` carries all
three; its subclasses follow the status code so callers can catch what they can act on
(`NotFound`, `ValidationFailed`, `RateLimited`). Failures that never reached an answer
(refused connections, timeouts) are `TransportError`s. Everything derives from
`EventyardError`, so one `except` catches the lot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class EventyardError(Exception):
    """Anything the eventyard client raises."""


class TransportError(EventyardError):
    """The request got no answer: the connection was refused or broke, or it timed out."""


class WebhookVerificationError(EventyardError):
    """A webhook whose signature, id or timestamp does not check out."""


@dataclass(frozen=True)
class FieldError:
    """One problem with one field: `path` is a JSON path into the request body."""

    path: str
    message: str


class APIError(EventyardError):
    """The server refused the request. `code` is stable; `message` is for people."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        errors: list[FieldError] | None = None,
        body: dict[str, Any] | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.errors = errors or []
        self.body = body or {}
        self.retry_after = retry_after

    def __str__(self) -> str:
        lines = [f"{self.message} ({self.status} {self.code})"]
        lines += [f"  {e.path}: {e.message}" for e in self.errors]
        return "\n".join(lines)


class BadRequest(APIError):
    """400: the request itself is malformed (bad JSON, a bad query parameter, a bad cursor)."""


class AuthenticationError(APIError):
    """401: no key, a malformed key, or an unknown or revoked key."""


class PermissionDenied(APIError):
    """403: the key lacks the scope the route needs."""


class NotFound(APIError):
    """404: no such thing in the key's project and environment."""


class Conflict(APIError):
    """409: an id is taken, an idempotency key was reused for another body, a wrong state."""


class PayloadTooLarge(APIError):
    """413: the request, an event or a batch is over its limit (the message states it)."""


class ValidationFailed(APIError):
    """422: the body is well-formed JSON but not a valid request; see `errors`."""


class RateLimited(APIError):
    """429: too many requests; retry after `retry_after` seconds."""


class ServiceUnavailable(APIError):
    """503: the server cannot serve now (its database is down, it is shutting down)."""


class ServerError(APIError):
    """Any other 5xx."""


class UnexpectedResponse(APIError):
    """An answer that is not eventyard's: a redirect, or a body that is not JSON (the URL
    points at a proxy's page or at another server)."""


_BY_STATUS: dict[int, type[APIError]] = {
    400: BadRequest,
    401: AuthenticationError,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: ValidationFailed,
    429: RateLimited,
    503: ServiceUnavailable,
}


def error_class(status: int) -> type[APIError]:
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    return ServerError if status >= 500 else APIError
