"""The one error body: RFC 9457 problem+json, with `code`, `message` and field `errors`.

Every refusal of the native API is built here. Unknown exceptions are logged with their
traceback and answered `500 internal_error` without it.
"""

from __future__ import annotations

import logging
from typing import Any

import orjson

from eventyard.api.http import Response
from eventyard.errors import EventyardError

logger = logging.getLogger("eventyard.api")

PROBLEM_TYPE = "application/problem+json"


def problem_body(
    status: int,
    code: str,
    title: str,
    message: str,
    errors: list[dict[str, str]] | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": f"/docs#error-{code}",
        "title": title,
        "status": status,
        "detail": message,
        "code": code,
        "message": message,
    }
    if errors:
        body["errors"] = errors
    if extra:
        body.update({k: v for k, v in extra.items() if v is not None})
    return body


def problem_response(exc: EventyardError) -> Response:
    body = problem_body(
        exc.status,
        exc.code,
        exc.title,
        exc.message,
        [e.as_dict() for e in exc.errors],
        exc.extra,
    )
    return Response(exc.status, orjson.dumps(body), PROBLEM_TYPE, dict(exc.headers))


def internal_error(exc: BaseException, where: str) -> Response:
    logger.error("unhandled error in %s", where, exc_info=exc)
    body = problem_body(
        500,
        "internal_error",
        "Internal error",
        "Something went wrong on our side; the request may not have been applied. "
        "It is logged; retrying with the same idempotency key is safe.",
    )
    return Response(500, orjson.dumps(body), PROBLEM_TYPE)
