"""`/segment`: Segment's HTTP Tracking API over the core, driven through the ASGI app.

Every call type, the three ways to send the write key, gzip, `messageId` dedup, the
clock-skew rule, batches with bad messages, the size limits and the JSON error shape.
"""

from __future__ import annotations

import base64
import gzip
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import orjson
import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio


def basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


async def segment(
    api: Api, call: str, body: Any, headers: dict[str, str] | None = None
) -> httpx.Response:
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return await api.client.post(
        f"/segment/v1/{call}",
        content=content,
        headers={"Content-Type": "application/json", **(headers or {})},
    )


async def events(api: Api, key: str | None = None, **params: str) -> list[dict[str, Any]]:
    response = await api.get("/v1/events", key=key, params={"source": "segment", **params})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body: dict[str, Any] = response.json()
    assert body["code"] == code
    assert isinstance(body["message"], str)
    assert body["message"]
    return body


async def test_each_call_type_becomes_an_event(api: Api) -> None:
    calls: list[tuple[str, dict[str, Any]]] = [
        ("track", {"userId": "u1", "event": "Order Completed", "properties": {"total": 9.5}}),
        ("identify", {"userId": "u1", "traits": {"email": "a@example.com"}}),
        ("page", {"anonymousId": "a-7", "name": "Home", "properties": {"path": "/"}}),
        ("screen", {"userId": "u1", "name": "Settings"}),
        ("group", {"userId": "u1", "groupId": "g1", "traits": {"plan": "pro"}}),
        ("alias", {"userId": "u1", "previousId": "a-7"}),
    ]
    for call, body in calls:
        response = await segment(
            api, call, {**body, "context": {"ip": "10.0.0.1"}}, basic(api.test_key)
        )
        assert response.status_code == 200, response.text
        assert response.json() == {"success": True}
    stored = {e["trigger"]: e for e in await events(api)}
    assert set(stored) == {"order_completed", "identify", "page", "screen", "group", "alias"}
    track = stored["order_completed"]
    assert track["user_id"] == "u1"
    assert track["payload"]["event"] == "Order Completed"
    assert track["payload"]["type"] == "track"
    assert track["payload"]["properties"] == {"total": 9.5}
    assert track["payload"]["context"] == {"ip": "10.0.0.1"}
    assert track["environment"] == "test"
    assert stored["page"]["user_id"] == "anon:a-7"
    assert stored["identify"]["payload"]["traits"] == {"email": "a@example.com"}
    assert stored["group"]["payload"]["groupId"] == "g1"
    assert stored["alias"]["payload"]["previousId"] == "a-7"


async def test_the_write_key_by_basic_bearer_or_body_in_its_environment(api: Api) -> None:
    track = {"userId": "u1", "event": "Signed Up"}
    assert (await segment(api, "track", track, basic(api.live_key))).status_code == 200
    bearer = {"Authorization": f"Bearer {api.test_key}"}
    assert (await segment(api, "track", track, bearer)).status_code == 200
    in_body = {**track, "writeKey": api.test_key}
    assert (await segment(api, "track", in_body)).status_code == 200
    live = await events(api, key=api.live_key)
    test = await events(api)
    assert [e["environment"] for e in live] == ["live"]
    assert [e["environment"] for e in test] == ["test", "test"]
    assert all("writeKey" not in e["payload"] for e in live + test)


async def test_refusals_are_json_with_code_and_message(api: Api) -> None:
    track = {"userId": "u1", "event": "Signed Up"}
    assert_error(await segment(api, "track", track), 401, "unauthenticated")
    assert_error(
        await segment(api, "batch", {"batch": []}, basic("sk_test_nope")), 401, "unauthenticated"
    )
    minted = await api.post("/v1/keys", {"scopes": ["read"], "name": "reader"})
    reader = minted.json()["key"]
    assert_error(await segment(api, "track", track, basic(reader)), 403, "forbidden")
    in_body = {"batch": [{"type": "track", **track}], "writeKey": reader}
    assert_error(await segment(api, "batch", in_body), 403, "forbidden")
    key = basic(api.test_key)
    assert_error(await segment(api, "track", b'{"userId": ', key), 400, "malformed_json")
    assert_error(await segment(api, "track", {"event": "x"}, key), 400, "no_user_anon_id")
    assert_error(await segment(api, "track", {"userId": "u1"}, key), 400, "missing_event")
    assert_error(await segment(api, "batch", {"events": []}, key), 400, "validation_failed")
    assert await events(api) == []


