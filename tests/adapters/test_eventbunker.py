"""`/eventbunker`: EventBunker's Track Event API, replayed from its document against eventyard.

The document's example body as written is not JSON (a comma is missing after the array):
it gets the documented 400, and the corrected body the documented success. Then the
optional fields, and the document's error table with its exact messages.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from eventyard.services.container import Services
from tests.conftest import Api

pytestmark = pytest.mark.anyio

PATH = "/eventbunker/post"
# The cURL example's --data-raw, character for character (it lacks a comma after the array).
DOC_BODY = """{
"event_name": "my_first_event_name",
"timestamp": "2021-06-26T14:48:00.000",
"customer_identifier": "your_app_customer_id",
"example_string_field": "abc.com",
"example_number_field": 123,
"example_array_field": ["cat", "dog"]
"example_bool_field": true
}"""
FIXED_BODY = DOC_BODY.replace('["cat", "dog"]\n', '["cat", "dog"],\n')
DOC_TIME_MS = int(datetime(2021, 6, 26, 14, 48, tzinfo=UTC).timestamp() * 1000)

INVALID_KEY = "Invalid x-eventbunker-write-key"
NOT_A_WRITE_KEY = "Please use a write key for write requests. Invalid x-eventbunker-write-key"
VALIDATION_FAILED = "Body JSON validation failed."


async def post(api: Api, body: str | bytes, key: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json"}
    if key is not None:
        headers["x-eventbunker-write-key"] = key
    return await api.client.post(PATH, content=body, headers=headers)


def refused(response: httpx.Response, status: int, message: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["message"] == message
    details: str = body["details"]
    assert details
    return details


async def test_the_documents_example_as_written_and_corrected(api: Api) -> None:
    consumer = await api.post("/v1/consumers", {"name": "warehouse", "kind": "pull"})
    assert consumer.status_code == 201, consumer.text

    as_written = await post(api, DOC_BODY, api.test_key)
    assert "not valid JSON" in refused(as_written, 400, VALIDATION_FAILED)

    sent = await post(api, FIXED_BODY, api.test_key)
    assert sent.status_code == 200, sent.text
    answer = sent.json()
    assert set(answer) == {"unique_req_id", "time_recorded"}
    assert len(answer["unique_req_id"]) == 32
    assert int(answer["unique_req_id"], 16) >= 0
    assert answer["unique_req_id"] == answer["unique_req_id"].lower()
    assert answer["time_recorded"] == DOC_TIME_MS  # no zone: UTC

    [event] = (await api.get("/v1/events?source=eventbunker")).json()["data"]
    assert event["trigger"] == "my_first_event_name"
    assert event["user_id"] == "your_app_customer_id"
    assert event["timestamp"].startswith("2021-06-26T14:48:00")
    assert event["environment"] == "test"
    assert event["payload"] == {
        "example_string_field": "abc.com",
        "example_number_field": 123,
        "example_array_field": ["cat", "dog"],
        "example_bool_field": True,
    }
    read = (await api.get(f"/v1/events/{event['id']}")).json()
    assert [t["consumer_id"] for t in read["transactions"]] == [consumer.json()["id"]]
    # The live environment sees nothing of a sk_test_ key's event, and vice versa.
    assert (await api.get("/v1/events", key=api.live_key)).json()["data"] == []
    live = await post(api, FIXED_BODY, api.live_key)
    assert live.status_code == 200, live.text
    assert live.json()["unique_req_id"] != answer["unique_req_id"]
    [live_event] = (await api.get("/v1/events", key=api.live_key)).json()["data"]
    assert live_event["environment"] == "live"


async def test_optional_fields_and_the_error_table(api: Api, services: Services) -> None:
    key = api.test_key
    before = int(time.time() * 1000)
    minimal = await post(api, '{"event_name": "signup", "plan": {"tier": 2}, "coupon": null}', key)
    assert minimal.status_code == 200, minimal.text
    assert before - 1000 <= minimal.json()["time_recorded"] <= int(time.time() * 1000) + 1000
    [event] = (await api.get("/v1/events?trigger=signup")).json()["data"]
    assert event["user_id"] == "anonymous"
    assert event["payload"] == {"plan": {"tier": 2}, "coupon": None}
    epoch = await post(api, '{"event_name": "signup", "timestamp": 1624910874832}', key)
    assert epoch.json()["time_recorded"] == 1624910874832

    # 401: no key, a wrong key; a valid key without the write scope gets the other 401.
    refused(await post(api, FIXED_BODY, None), 401, INVALID_KEY)
    refused(await post(api, FIXED_BODY, "sk_test_" + "x" * 32), 401, INVALID_KEY)
    reader = (await api.post("/v1/keys", {"scopes": ["read"], "name": "query key"})).json()["key"]
    refused(await post(api, FIXED_BODY, reader), 401, NOT_A_WRITE_KEY)

    # 400, with the validation message, for everything wrong with the body.
    cases: list[tuple[str | bytes, str]] = [
        ("", "empty"),
        ("[1]", "body must be a JSON object"),
        (b'{"event_name": "\xff"}', "not valid JSON"),
        ('{"timestamp": "2021-06-26T14:48:00"}', "event_name is required"),
        ('{"event_name": 42}', "event_name must be a string"),
        ('{"event_name": "Not A Name"}', "event_name 'Not A Name' is not a valid trigger id"),
        ('{"event_name": "e", "timestamp": "yesterday"}', "timestamp 'yesterday' is not"),
        ('{"event_name": "e", "customer_identifier": ""}', "customer_identifier must not be"),
        ('{"event_name": "e", "blob": "' + "x" * 40_000 + '"}', "body is 40,"),
        ('{"event_name": "e", "blob": "' + "x" * 600_000 + '"}', "the limit is 524,288 bytes"),
    ]
    for body, says in cases:
        details = refused(await post(api, body, key), 400, VALIDATION_FAILED)
        assert says in details, (body[:60], details)

    await api.client.patch("/v1/project", json={"mode": "strict"}, headers=api.auth())
    strict = refused(await post(api, '{"event_name": "unknown"}', key), 400, VALIDATION_FAILED)
    assert "strict" in strict
    assert len((await api.get("/v1/events?source=eventbunker")).json()["data"]) == 2

    # 500 "Error..." only for a real internal failure.
    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("disk on fire")

    services.ingest.ingest = broken  # type: ignore[method-assign]
    crashed = await post(api, '{"event_name": "signup"}', key)
    assert crashed.status_code == 500
    assert crashed.json()["message"] == "Error..."
    assert "disk on fire" not in crashed.text
