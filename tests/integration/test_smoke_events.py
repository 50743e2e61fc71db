"""The first thing a user does: send an event and read it back at once."""

from __future__ import annotations

import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def test_event_is_readable_as_soon_as_it_is_acknowledged(api: Api) -> None:
    sent = await api.send("successful_payment", "user123", payload={"value": 19.99})
    assert sent.status_code == 201, sent.text
    event = sent.json()
    assert event["id"].startswith("evt_")
    assert event["payload"] == {"value": 19.99}
    assert event["environment"] == "test"

    listed = await api.get("/v1/events", params={"user_id": "user123"})
    assert listed.status_code == 200
    assert [e["id"] for e in listed.json()["data"]] == [event["id"]]

    one = await api.get(f"/v1/events/{event['id']}")
    assert one.status_code == 200
    assert one.json()["payload"] == {"value": 19.99}
