"""`/cloudevents`: requests made by the `cloudevents` package, in every mode of the binding."""

from __future__ import annotations

import json
import warnings
from typing import Any

import httpx
import pytest

from tests.conftest import Api

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from cloudevents.http import CloudEvent, to_binary, to_structured

pytestmark = [
    pytest.mark.anyio,
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:to_(structured|binary) is deprecated"),
]


def event(data: Any = None, **attributes: Any) -> CloudEvent:
    attrs = {"type": "com.example.order.created", "source": "/shop", **attributes}
    return CloudEvent(attrs, data)


async def send(api: Api, headers: dict[str, str], body: bytes | None) -> httpx.Response:
    return await api.client.post(
        "/cloudevents", content=body or b"", headers={**headers, **api.auth()}
    )


async def events(api: Api) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = (await api.get("/v1/events?source=cloudevents")).json()["data"]
    return listed


async def test_structured_mode_stores_once_per_source_and_id(api: Api) -> None:
    first = event({"order": 7, "total": 12.5}, subject="user-42", id="A-1")
    answer = await send(api, *to_structured(first))
    assert answer.status_code == 202, answer.text
    assert answer.json()["status"] == "accepted"
    event_id = answer.json()["id"]

    # The same source + id again, even with other data, is the same event: not stored twice.
    again = await send(api, *to_structured(first))
    assert again.status_code == 202
    assert again.json() == {"status": "duplicate", "id": event_id}
    changed = event({"order": 8}, subject="user-42", id="A-1", time=first["time"])
    assert (await send(api, *to_structured(changed))).json()["status"] == "duplicate"
    # The same id from another source is another event.
    other = event({"order": 9}, subject="user-42", id="A-1", source="/other-shop")
    assert (await send(api, *to_structured(other))).json()["status"] == "accepted"

    stored = await events(api)
    assert len(stored) == 2
    mine = next(e for e in stored if e["id"] == event_id)
    assert mine["trigger"] == "com.example.order.created"
    assert mine["user_id"] == "user-42"
    assert mine["payload"] == {"order": 7, "total": 12.5}
    assert mine["timestamp"][:19] == first["time"][:19]
    assert mine["idempotency_key"].startswith("ce:")


async def test_binary_mode_with_and_without_a_content_type(api: Api) -> None:
    # The package sends dict data as JSON with no Content-Type.
    headers, body = to_binary(event({"sku": "X1"}, subject="u1", id="b-1"))
    assert "content-type" not in {k.lower() for k in headers}
    assert (await send(api, headers, body)).status_code == 202
    # A text body with its Content-Type; no subject: the source is the user.
    typed = event(b"hello", id="b-2", datacontenttype="text/plain", type="Order Shipped!")
    headers, body = to_binary(typed)
    assert headers["content-type"] == "text/plain"
    answer = await send(api, headers, body)
    assert answer.status_code == 202, answer.text
    # A JSON array as data, with a JSON Content-Type: wrapped.
    listed = event([1, 2], subject="u3", id="b-3", datacontenttype="application/json")
    assert (await send(api, *to_binary(listed))).status_code == 202

    by_key = {
        e["payload"].get("sku") or str(e["payload"].get("data")): e for e in await events(api)
    }
    assert by_key["X1"]["user_id"] == "u1"
    assert by_key["X1"]["trigger"] == "com.example.order.created"
    assert by_key["hello"]["user_id"] == "/shop"
    assert by_key["hello"]["trigger"] == "order_shipped"
    assert by_key["[1, 2]"]["payload"] == {"data": [1, 2]}


async def test_batch_mode_answers_per_event(api: Api) -> None:
    made = await api.post(
        "/v1/triggers",
        {"name": "paid", "attributes": [{"name": "amount", "type": "number", "required": True}]},
    )
    assert made.status_code == 201, made.text
    batch = [
        json.loads(to_structured(e)[1])
        for e in (
            event({"amount": 5}, type="paid", subject="u1", id="p-1"),
            event({"amount": "five"}, type="paid", subject="u1", id="p-2"),
            event(None, subject="u2", id="o-1"),
        )
    ]
    headers = {"content-type": "application/cloudevents-batch+json"}
    answer = await send(api, headers, json.dumps(batch).encode())
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert [r["status"] for r in body["results"]] == ["accepted", "rejected", "accepted"]
    assert body["results"][1]["errors"][0]["path"] == "$[1].data.amount"
    assert (body["accepted"], body["rejected"]) == (2, 1)
    # Resending the whole batch once the bad event is fixed stores only that one.
    batch[1]["data"] = {"amount": 5.5}
    again = await send(api, headers, json.dumps(batch).encode())
    assert again.status_code == 202, again.text
    assert [r["status"] for r in again.json()["results"]] == ["duplicate", "accepted", "duplicate"]
    assert len(await events(api)) == 3


async def test_missing_required_attributes_are_a_400(api: Api, client: httpx.AsyncClient) -> None:
    structured = {"content-type": "application/cloudevents+json"}
    answer = await send(api, structured, json.dumps({"specversion": "1.0", "type": "x"}).encode())
    assert answer.status_code == 400
    assert {e["path"] for e in answer.json()["errors"]} == {"$.id", "$.source"}
    old = {"specversion": "0.3", "id": "1", "source": "/s", "type": "x"}
    answer = await send(api, structured, json.dumps(old).encode())
    assert answer.status_code == 400
    assert [e["path"] for e in answer.json()["errors"]] == ["$.specversion"]

    headers, body = to_binary(event({"a": 1}, id="x-1"))
    headers.pop("ce-type")
    answer = await send(api, headers, body)
    assert answer.status_code == 400
    assert [e["path"] for e in answer.json()["errors"]] == ["ce-type"]

    batch = {"content-type": "application/cloudevents-batch+json"}
    answer = await send(api, batch, json.dumps([old, {"specversion": "1.0"}]).encode())
    assert answer.status_code == 400
    assert len(answer.json()["errors"]) == 4
    assert await events(api) == []

    headers, body = to_structured(event({"a": 1}))
    assert (await client.post("/cloudevents", content=body, headers=headers)).status_code == 401
