"""The client's logic, with no I/O: what to send for each operation, what an answer means,
and whether and when to try again.

`Client` and `AsyncClient` are thin shells around this module (the httpx lesson: keep the
protocol in one sans-I/O core and let each shell only move bytes). An operation is a `Call`:
method, path, query, JSON body and a `parse` function for the answer. A shell sends it,
hands the answer to `decode`, and asks `retry_delay` whether a failure is worth another try.

Retrying is safe exactly when the server cannot have acted on the request, or when acting
twice does no harm: a refused connection, a 429 or a 503 never reached the database; a lost
answer to a read, or to an event sent with an idempotency key, can be sent again. Every event
the client sends carries an idempotency key (generated when the caller gives none), so a
retried event is stored once.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from eventyard_client._version import __version__
from eventyard_client.errors import APIError, FieldError, UnexpectedResponse, error_class
from eventyard_client.resource import Resource, to_resource

T = TypeVar("T")

USER_AGENT = f"eventyard-client-python/{__version__}"
DEFAULT_URL = "http://127.0.0.1:8000"
# Statuses that say the server did not process the request: always safe to send again.
NOT_PROCESSED = frozenset({425, 429, 503})
# 5xx statuses that say "never", not "not now".
FINAL_5XX = frozenset({501, 505})
# The longest Retry-After an ordinary call waits out; past it, the error is raised with its
# `retry_after` so the caller decides (a proxy's "come back in an hour" must not freeze a
# CLI command for an hour).
MAX_RETRY_AFTER_SECONDS = 60.0

Json = Any
Params = Mapping[str, Any]


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer."""

    method: str
    path: str
    parse: Callable[[Json], T]
    params: dict[str, str] = field(default_factory=dict)
    body: Json = None
    headers: dict[str, str] = field(default_factory=dict)
    # True when sending the request twice has the effect of sending it once.
    retry_safe: bool = False
    # The body already encoded (the queue encodes events when they are queued, so a payload
    # the caller changes afterwards cannot change what is sent); else `body` is encoded.
    content: bytes | None = None

    def encoded(self) -> bytes | None:
        return self.content if self.content is not None else encode_body(self.body)


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped, honouring the server's Retry-After."""

    max_retries: int = 3
    base_seconds: float = 0.5
    max_seconds: float = 30.0

    def backoff(self, attempt: int) -> float:
        """The pause before retry number `attempt` (1 for the first retry). Loops that retry
        for days count attempts into the thousands: the exponent stops growing long before
        the float would overflow."""
        ceiling = min(self.max_seconds, self.base_seconds * 2 ** min(max(attempt - 1, 0), 32))
        return random.uniform(ceiling / 2, ceiling)  # noqa: S311 - jitter, not a secret

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The server's Retry-After when it gave one, else the backoff."""
        if retry_after is not None:
            return max(retry_after, 0.0)
        return self.backoff(attempt)


def retry_delay(
    policy: RetryPolicy,
    call: Call[Any],
    attempt: int,
    *,
    status: int | None = None,
    retry_after: float | None = None,
    sent: bool = True,
) -> float | None:
    """Seconds to wait before sending `call` again after failed attempt number `attempt`,
    or None to give up. `status` is None for a transport failure; `sent` is False when the
    request never left (the connection was refused)."""
    if attempt > policy.max_retries:
        return None
    if retry_after is not None and retry_after > MAX_RETRY_AFTER_SECONDS:
        return None
    if status is None:
        retryable = not sent or call.retry_safe
    else:
        # Any other transient status may come after the work was done (a proxy timing out):
        # safe to resend only when doing it twice does no harm.
        retryable = status in NOT_PROCESSED or (transient_status(status) and call.retry_safe)
    return policy.delay(attempt, retry_after) if retryable else None


def transient_status(status: int) -> bool:
    """Worth trying again later: 408, 425, 429 and every 5xx but 501 and 505 (a proxy's
    520-530 while the server restarts behind it included). The queue, the pull loop and
    the stream, which retry for as long as they run, use this one definition."""
    return status in (408, 425, 429) or (status >= 500 and status not in FINAL_5XX)


def transient(error: APIError) -> bool:
    """A refusal worth trying again later. An answer that is not eventyard's (a proxy's
    maintenance page, even with 200) counts: the server behind it may be restarting."""
    return isinstance(error, UnexpectedResponse) or transient_status(error.status)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max((when - datetime.now(UTC)).total_seconds(), 0.0)


