"""Bad input gets a clear 4xx problem+json, never a 5xx, and nothing is stored.

Each case sends one bad request to an ingest route and checks the answer and that the
project still has no events and no triggers afterwards. Authentication and routing cases
are in test_bad_input_auth.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio

EVENTS = "/v1/events"
BATCH = "/v1/events/batch"
PATH_ROUTE = "/v1/triggers/signup/users/u1/events"


@dataclass(frozen=True)
class Case:
    content: bytes
    status: int
    path: str = EVENTS
    error_paths: tuple[str, ...] = ()  # validation errors expected, by JSON path
    says: tuple[str, ...] = ()  # fragments the message must contain
    headers: dict[str, str] = field(default_factory=dict)


def event(**fields: Any) -> bytes:
    return orjson.dumps({"trigger": "signup", "user_id": "u1", **fields})


def raw_event(**fields: Any) -> dict[str, Any]:
    return {"trigger": "signup", "user_id": "u1", **fields}


def without(name: str) -> bytes:
    body = raw_event()
    del body[name]
    return orjson.dumps(body)


def nested(depth: int) -> Any:
    """A value whose objects and arrays nest `depth` levels deep."""
    value: Any = {}
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def batch_of(*items: Any) -> bytes:
    return orjson.dumps({"events": list(items)})


def deep_text(levels: int) -> bytes:
    return (
        b'{"trigger":"signup","user_id":"u1","payload":'
        + b'{"a":' * levels
        + b"1"
        + (b"}" * levels)
        + b"}"
    )


CASES: dict[str, Case] = {
    # --- not JSON, or not an object ---
    "malformed": Case(b'{"trigger": "signup",', 400, says=("line 1", "column")),
    "malformed-2nd-line": Case(b'{"trigger": "signup",\n "user_id": u1}', 400, says=("line 2",)),
    "trailing-garbage": Case(event() + b"}", 400),
    "single-quotes": Case(b"{'trigger': 'signup'}", 400),
    "empty": Case(b"", 400, says=("empty",)),
    "whitespace": Case(b"  \n ", 400),
    "array": Case(b"[]", 422, error_paths=("$",)),
    "string": Case(b'"signup"', 422, error_paths=("$",)),
    "number": Case(b"42", 422, error_paths=("$",)),
    "null": Case(b"null", 422, error_paths=("$",)),
    "true": Case(b"true", 422, error_paths=("$",)),
    "invalid-utf8": Case(b'{"trigger":"signup","user_id":"\xff\xfe"}', 400),
    "invalid-utf8-key": Case(b'{"trigger":"signup","user_id":"u1","payload":{"\xc3":1}}', 400),
    "lone-surrogate": Case(b'{"trigger":"signup","user_id":"\\ud800"}', 400),
    "lone-surrogate-payload": Case(
        b'{"trigger":"signup","user_id":"u1","payload":{"x":"a\\udc00b"}}', 400
    ),
    "nan": Case(b'{"trigger":"signup","user_id":"u1","payload":{"x":NaN}}', 400),
    "huge-number": Case(b'{"trigger":"signup","user_id":"u1","payload":{"x":1e999}}', 400),
    "huge-int": Case(b'{"trigger":"signup","user_id":' + b"9" * 30 + b"}", 422),
    # --- wrong types and missing fields ---
    "user-object": Case(event(user_id={"id": 1}), 422, error_paths=("$.user_id",)),
    "user-bool": Case(event(user_id=True), 422, error_paths=("$.user_id",)),
    "user-float": Case(event(user_id=1.5), 422, error_paths=("$.user_id",)),
    "user-array": Case(event(user_id=["u1"]), 422, error_paths=("$.user_id",)),
    "payload-array": Case(event(payload=[1, 2]), 422, error_paths=("$.payload",)),
    "payload-string": Case(event(payload="{}"), 422, error_paths=("$.payload",)),
    "trigger-number": Case(event(trigger=5), 422, error_paths=("$.trigger",)),
    "trigger-null": Case(event(trigger=None), 422, error_paths=("$.trigger",)),
    "key-object": Case(event(idempotency_key={}), 422, error_paths=("$.idempotency_key",)),
    "key-empty": Case(event(idempotency_key=""), 422, error_paths=("$.idempotency_key",)),
    "missing-trigger": Case(without("trigger"), 422, error_paths=("$.trigger",)),
    "missing-user": Case(without("user_id"), 422, error_paths=("$.user_id",)),
    "missing-both": Case(b"{}", 422, error_paths=("$.trigger", "$.user_id")),
    "unknown-field": Case(event(userId="u1"), 422, error_paths=("$.userId",)),
    # --- ids ---
    "user-empty": Case(event(user_id=""), 422, error_paths=("$.user_id",)),
    "user-257": Case(event(user_id="u" * 257), 422, error_paths=("$.user_id",), says=("256",)),
    "user-nul": Case(event(user_id="a\x00b"), 422, error_paths=("$.user_id",)),
    "user-newline": Case(event(user_id="a\nb"), 422, error_paths=("$.user_id",)),
    "user-del": Case(event(user_id="a\x7fb"), 422, error_paths=("$.user_id",)),
    "key-nul": Case(event(idempotency_key="k\x00"), 422, error_paths=("$.idempotency_key",)),
    "trigger-empty": Case(event(trigger=""), 422, error_paths=("$.trigger",)),
    "trigger-257": Case(event(trigger="t" * 257), 422, error_paths=("$.trigger",)),
    "trigger-129": Case(event(trigger="t" * 129), 422, error_paths=("$.trigger",)),
    "trigger-upper": Case(event(trigger="SignUp"), 422, error_paths=("$.trigger",)),
    "trigger-space": Case(event(trigger="sign up"), 422, error_paths=("$.trigger",)),
    "trigger-nul": Case(event(trigger="sign\x00up"), 422, error_paths=("$.trigger",)),
    "trigger-slash": Case(event(trigger="a/b"), 422, error_paths=("$.trigger",)),
    # --- sizes and depth ---
    "event-over-32k": Case(
        event(payload={"blob": "x" * 33_000}),
        413,
        error_paths=("$.payload",),
        says=("32,768", "33,011"),
    ),
    "request-over-512k": Case(
        event(payload={"blob": "x" * 600_000}), 413, says=("524,288", "600,057")
    ),
    "depth-33": Case(event(payload=nested(32)), 422, says=("32",)),
    "depth-33-arrays": Case(b"[" * 33 + b"]" * 33, 422, says=("32",)),
    "depth-5000": Case(deep_text(5000), 400),
    "depth-5000-arrays": Case(b"[" * 5000 + b"]" * 5000, 400),
    # --- the path route ---
    "path-malformed": Case(b"{", 400, path=PATH_ROUTE, says=("line 1",)),
    "path-array": Case(b"[]", 422, path=PATH_ROUTE, error_paths=("$",)),
    "path-null": Case(b"null", 422, path=PATH_ROUTE, error_paths=("$",)),
    "path-repeats-trigger": Case(
        b'{"trigger":"signup"}', 422, path=PATH_ROUTE, error_paths=("$.trigger",)
    ),
    "path-payload-array": Case(b'{"payload":[]}', 422, path=PATH_ROUTE, error_paths=("$.payload",)),
    "path-unknown-field": Case(b'{"colour":1}', 422, path=PATH_ROUTE, error_paths=("$.colour",)),
    "path-trigger-upper": Case(b"{}", 422, path="/v1/triggers/SignUp/users/u1/events"),
    "path-trigger-space": Case(b"{}", 422, path="/v1/triggers/sign%20up/users/u1/events"),
    "path-user-nul": Case(b"{}", 400, path="/v1/triggers/signup/users/a%00b/events", says=("NUL",)),
    "path-user-newline": Case(b"{}", 422, path="/v1/triggers/signup/users/a%0Ab/events"),
    "path-user-257": Case(b"{}", 422, path=f"/v1/triggers/signup/users/{'u' * 257}/events"),
    "path-user-bad-utf8": Case(b"{}", 400, path="/v1/triggers/signup/users/%FF/events"),
    "path-over-32k": Case(orjson.dumps({"payload": {"b": "x" * 33_000}}), 413, path=PATH_ROUTE),
    "path-depth-33": Case(orjson.dumps({"payload": nested(32)}), 422, path=PATH_ROUTE),
    # --- the batch route ---
    "batch-malformed": Case(b'{"events": [', 400, path=BATCH, says=("line 1",)),
    "batch-array": Case(b"[]", 422, path=BATCH),
    "batch-invalid-utf8": Case(b'{"events": ["\xff"]}', 400, path=BATCH),
    "batch-depth-33": Case(orjson.dumps({"events": [nested(31)]}), 422, path=BATCH),
    "batch-depth-5000": Case(b'{"events":' + b"[" * 5000 + b"]" * 5000 + b"}", 400, path=BATCH),
    "batch-over-512k": Case(
        batch_of(*[raw_event(payload={"b": "x" * 20_000}) for _ in range(30)]), 413, path=BATCH
    ),
}


async def assert_nothing_stored(api: Api) -> None:
    events = await api.get("/v1/events")
    assert events.status_code == 200
    assert events.json()["data"] == []
    triggers = await api.get("/v1/triggers", params={"archived": "true"})
    assert triggers.json()["data"] == []


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status
    assert isinstance(problem["code"], str)
    assert problem["code"]
    assert isinstance(problem["message"], str)
    assert problem["message"]
    return problem


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
async def test_bad_request_is_refused_and_nothing_is_stored(api: Api, case: Case) -> None:
    response = await api.client.post(
        case.path,
        content=case.content,
        headers={**api.auth(), "content-type": "application/json", **case.headers},
    )
    problem = assert_problem(response, case.status)
    for fragment in case.says:
        assert fragment in problem["message"], problem["message"]
    if case.error_paths:
        paths = sorted(e["path"] for e in problem["errors"])
        assert paths == sorted(case.error_paths)
        assert all(e["message"] for e in problem["errors"])
    await assert_nothing_stored(api)


async def test_depth_32_is_accepted(api: Api) -> None:
    response = await api.post(EVENTS, raw_event(payload=nested(31)))
    assert response.status_code == 201, response.text


async def test_an_event_of_exactly_32k_is_accepted(api: Api) -> None:
    blob = "x" * (32 * 1024 - len(b'{"b":""}'))
    response = await api.post(EVENTS, raw_event(payload={"b": blob}))
    assert response.status_code == 201, response.text


async def test_an_event_one_byte_over_32k_is_413(api: Api) -> None:
    blob = "x" * (32 * 1024 + 1 - len(b'{"b":""}'))
    response = await api.post(EVENTS, raw_event(payload={"b": blob}))
    problem = assert_problem(response, 413)
    assert "32,768" in problem["message"]
    assert "32,769" in problem["message"]
    await assert_nothing_stored(api)


def padded_batch(size: int) -> bytes:
    """A valid batch of small-enough events, padded with trailing spaces to `size` bytes."""
    body = batch_of(*[raw_event(user_id=f"u{i}", payload={"b": "x" * 30_000}) for i in range(17)])
    assert len(body) <= size
    return body + b" " * (size - len(body))


async def test_a_request_of_exactly_512k_is_accepted(api: Api) -> None:
    response = await api.client.post(BATCH, content=padded_batch(524_288), headers=api.auth())
    assert response.status_code == 200, response.text
    assert response.json()["accepted"] == 17


async def test_a_request_one_byte_over_512k_is_413(api: Api) -> None:
    response = await api.client.post(BATCH, content=padded_batch(524_289), headers=api.auth())
    problem = assert_problem(response, 413)
    assert "524,288" in problem["message"]
    assert "524,289" in problem["message"]
    await assert_nothing_stored(api)


async def test_a_chunked_request_over_512k_is_413(api: Api) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"trigger":"signup","user_id":"u1","payload":{"blob":"'
        for _ in range(100):
            yield b"x" * 8192
        yield b'"}}'

    response = await api.client.post(
        EVENTS, content=chunks(), headers={**api.auth(), "content-type": "application/json"}
    )
    problem = assert_problem(response, 413)
    assert "524,288" in problem["message"]
    await assert_nothing_stored(api)


async def test_a_lying_content_length_is_refused(api: Api) -> None:
    response = await api.client.post(
        EVENTS,
        content=event(),
        headers={**api.auth(), "content-length": "not-a-number"},
    )
    assert_problem(response, 400)
    await assert_nothing_stored(api)
