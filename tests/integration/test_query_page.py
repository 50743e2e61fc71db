"""GET /v1/events writes its page straight from the rows (`page_json`): the same JSON as
`event_json` of each event, whatever the payload, the times or the optional fields."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from eventyard.api.v1.events import page_json
from eventyard.domain.models import Environment
from eventyard.services.container import Services
from eventyard.store.db import Db
from eventyard.store.event_rows import EVENT_COLUMNS, event_from_row
from eventyard.store.events import EventQuery, query_event_rows, query_events
from eventyard.views import event_json
from tests.conftest import Api

pytestmark = pytest.mark.anyio

PAYLOADS = [
    {},
    {"amount": 19.99, "plan": "pro", "tags": ["a", "b"], "nested": {"deep": [1, None, True]}},
    {"text": 'é ü 漢字 🎉 "quoted" back\\slash \u2028 line\nbreak', "big": 2**62, "neg": -1},
    {"float": 1e-7, "zero": 0, "empty": "", "list": []},
]
TIMES = [
    "2026-03-01T00:00:00Z",  # a whole second: orjson would leave out the fraction
    "2026-03-01T12:34:56.000001Z",
    "1970-01-01T00:00:00.5Z",
    "9999-12-31T23:59:59.999999Z",
    "2026-03-01T23:59:59.999999Z",
]


async def test_the_page_is_event_json_of_each_event(api: Api, services: Services) -> None:
    sent = []
    for i, payload in enumerate(PAYLOADS * 2):
        fields: dict[str, Any] = {"payload": payload, "timestamp": TIMES[i % len(TIMES)]}
        if i % 2:
            fields["idempotency_key"] = f"key-{i}"
        response = await api.send(f"trigger_{i % 3}", f"user-ü-{i}", **fields)
        assert response.status_code == 201, response.text
        sent.append(response.json()["id"])
    # One event with a TTL, as the buildable adapter stores it, and one on a whole second.
    for event_id, expires_at in (
        (sent[0], 4_102_444_800_123_456),
        (sent[1], 4_102_444_800_000_000),
    ):
        await services.store.write(
            lambda db, e=event_id, x=expires_at: db.execute(
                "UPDATE events SET expires_at = ? WHERE id = ?", (x, e)
            )
        )

    response = await api.get("/v1/events", params={"limit": "100"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    body = response.json()

    def read(db: Db) -> list[Any]:
        return db.all(
            f"SELECT {EVENT_COLUMNS} FROM events WHERE project_id = ? AND environment = ?"
            " ORDER BY timestamp DESC, id DESC",
            (api.project_id, "test"),
        )

    rows = await services.store.read(read)
    expected = [orjson.loads(orjson.dumps(event_json(event_from_row(r)))) for r in rows]
    assert body == {"data": expected, "next_cursor": None}
    assert sorted(e["id"] for e in body["data"]) == sorted(sent)
    by_id = {e["id"]: e for e in body["data"]}
    assert by_id[sent[0]]["expires_at"] == "2100-01-01T00:00:00.123456Z"
    assert by_id[sent[1]]["expires_at"] == "2100-01-01T00:00:00.000000Z"
    assert any(e["timestamp"] == "2026-03-01T00:00:00.000000Z" for e in body["data"])
    for event_id in sent:  # and what the one-event route answers
        one = (await api.get(f"/v1/events/{event_id}")).json()
        assert {k: one[k] for k in by_id[event_id]} == by_id[event_id]


async def test_page_json_matches_event_json_for_rows_of_either_backend(
    api: Api, services: Services
) -> None:
    """psycopg's rows come as tuples here, sqlite3's as Rows: both are written alike."""
    for i in range(3):
        await api.send("signup", f"u{i}", timestamp=TIMES[i], payload=PAYLOADS[i])
    query = EventQuery(limit=10)
    env = Environment.TEST
    rows = await services.store.read(lambda db: query_event_rows(db, api.project_id, env, query, 0))
    events = await services.store.read(lambda db: query_events(db, api.project_id, env, query, 0))
    assert len(rows) == 3
    expected = {"data": [event_json(e) for e in events], "next_cursor": "c"}
    assert orjson.loads(page_json(rows, "c")) == orjson.loads(orjson.dumps(expected))


async def test_next_cursor_continues_below_the_last_row(api: Api) -> None:
    for i in range(5):
        await api.send("signup", f"u{i}", timestamp=f"2026-03-01T00:00:0{i}.5Z")
    first = (await api.get("/v1/events", params={"limit": "2"})).json()
    second = (
        await api.get("/v1/events", params={"limit": "2", "cursor": first["next_cursor"]})
    ).json()
    third = (
        await api.get("/v1/events", params={"limit": "2", "cursor": second["next_cursor"]})
    ).json()
    users = [e["user_id"] for page in (first, second, third) for e in page["data"]]
    assert users == ["u4", "u3", "u2", "u1", "u0"]
    assert third["next_cursor"] is None
