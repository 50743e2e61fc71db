"""`/cdp`: the seed document's Post Event example, replayed against a trigger's webhook URL."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio

# The document's attribute table, its CDP types written as eventyard's (Double → number,
# String → string, Enum → enum); every row marked * is required.
BE_RESERVED = {
    "name": "be_reserved",
    "attributes": [
        {"name": "age", "type": "number", "required": True},
        {"name": "customer_id", "type": "string", "required": True},
        {"name": "event_name", "type": "string", "required": True},
        {"name": "external_event_id", "type": "string", "required": True},
        {"name": "hotel_name", "type": "string", "required": True},
        {"name": "room_nights", "type": "enum", "required": True, "values": list(range(1, 31))},
        {"name": "eventDateTime", "type": "string"},
    ],
}

# The document's curl body, byte for byte.
DOC_BODY = """{
"age":20,
"customer_id":"9988776655",
"event_name":"be_reserved",
"external_event_id":"RAND121",
"hotel_name":"Indiranagar",
"room_nights":"12",
"eventDateTime":"2024-04-11 12:00:00"
}"""

DOC_ATTRIBUTES: dict[str, Any] = {
    "age": 20,
    "customer_id": "9988776655",
    "event_name": "be_reserved",
    "external_event_id": "RAND121",
    "hotel_name": "Indiranagar",
    "room_nights": "12",
    "eventDateTime": "2024-04-11 12:00:00",
}


def basic(user: str, password: str | None = None) -> dict[str, str]:
    """As the document's header: base64 of the key alone (no colon), or `user:password`."""
    raw = user if password is None else f"{user}:{password}"
    return {"Authorization": "Basic " + base64.b64encode(raw.encode()).decode()}


async def make_hook(api: Api) -> str:
    made = await api.post("/v1/triggers", BE_RESERVED)
    assert made.status_code == 201, made.text
    path: str = made.json()["cdp_webhook_path"]
    assert path.startswith("/cdp/webhooks/")
    assert len(path.rsplit("/", 1)[1]) == 32
    return path


async def post(
    api: Api, path: str, body: dict[str, Any] | str, headers: dict[str, str] | None = None
) -> httpx.Response:
    content = body if isinstance(body, str) else httpx.Request("POST", "/", json=body).content
    return await api.client.post(
        path,
        content=content,
        headers={"Content-Type": "application/json", **basic(api.test_key), **(headers or {})},
    )


def envelope(response: httpx.Response, status: int, code: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body: dict[str, Any] = response.json()
    assert body["status"]["code"] == code
    assert isinstance(body["status"]["message"], str)
    uuid.UUID(body["requestId"])
    return body


async def test_the_documents_example_is_accepted_and_readable_natively(api: Api) -> None:
    path = await make_hook(api)
    sent = await api.client.post(
        path,
        content=DOC_BODY,
        headers={"Content-Type": "application/json", **basic(api.test_key)},
    )
    body = envelope(sent, 200, 1100)
    assert set(body) == {"status", "requestId"}
    assert body["status"] == {"code": 1100, "message": "Event is pushed to transformation state"}

    listed = (await api.get("/v1/events?source=cdp")).json()["data"]
    assert len(listed) == 1
    event = listed[0]
    assert event["trigger"] == "be_reserved"
    assert event["user_id"] == "9988776655"
    assert event["idempotency_key"] == "RAND121"
    assert event["timestamp"].startswith("2024-04-11T12:00:00")
    assert event["environment"] == "test"
    assert event["payload"]["room_nights"] == 12  # "12" read as the enum's number
    assert event["payload"]["age"] == 20
    assert event["payload"]["hotel_name"] == "Indiranagar"

    # A repeat of the same external_event_id is accepted again, and not stored twice; the key
    # as the password (any user name) and a trailing slash work too.
    again = await post(api, path + "/", DOC_BODY, basic("anyone", api.test_key))
    envelope(again, 200, 1100)
    assert len((await api.get("/v1/events?source=cdp")).json()["data"]) == 1


async def test_refusals_keep_the_envelope_with_their_own_code(api: Api) -> None:
    path = await make_hook(api)

    missing = {k: v for k, v in DOC_ATTRIBUTES.items() if k != "hotel_name"}
    body = envelope(await post(api, path, missing), 422, 1101)
    assert [e["path"] for e in body["errors"]] == ["$.hotel_name"]

    body = envelope(await post(api, path, {**DOC_ATTRIBUTES, "age": "twenty"}), 422, 1101)
    assert [e["path"] for e in body["errors"]] == ["$.age"]

    body = envelope(await post(api, path, {**DOC_ATTRIBUTES, "room_nights": "99"}), 422, 1101)
    assert [e["path"] for e in body["errors"]] == ["$.room_nights"]

    body = envelope(await post(api, path, {**DOC_ATTRIBUTES, "event_name": "other"}), 422, 1101)
    assert [e["path"] for e in body["errors"]] == ["$.event_name"]

    no_id = {k: v for k, v in DOC_ATTRIBUTES.items() if k != "external_event_id"}
    body = envelope(await post(api, path, no_id), 422, 1101)
    assert "$.external_event_id" in [e["path"] for e in body["errors"]]

    envelope(await post(api, path, "{not json"), 400, 1101)
    envelope(await post(api, "/cdp/webhooks/" + "0" * 32, DOC_ATTRIBUTES), 404, 1103)
    envelope(await post(api, "/cdp/webhooks/nope", DOC_ATTRIBUTES), 404, 1103)
    envelope(await post(api, path, DOC_ATTRIBUTES, basic("sk_test_wrong")), 401, 1102)
    envelope(await post(api, path, DOC_ATTRIBUTES, {"Authorization": "Basic !!"}), 401, 1102)
    envelope(
        await post(api, path, DOC_ATTRIBUTES, {"Authorization": f"Bearer {api.test_key}"}),
        401,
        1102,
    )
    made = await api.post("/v1/keys", {"scopes": ["read"]})
    read_only = made.json()["key"]
    envelope(await post(api, path, DOC_ATTRIBUTES, basic(read_only)), 403, 1102)
    # The hook belongs to the test key's project, and the live key sees the same trigger.
    envelope(await post(api, path, DOC_ATTRIBUTES, basic(api.live_key)), 200, 1100)
    assert (await api.get("/v1/events?source=cdp")).json()["data"] == []

    # The same external_event_id for a different event is refused, never overwritten.
    envelope(await post(api, path, DOC_ATTRIBUTES), 200, 1100)
    envelope(await post(api, path, {**DOC_ATTRIBUTES, "age": 21}), 409, 1105)
    events = (await api.get("/v1/events?source=cdp")).json()["data"]
    assert [e["payload"]["age"] for e in events] == [20]
