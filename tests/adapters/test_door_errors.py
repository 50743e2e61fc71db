"""Refusals at an adapter's door keep that adapter's shape and name its own key header."""

from __future__ import annotations

import base64
import json

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def test_a_wrong_method_under_an_adapter_prefix_answers_in_its_shape(api: Api) -> None:
    bunce = await api.client.get("/bunce/v1/events/trigger")
    assert bunce.status_code == 405
    assert bunce.json()["success"] is False
    cdp = await api.client.get("/cdp/webhooks/" + "0" * 32)
    assert cdp.status_code == 405
    assert "code" in cdp.json()["status"]
    native = await api.client.get("/v1/nowhere")
    assert native.headers["content-type"] == "application/problem+json"


async def test_a_missing_key_is_told_where_this_door_expects_it(api: Api) -> None:
    eventbunker = await api.client.post("/eventbunker/post", json={"event_name": "x"})
    assert eventbunker.status_code == 401
    assert "x-eventbunker-write-key" in eventbunker.text
    buildable = await api.client.post("/buildable/emit", json={"event": "x", "payload": {}})
    assert buildable.status_code == 401
    assert "X-Buildable-Secret" in buildable.text
    assert "Bearer" not in buildable.text


async def test_invalid_utf8_in_a_cloudevents_header_is_a_400(api: Api) -> None:
    headers = {
        **api.auth(),
        "ce-specversion": "1.0",
        "ce-source": "/s",
        "ce-type": "x.y",
        "ce-id": "q1",
        "ce-subject": "%FF",
        "content-type": "application/json",
    }
    sent = await api.client.post("/cloudevents", content=b"{}", headers=headers)
    assert sent.status_code == 400, sent.text


async def test_data_base64_that_is_not_base64_is_refused(api: Api) -> None:
    event = {"specversion": "1.0", "id": "bb", "source": "/s", "type": "x", "data_base64": "!!!"}
    sent = await api.post(
        "/cloudevents",
        json=None,
        content=json.dumps(event).encode(),
        headers={"content-type": "application/cloudevents+json"},
    )
    assert sent.status_code == 400, sent.text


async def test_distinct_non_ascii_names_stay_distinct_triggers(api: Api) -> None:
    headers = {"X-Buildable-Secret": api.test_key}
    for name in ("注文 完了", "支払い"):
        sent = await api.client.post(
            "/buildable/emit", json={"event": name, "payload": {}}, headers=headers
        )
        assert sent.status_code == 200, sent.text
    triggers = {t["id"] for t in (await api.get("/v1/triggers")).json()["data"]}
    assert len({t for t in triggers if t.startswith("event_")}) == 2
    assert "unnamed" not in triggers


async def test_a_cdp_body_that_is_not_an_object_is_a_400(api: Api) -> None:
    created = await api.post("/v1/triggers", {"name": "be_reserved"}, key=api.test_key)
    path = created.json()["cdp_webhook_path"]
    basic = base64.b64encode(api.test_key.encode()).decode()
    sent = await api.client.post(path, content=b"[]", headers={"Authorization": f"Basic {basic}"})
    assert sent.status_code == 400, sent.text
    assert sent.json()["status"]["code"] == 1101
