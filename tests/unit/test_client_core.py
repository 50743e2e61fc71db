"""The client's sans-I/O core: when to retry, how long to wait, how refusals are read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from eventyard_client import (
    NotFound,
    RateLimited,
    ServerError,
    UnexpectedResponse,
    ValidationFailed,
)
from eventyard_client._core import (
    Call,
    Ops,
    QueueOptions,
    RetryPolicy,
    api_error,
    base_url,
    decode,
    event_body,
    parse_retry_after,
    retry_delay,
    segment,
)

POLICY = RetryPolicy(max_retries=3, base_seconds=1.0, max_seconds=8.0)
CREATE = Ops.create_trigger({"name": "x"})  # not safe to send twice
READ = Ops.list_triggers()


def test_a_refused_connection_is_retried_even_for_a_create() -> None:
    assert retry_delay(POLICY, CREATE, 1, sent=False) is not None
    # ... but a create whose answer was lost is not: it may have been done.
    assert retry_delay(POLICY, CREATE, 1, sent=True) is None
    assert retry_delay(POLICY, READ, 1, sent=True) is not None


@pytest.mark.parametrize(
    ("status", "create", "read"),
    [
        (429, True, True),
        (503, True, True),
        (502, False, True),
        (500, False, True),
        (522, False, True),  # a proxy in front of a restarting server
        (501, False, False),
        (404, False, False),
        (422, False, False),
    ],
)
def test_which_statuses_are_retried(status: int, create: bool, read: bool) -> None:
    assert (retry_delay(POLICY, CREATE, 1, status=status) is not None) is create
    assert (retry_delay(POLICY, READ, 1, status=status) is not None) is read


def test_retries_stop_after_max_retries_and_backoff_grows_within_its_cap() -> None:
    assert retry_delay(POLICY, READ, 4, status=503) is None
    for attempt, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 8.0)]:
        delay = POLICY.backoff(attempt)
        assert ceiling / 2 <= delay <= ceiling


def test_retry_after_replaces_the_backoff() -> None:
    assert retry_delay(POLICY, READ, 1, status=429, retry_after=7.0) == 7.0
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    assert 25 <= (parse_retry_after(later) or 0) <= 30


def test_problem_bodies_become_typed_errors() -> None:
    body = (
        b'{"status": 422, "code": "validation_failed", "message": "The event is not valid.",'
        b' "errors": [{"path": "$.payload.amount", "message": "is required"}]}'
    )
    error = api_error(422, {}, body)
    assert isinstance(error, ValidationFailed)
    assert (error.code, error.errors[0].path) == ("validation_failed", "$.payload.amount")
    assert "$.payload.amount: is required" in str(error)
    assert isinstance(api_error(404, {}, b'{"code": "not_found", "message": "no"}'), NotFound)
    limited = api_error(429, {"retry-after": "3"}, b"")
    assert isinstance(limited, RateLimited)
    assert limited.retry_after == 3.0
    # A proxy's HTML page still gives a readable error.
    proxy = api_error(502, {}, b"<html>Bad Gateway</html>")
    assert isinstance(proxy, ServerError)
    assert proxy.code == "http_502"
    assert "Bad Gateway" in proxy.message


def test_every_event_gets_an_idempotency_key_and_ids_are_path_safe() -> None:
    first, second = event_body("t", 1), event_body("t", 1)
    assert first["idempotency_key"] != second["idempotency_key"]
    assert first["user_id"] == "1"
    assert event_body("t", "u", idempotency_key="mine")["idempotency_key"] == "mine"
    naive = event_body("t", "u", timestamp=datetime(2026, 1, 2, 3, 4, 5))
    assert naive["timestamp"] == "2026-01-02T03:04:05+00:00"
    assert segment("a/b %c") == "a%2Fb%20%25c"
    assert Ops.get_event("evt/../x").path == "/v1/events/evt%2F..%2Fx"


def test_bad_options_are_refused_with_the_limit() -> None:
    with pytest.raises(ValueError, match="from 1 to 1000"):
        QueueOptions(batch_size=5000)
    with pytest.raises(ValueError, match="http:// or https://"):
        base_url("localhost:8000")
    assert base_url("http://h:1/") == "http://h:1"


def test_calls_are_plain_data() -> None:
    call: Call[object] = Ops.claim("con_1", 5, 30, 10)
    assert (call.method, call.path, call.body) == (
        "POST",
        "/v1/consumers/con_1/claim",
        {"limit": 5, "lease_seconds": 30, "wait_seconds": 10},
    )
    assert not call.retry_safe  # a lost claim answer leaves leased work; do not claim twice


def test_backoff_for_a_loop_that_has_retried_for_days_stays_at_its_cap() -> None:
    assert POLICY.backoff(5000) <= POLICY.max_seconds


def test_a_retry_after_longer_than_a_minute_is_raised_not_slept() -> None:
    assert retry_delay(POLICY, READ, 1, status=503, retry_after=30.0) == 30.0
    assert retry_delay(POLICY, READ, 1, status=503, retry_after=3600.0) is None


def test_a_redirect_or_a_page_that_is_not_json_says_what_came_back() -> None:
    with pytest.raises(UnexpectedResponse, match="redirect to https://other/"):
        decode(302, {"location": "https://other/"}, b"")
    with pytest.raises(UnexpectedResponse, match=r"not JSON \(text/html\)"):
        decode(200, {"content-type": "text/html"}, b"<html>Welcome to nginx</html>")
    with pytest.raises(UnexpectedResponse, match="not an object"):
        decode(200, {"content-type": "application/json"}, b'["ok"]')
    assert decode(200, {}, b'{"a": 1}') == {"a": 1}