def decode(status: int, headers: Mapping[str, str], content: bytes) -> Json:
    """The answer's JSON, or raise the `APIError` subclass for a refusal. An answer that is
    not eventyard's (a redirect, an HTML page from a proxy or another server) raises
    `UnexpectedResponse` naming what came back, rather than failing somewhere later."""
    if status >= 400:
        raise api_error(status, headers, content)
    if 300 <= status < 400:
        where = headers.get("location")
        target = f" to {where}" if where else ""
        raise UnexpectedResponse(
            status,
            "unexpected_response",
            f"the server answered {status}, a redirect{target}; check the URL: it must be "
            "the eventyard server itself (redirects are not followed)",
        )
    if not content:
        return None
    kind = headers.get("content-type") or "no content type"
    try:
        value = json.loads(content, object_hook=Resource)
    except ValueError:
        raise UnexpectedResponse(
            status,
            "unexpected_response",
            f"the server answered {status} with something that is not JSON ({kind}): "
            f"{_excerpt(content, status)!r}; is the URL an eventyard server?",
        ) from None
    if not isinstance(value, dict):
        # Every eventyard answer is a JSON object; a bare array or string is someone else's.
        raise UnexpectedResponse(
            status,
            "unexpected_response",
            f"the server answered {status} with JSON that is not an object: "
            f"{_excerpt(content, status)!r}; is the URL an eventyard server?",
        )
    return value


def api_error(status: int, headers: Mapping[str, str], content: bytes) -> APIError:
    body: dict[str, Any] = {}
    try:
        parsed = json.loads(content) if content else {}
        if isinstance(parsed, dict):
            body = parsed
    except ValueError:
        pass
    code = str(body.get("code") or f"http_{status}")
    message = str(body.get("message") or body.get("detail") or _excerpt(content, status))
    errors = [
        FieldError(str(e.get("path", "")), str(e.get("message", "")))
        for e in body.get("errors") or []
        if isinstance(e, dict)
    ]
    retry_after = parse_retry_after(headers.get("retry-after"))
    return error_class(status)(status, code, message, errors, body, retry_after)


def _excerpt(content: bytes, status: int) -> str:
    text = content[:200].decode("utf-8", "replace").strip()
    return text or f"the server answered {status}"


