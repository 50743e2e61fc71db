"""One exception tree for everything a caller can get wrong.

Each class carries a stable machine-readable `code` and the HTTP status it maps to. Services
raise these; `api/errors.py` turns any of them into the one problem+json body, and the
adapters translate them into their own documented shapes. A message always says what the
limit or the expectation was, and what was found instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, ClassVar

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def json_path(base: str, *parts: str | int) -> str:
    """`json_path("$.payload", "a b", 0)` → `$.payload["a b"][0]`."""
    out = base
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENTIFIER.fullmatch(part):
            out += f".{part}"
        else:
            escaped = part.replace("\\", "\\\\").replace('"', '\\"')
            out += f'["{escaped}"]'
    return out


@dataclass(frozen=True)
class FieldError:
    """One problem with one field, addressed by a JSON path such as `$.payload.amount`."""

    path: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "message": self.message}


class EventyardError(Exception):
    code: ClassVar[str] = "error"
    status: ClassVar[int] = 400
    title: ClassVar[str] = "Bad request"

    def __init__(
        self,
        message: str,
        *,
        errors: list[FieldError] | None = None,
        headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.errors = errors or []
        self.headers = headers or {}
        self.extra = extra or {}


class InvalidRequest(EventyardError):
    code = "invalid_request"
    status = 400
    title = "Bad request"


class MalformedJson(EventyardError):
    code = "malformed_json"
    status = 400
    title = "Malformed JSON"


class InvalidCursor(EventyardError):
    code = "invalid_cursor"
    status = 400
    title = "Invalid cursor"


class Unauthenticated(EventyardError):
    code = "unauthenticated"
    status = 401
    title = "Unauthenticated"


class Forbidden(EventyardError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class NotFound(EventyardError):
    code = "not_found"
    status = 404
    title = "Not found"


class TriggerNotFound(NotFound):
    code = "trigger_not_found"


class EventNotFound(NotFound):
    code = "event_not_found"


class KeyNotFound(NotFound):
    code = "key_not_found"


class ProjectNotFound(NotFound):
    code = "project_not_found"


class MethodNotAllowed(EventyardError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class Conflict(EventyardError):
    code = "conflict"
    status = 409
    title = "Conflict"


class IdempotencyConflict(Conflict):
    code = "idempotency_key_reused"


class TriggerExists(Conflict):
    code = "trigger_exists"


class TriggerArchived(Conflict):
    code = "trigger_archived"


class ProjectExists(Conflict):
    code = "project_exists"


class PayloadTooLarge(EventyardError):
    code = "payload_too_large"
    status = 413
    title = "Payload too large"


class UnsupportedMediaType(EventyardError):
    code = "unsupported_media_type"
    status = 415
    title = "Unsupported media type"


class TooManyRequests(EventyardError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"


class ValidationFailed(EventyardError):
    code = "validation_failed"
    status = 422
    title = "Validation failed"


class BatchTooLarge(ValidationFailed):
    code = "batch_too_large"
    status = 413
    title = "Batch too large"


class InternalError(EventyardError):
    """Only for adapters' error shapes: the native API answers unknown errors itself."""

    code = "internal_error"
    status = 500
    title = "Internal error"


class ServiceUnavailable(EventyardError):
    code = "unavailable"
    status = 503
    title = "Service unavailable"


def unknown_fields(body: dict[str, Any], allowed: set[str], base: str = "$") -> list[FieldError]:
    """One error per field of `body` outside `allowed`, each naming the fields allowed.

    Unknown fields are refused rather than ignored, so a misspelt field never silently loses
    what the client meant to send.
    """
    if body.keys() <= allowed:  # a keys view compares as a set without making one
        return []
    known = ", ".join(sorted(allowed))
    return [
        FieldError(json_path(base, name), f"is not a known field; the known fields are {known}")
        for name in body
        if name not in allowed
    ]