async def test_gzip_bodies_and_a_zip_bomb(api: Api) -> None:
    key = {**basic(api.test_key), "Content-Encoding": "gzip"}
    batch = {"batch": [{"type": "track", "userId": "u1", "event": "Zipped"}]}
    response = await segment(api, "batch", gzip.compress(orjson.dumps(batch)), key)
    assert response.status_code == 200, response.text
    assert [e["trigger"] for e in await events(api)] == ["zipped"]
    # 50 MB of spaces compress to ~50 KB: refused at the limit, never inflated whole.
    bomb = gzip.compress(b'{"batch": [' + b" " * 50_000_000 + b"]}")
    body = assert_error(await segment(api, "batch", bomb, key), 400, "payload_too_large")
    assert "500 KB (512,000 bytes)" in body["message"]
    assert_error(await segment(api, "track", b"not gzip", key), 400, "invalid_request")


async def test_message_id_deduplicates(api: Api) -> None:
    key = basic(api.test_key)
    track = {
        "userId": "u1",
        "event": "Paid",
        "messageId": "m-1",
        "timestamp": "2026-01-01T00:00:00Z",
    }
    first = await segment(api, "track", {**track, "sentAt": "2026-01-01T00:00:01Z"}, key)
    again = await segment(api, "track", {**track, "sentAt": "2026-01-01T00:00:09Z"}, key)
    batch = {"batch": [{**track, "type": "track"}, {**track, "type": "track"}]}
    in_batch = await segment(api, "batch", batch, key)
    assert (first.status_code, again.status_code, in_batch.status_code) == (200, 200, 200)
    stored = await events(api)
    assert len(stored) == 1
    assert stored[0]["idempotency_key"] == "m-1"


async def test_clock_skew_is_corrected_with_sent_at(api: Api) -> None:
    key = basic(api.test_key)
    # A device clock five years slow: sent 60 s after the call, by that clock.
    skewed = {
        "userId": "u1",
        "event": "Skewed",
        "originalTimestamp": "2021-01-01T00:00:00Z",
        "sentAt": "2021-01-01T00:01:00Z",
    }
    before = datetime.now(UTC)
    assert (await segment(api, "track", skewed, key)).status_code == 200
    after = datetime.now(UTC)
    # Without sentAt a timestamp is taken as it is (a historical import).
    past = {"userId": "u1", "event": "Imported", "timestamp": "2020-05-01T12:00:00.250Z"}
    assert (await segment(api, "track", past, key)).status_code == 200
    stored = {e["trigger"]: e for e in await events(api)}
    when = datetime.fromisoformat(stored["skewed"]["timestamp"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=61) <= when <= after - timedelta(seconds=59)
    assert stored["skewed"]["payload"]["originalTimestamp"] == "2021-01-01T00:00:00Z"
    assert "sentAt" not in stored["skewed"]["payload"]
    assert stored["imported"]["timestamp"].startswith("2020-05-01T12:00:00.25")


async def test_a_batch_keeps_its_good_messages_and_drops_the_bad(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    batch = {
        "sentAt": datetime.now(UTC).isoformat(),
        "context": {"library": {"name": "curl"}},
        "batch": [
            {"type": "track", "userId": "u1", "event": "Good One"},
            {"type": "track", "event": "No User"},
            {"type": "launch", "userId": "u1"},
            "not an object",
            {"type": "track", "userId": "u1", "event": "Huge", "properties": {"x": "a" * 40_000}},
            {"type": "identify", "anonymousId": "a-1", "timestamp": "yesterday"},
            {"type": "identify", "userId": "u2", "traits": {"name": "Ann"}},
        ],
    }
    response = await segment(api, "import", batch, basic(api.test_key))
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True}
    stored = await events(api)
    assert sorted(e["trigger"] for e in stored) == ["good_one", "identify"]
    assert all(e["payload"]["context"] == {"library": {"name": "curl"}} for e in stored)
    dropped = [r.getMessage() for r in caplog.records if r.name == "eventyard.adapters.segment"]
    assert [m.split(" dropped ")[0] for m in dropped] == [
        f"segment batch: message {i}" for i in (1, 2, 3, 4, 5)
    ]
    assert "$.batch[5].timestamp" in dropped[-1]


async def test_size_limits_are_stated(api: Api) -> None:
    key = basic(api.test_key)
    big = {"userId": "u1", "event": "Big", "properties": {"x": "a" * 33_000}}
    body = assert_error(await segment(api, "track", big, key), 400, "payload_too_large")
    assert "32 KB (32,768 bytes)" in body["message"]
    message = {"type": "track", "userId": "u1", "event": "E", "properties": {"x": "a" * 20_000}}
    batch = {"batch": [message] * 30}
    body = assert_error(await segment(api, "batch", batch, key), 400, "payload_too_large")
    assert "500 KB (512,000 bytes)" in body["message"]
    assert await events(api) == []
