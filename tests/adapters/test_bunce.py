"""`/bunce`: Bunce's "Trigger an event", replayed from its document against eventyard.

The document's request as written (its body with the trigger's real uuid), its exact
success body, the event read back natively with a consumer's transaction, and every
refusal in Bunce's shape: 422 with an error object for any parameter, 401 for a bad key.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio

PATH = "/bunce/v1/events/trigger"
DOC_UUID = "9bb6215c-e2b1-4e51-abff-3a96ca185088"
# The cURL example's --data, character for character.
DOC_BODY = """{
    "event_id": "9bb6215c-e2b1-4e51-abff-3a96ca185088",
    "payload": {
        "email": "johndoe@example.com",
        "amount": 10000
    }
}"""
SUCCESS = {"success": True, "data": True, "message": "Event successfully triggered"}


async def make_trigger(api: Api) -> str:
    made = await api.post(
        "/v1/triggers",
        {
            "name": "Payment",
            "attributes": [
                {"name": "email", "type": "email", "required": True},
                {"name": "amount", "type": "number", "required": True},
            ],
        },
    )
    assert made.status_code == 201, made.text
    uuid: str = made.json()["uuid"]
    return uuid


async def trigger(api: Api, body: str | bytes, key: str | None, **headers: str) -> httpx.Response:
    sent = {"Content-Type": "application/json", **headers}
    if key is not None:
        sent["X-Authorization"] = key
    return await api.client.post(PATH, content=body, headers=sent)


def refused(response: httpx.Response, status: int = 422) -> dict[str, list[str]]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert body["success"] is False
    assert body["data"] is None
    assert body["message"]
    error: dict[str, list[str]] = body["error"]
    return error


async def test_the_documents_example_triggers_an_event_consumers_see(api: Api) -> None:
    uuid = await make_trigger(api)
    consumer = await api.post(
        "/v1/consumers", {"name": "bunce flows", "kind": "pull"}, key=api.live_key
    )
    assert consumer.status_code == 201, consumer.text

    sent = await trigger(api, DOC_BODY.replace(DOC_UUID, uuid), api.live_key)
    assert sent.status_code == 200, sent.text
    assert sent.headers["content-type"] == "application/json"
    assert sent.json() == SUCCESS

    listed = await api.client.get("/v1/events?source=bunce", headers=api.auth(api.live_key))
    [event] = listed.json()["data"]
    assert event["trigger"] == "payment"
    assert event["user_id"] == "johndoe@example.com"
    assert event["payload"] == {"email": "johndoe@example.com", "amount": 10000}
    assert event["environment"] == "live"
    read = await api.get(f"/v1/events/{event['id']}", key=api.live_key)
    assert [t["consumer_id"] for t in read.json()["transactions"]] == [consumer.json()["id"]]

    # A sk_test_ key writes a test event through the same door; the uuid may be upper case.
    test_sent = await trigger(api, DOC_BODY.replace(DOC_UUID, uuid.upper()), api.test_key)
    assert test_sent.json() == SUCCESS
    [test_event] = (await api.get("/v1/events?source=bunce")).json()["data"]
    assert test_event["environment"] == "test"
    assert test_event["id"] != event["id"]

    # The document's own uuid names no trigger here: a parameter error.
    error = refused(await trigger(api, DOC_BODY, api.live_key))
    assert list(error) == ["event_id"]
    assert DOC_UUID in error["event_id"][0]


async def test_every_refusal_keeps_bunces_shape(api: Api) -> None:
    uuid = await make_trigger(api)
    key = api.test_key

    def body(**payload: Any) -> str:
        return json.dumps({"event_id": uuid, "payload": payload})

    # Keys: missing, unknown, read-only; "Bearer <key>" is tolerated.
    assert "X-Authorization" in refused(await trigger(api, DOC_BODY, None), 401)
    refused(await trigger(api, DOC_BODY, "sk_live_" + "x" * 32), 401)
    reader = (await api.post("/v1/keys", {"scopes": ["read"], "name": "r"})).json()["key"]
    refused(await trigger(api, DOC_BODY, reader), 403)
    ok = await trigger(api, body(email="a@example.com", amount=1), f"Bearer {key}")
    assert ok.json() == SUCCESS

    # Every parameter error is a 422 naming its field(s).
    cases: list[tuple[str | bytes, set[str]]] = [
        ("{}", {"event_id", "payload"}),
        ('{"event_id": "not-a-uuid", "payload": []}', {"event_id", "payload"}),
        ('{"event_id": 7, "payload": {"amount": 1}}', {"event_id", "payload.email"}),
        (body(email="johndoe@example.com", amount="10000"), {"payload.amount"}),
        (body(email="not an email", amount=1), {"payload.email"}),
        (body(amount=1), {"payload.email"}),
        (body(email="a@example.com"), {"payload.amount"}),
        (body(email="a@example.com", amount=1)[:-1] + ', "extra": 1}', {"extra"}),
        (DOC_BODY[:-2], {"body"}),  # malformed JSON
        ("", {"body"}),
        ("[1, 2]", {"body"}),
        (b'{"event_id": "\xff"}', {"body"}),  # not UTF-8
    ]
    for sent, fields in cases:
        error = refused(await trigger(api, sent, key))
        assert set(error) == fields, (sent, error)
        assert all(isinstance(m, str) for messages in error.values() for m in messages)

    refused(await trigger(api, '{"payload": "' + "x" * 600_000 + '"}', key), 413)
    big = body(email="a@example.com", amount=1, blob="x" * 40_000)
    assert set(refused(await trigger(api, big, key))) == {"payload"}
    archived = await api.client.delete("/v1/triggers/payment", headers=api.auth())
    assert archived.status_code in (200, 204), archived.text
    assert set(refused(await trigger(api, body(email="a@example.com", amount=1), key))) == {
        "event_id"
    }
    [only] = (await api.get("/v1/events?source=bunce")).json()["data"]
    assert only["user_id"] == "a@example.com"