def request_headers(key: str | None) -> dict[str, str]:
    headers = {"user-agent": USER_AGENT, "accept": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    return headers


def base_url(url: str | None) -> str:
    url = (url or DEFAULT_URL).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the server URL must start with http:// or https://; got {url!r}")
    return url


def segment(value: str) -> str:
    """One path segment, percent-encoded so any id (with `/`, `%`, spaces) round-trips."""
    return quote(str(value), safe="")


def new_idempotency_key() -> str:
    return f"ik_{uuid.uuid4().hex}"


def time_param(value: datetime | int | str) -> str:
    """A time for the API: an aware datetime (naive ones are UTC), epoch ms, or ISO 8601."""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.isoformat()
    if isinstance(value, bool):
        raise TypeError("a time must be a datetime, epoch milliseconds or an ISO 8601 string")
    return str(value)


def query(**values: Any) -> dict[str, str]:
    """Query parameters without the ones left out; booleans as `true`/`false`."""
    params: dict[str, str] = {}
    for name, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            params[name] = "true" if value else "false"
        elif isinstance(value, datetime):
            params[name] = time_param(value)
        else:
            params[name] = str(value)
    return params


def event_body(
    trigger: str,
    user_id: str | int,
    payload: Mapping[str, Any] | None = None,
    *,
    timestamp: datetime | int | str | None = None,
    idempotency_key: str | None = None,
) -> dict[str, Any]:
    """One event as the API takes it, always with an idempotency key."""
    body: dict[str, Any] = {
        "trigger": trigger,
        "user_id": user_id if isinstance(user_id, str) else str(user_id),
        "payload": dict(payload) if payload is not None else {},
        "idempotency_key": idempotency_key or new_idempotency_key(),
    }
    if timestamp is not None:
        body["timestamp"] = timestamp if isinstance(timestamp, int) else time_param(timestamp)
    return body


def with_idempotency_key(event: Mapping[str, Any]) -> dict[str, Any]:
    item = dict(event)
    if not item.get("idempotency_key"):
        item["idempotency_key"] = new_idempotency_key()
    return item


def _items(value: Json) -> list[Resource]:
    return list(value["data"])


def _resource(value: Json) -> Resource:
    return to_resource(value)


class Ops:
    """Every operation of the v1 API as a `Call`. The shells' methods are one line each."""

    # -- events
    @staticmethod
    def send_event(event: dict[str, Any]) -> Call[Resource]:
        return Call("POST", "/v1/events", _resource, body=event, retry_safe=True)

    @staticmethod
    def send_batch(events: list[dict[str, Any]]) -> Call[Resource]:
        return Call("POST", "/v1/events/batch", _resource, body={"events": events}, retry_safe=True)

    @staticmethod
    def list_events(**filters: Any) -> Call[Resource]:
        return Call("GET", "/v1/events", _resource, params=query(**filters), retry_safe=True)

    @staticmethod
    def get_event(event_id: str) -> Call[Resource]:
        return Call("GET", f"/v1/events/{segment(event_id)}", _resource, retry_safe=True)

    @staticmethod
    def erase_user(user_id: str) -> Call[Resource]:
        return Call("DELETE", f"/v1/users/{segment(user_id)}", _resource, retry_safe=True)

    @staticmethod
    def stats(window: str = "hour") -> Call[Resource]:
        return Call("GET", "/v1/stats", _resource, params=query(window=window), retry_safe=True)

    # -- triggers
    @staticmethod
    def create_trigger(fields: dict[str, Any]) -> Call[Resource]:
        return Call("POST", "/v1/triggers", _resource, body=fields)

    @staticmethod
    def list_triggers(archived: bool = False) -> Call[list[Resource]]:
        params = query(archived=archived or None)
        return Call("GET", "/v1/triggers", _items, params=params, retry_safe=True)

    @staticmethod
    def get_trigger(trigger_id: str) -> Call[Resource]:
        return Call("GET", f"/v1/triggers/{segment(trigger_id)}", _resource, retry_safe=True)

    @staticmethod
    def update_trigger(trigger_id: str, fields: dict[str, Any]) -> Call[Resource]:
        path = f"/v1/triggers/{segment(trigger_id)}"
        return Call("PATCH", path, _resource, body=fields, retry_safe=True)

    @staticmethod
    def archive_trigger(trigger_id: str) -> Call[Resource]:
        path = f"/v1/triggers/{segment(trigger_id)}"
        return Call("DELETE", path, _resource, retry_safe=True)

    # -- keys
    @staticmethod
    def create_key(name: str, scopes: list[str]) -> Call[Resource]:
        return Call("POST", "/v1/keys", _resource, body={"name": name, "scopes": scopes})

    @staticmethod
    def list_keys() -> Call[list[Resource]]:
        return Call("GET", "/v1/keys", _items, retry_safe=True)

    @staticmethod
    def get_key(key_id: str) -> Call[Resource]:
        return Call("GET", f"/v1/keys/{segment(key_id)}", _resource, retry_safe=True)

    @staticmethod
    def revoke_key(key_id: str) -> Call[Resource]:
        return Call("DELETE", f"/v1/keys/{segment(key_id)}", _resource, retry_safe=True)

    # -- consumers
    @staticmethod
    def create_consumer(fields: dict[str, Any]) -> Call[Resource]:
        return Call("POST", "/v1/consumers", _resource, body=fields)

    @staticmethod
    def list_consumers() -> Call[list[Resource]]:
        return Call("GET", "/v1/consumers", _items, retry_safe=True)

    @staticmethod
    def get_consumer(consumer_id: str) -> Call[Resource]:
        return Call("GET", f"/v1/consumers/{segment(consumer_id)}", _resource, retry_safe=True)

    @staticmethod
    def update_consumer(consumer_id: str, fields: dict[str, Any]) -> Call[Resource]:
        path = f"/v1/consumers/{segment(consumer_id)}"
        return Call("PATCH", path, _resource, body=fields, retry_safe=True)

    @staticmethod
    def delete_consumer(consumer_id: str) -> Call[Resource]:
        path = f"/v1/consumers/{segment(consumer_id)}"
        return Call("DELETE", path, _resource, retry_safe=True)

    @staticmethod
    def consumer_action(consumer_id: str, action: str, body: Json = None) -> Call[Resource]:
        """pause, resume, rotate-secret or replay."""
        path = f"/v1/consumers/{segment(consumer_id)}/{action}"
        safe = action in ("pause", "resume", "replay")
        return Call("POST", path, _resource, body=body, retry_safe=safe)

    @staticmethod
    def consumer_transactions(consumer_id: str, **filters: Any) -> Call[Resource]:
        path = f"/v1/consumers/{segment(consumer_id)}/transactions"
        return Call("GET", path, _resource, params=query(**filters), retry_safe=True)

    @staticmethod
    def claim(
        consumer_id: str, limit: int, lease_seconds: int, wait_seconds: float
    ) -> Call[list[Resource]]:
        path = f"/v1/consumers/{segment(consumer_id)}/claim"
        body = {"limit": limit, "lease_seconds": lease_seconds, "wait_seconds": wait_seconds}
        return Call("POST", path, _items, body=body)

    # -- transactions
    @staticmethod
    def get_transaction(transaction_id: str) -> Call[Resource]:
        path = f"/v1/transactions/{segment(transaction_id)}"
        return Call("GET", path, _resource, retry_safe=True)

    @staticmethod
    def report(
        transaction_id: str,
        state: str,
        output: Json = None,
        lease_seconds: int | None = None,
    ) -> Call[Resource]:
        body: dict[str, Any] = {"state": state}
        if output is not None:
            body["output"] = output
        if lease_seconds is not None:
            body["lease_seconds"] = lease_seconds
        path = f"/v1/transactions/{segment(transaction_id)}"
        return Call("PATCH", path, _resource, body=body)

    @staticmethod
    def retry_transaction(transaction_id: str) -> Call[Resource]:
        path = f"/v1/transactions/{segment(transaction_id)}/retry"
        return Call("POST", path, _resource)

    # -- project
    @staticmethod
    def get_project() -> Call[Resource]:
        return Call("GET", "/v1/project", _resource, retry_safe=True)

    @staticmethod
    def update_project(fields: dict[str, Any]) -> Call[Resource]:
        return Call("PATCH", "/v1/project", _resource, body=fields, retry_safe=True)


def drop_none(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items() if value is not None}


def call_headers(call: Call[Any]) -> dict[str, str]:
    headers = dict(call.headers)
    if call.body is not None:
        headers.setdefault("content-type", "application/json")
    return headers


def encode_body(body: Json) -> bytes | None:
    """The body as JSON, refusing NaN and infinities (the server would refuse the request)."""
    if body is None:
        return None
    try:
        text = json.dumps(
            body, separators=(",", ":"), ensure_ascii=False, default=_json_default, allow_nan=False
        )
    except ValueError:
        raise ValueError("cannot send NaN or an infinite number as JSON") from None
    return text.encode()


def loads_strict(text: str | bytes) -> Json:
    """JSON as the server reads it: NaN, Infinity and numbers too large for a double are
    refused (ValueError) instead of becoming floats no request could carry."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"the number {text} is too large")
    return value


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return time_param(value)
    raise TypeError(f"cannot send {type(value).__name__} as JSON")


@dataclass(frozen=True)
class QueueOptions:
    """How `track()`'s background queue batches: up to `batch_size` events a request, sent
    at least every `flush_interval` seconds; at most `max_queue_size` events wait, and when
    they do, `on_full` says whether `track()` drops the new event or blocks until there is
    room. A failed send is retried until it succeeds, pausing up to `max_backoff` seconds
    between tries (longer only when the server's Retry-After asks for it); `close()` and the
    exit hook give the queue `shutdown_timeout` seconds to send what is left."""

    batch_size: int = 100
    flush_interval: float = 0.5
    max_queue_size: int = 10_000
    on_full: str = "drop"
    shutdown_timeout: float = 10.0
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        if not 1 <= self.batch_size <= 1000:
            raise ValueError(
                f"batch_size must be from 1 to 1000 (the server's limit); got {self.batch_size}"
            )
        if self.flush_interval <= 0:
            raise ValueError(f"flush_interval must be positive; got {self.flush_interval}")
        if self.max_queue_size < 1:
            raise ValueError(f"max_queue_size must be at least 1; got {self.max_queue_size}")
        if self.on_full not in ("drop", "block"):
            raise ValueError(f"on_full must be 'drop' or 'block'; got {self.on_full!r}")
        if self.shutdown_timeout < 0:
            raise ValueError(f"shutdown_timeout must not be negative; got {self.shutdown_timeout}")
        if self.max_backoff <= 0:
            raise ValueError(f"max_backoff must be positive; got {self.max_backoff}")
