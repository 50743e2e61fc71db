"""Every adapter through its own route, with generated messages: valid and mutated.

For each door (bunce, eventbunker, cdp, reward, segment, cloudevents, buildable), a
generated valid message is stored and readable through GET /v1/events with what was sent;
a mutated one (a field dropped, a field of any JSON type, an extra field, another body
altogether, truncated bytes) never gets a 5xx, and when it is refused it leaves no trace:
the project's newest event is the one before it. Through a real server, on both databases.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.e2e.server import ServerProcess, init_project
from tests.fuzz.conftest import Live
from tests.fuzz.strategies import KEYS, TEXT, USER_IDS, json_values

pytestmark = pytest.mark.fuzz

# What a door's valid message carries, drawn by hypothesis.
NUMBERS = st.integers(min_value=-(10**12), max_value=10**12) | st.floats(
    min_value=-1e12, max_value=1e12, allow_nan=False
)
EMAILS = st.from_regex(r"[a-z0-9._]{1,12}@[a-z0-9]{1,10}\.[a-z]{2,6}", fullmatch=True)


@dataclass(frozen=True)
class Message:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    user: str  # the user id the stored event must carry
    payload: dict[str, Any]  # fields the stored payload must hold


@dataclass(frozen=True)
class Door:
    name: str
    source: str
    accepted: Callable[[httpx.Response], bool]
    build: Callable[[Live, dict[str, str], st.DataObject], Message]


def _basic(user: str, password: str = "") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def _bunce(live: Live, ids: dict[str, str], data: st.DataObject) -> Message:
    email, amount = data.draw(EMAILS), data.draw(NUMBERS)
    return Message(
        "/bunce/v1/events/trigger",
        {"X-Authorization": live.key},
        {"event_id": ids["bunce_uuid"], "payload": {"email": email, "amount": amount}},
        email,
        {"amount": amount},
    )


def _eventbunker(live: Live, ids: dict[str, str], data: st.DataObject) -> Message:
    user = data.draw(USER_IDS)
    fields = data.draw(st.dictionaries(st.from_regex(r"f_[a-z]{1,8}", fullmatch=True), TEXT))
    return Message(
        "/eventbunker/post",
        {"x-eventbunker-write-key": live.key},
        {"event_name": "eb_event", "customer_identifier": user, **fields},
        user,
        fields,
    )


def _cdp(live: Live, ids: dict[str, str], data: st.DataObject) -> Message:
    user, city = data.draw(USER_IDS), data.draw(TEXT)
    return Message(
        ids["cdp_path"],
        _basic("fuzz", live.key),
        {
            "event_name": "cdp_visit",
            "customer_id": user,
            "external_event_id": uuid.uuid4().hex,
            "city": city,
        },
        user,
        {"city": city},
    )


def _reward(live: Live, ids: dict[str, str], data: st.DataObject) -> Message:
    user = data.draw(USER_IDS.filter(lambda u: u not in (".", "..")))
    payload = data.draw(st.dictionaries(KEYS, json_values(10), max_size=5))
    return Message(
        f"/reward/v1/triggers/rw_event/users/{quote(user, safe='')}/events",
        {"Authorization": f"Bearer {live.key}"},
        payload,
        user,
        payload,
    )


def _segment(live: Live, ids: dict[str, str], data: st.DataObject) -> Message:
    user = data.draw(USER_IDS)
    properties = data.draw(st.dictionaries(KEYS, json_values(10), max_size=5))
    body = {
        "userId": user,
        "event": data.draw(st.sampled_from(["Order Completed", "signup", "Café ☕ opened"])),
        "properties": properties,
        "messageId": uuid.uuid4().hex,
    }
    return Message("/segment/v1/track", _basic(live.key), body, user, {})


def _cloudevents(live: Live, ids: dict[str, str], data: st.DataObject) -> Message:
    user = data.draw(USER_IDS)
    payload = data.draw(st.dictionaries(KEYS, json_values(10), max_size=5))
    body = {
        "specversion": "1.0",
        "id": uuid.uuid4().hex,
        "source": "/fuzz",
        "type": "com.example.fuzzed",
        "subject": user,
        "data": payload,
    }
    headers = {"Authorization": f"Bearer {live.key}", "Content-Type": "application/json"}
    return Message("/cloudevents", headers, body, user, payload)


def _buildable(live: Live, ids: dict[str, str], data: st.DataObject) -> Message:
    user = data.draw(USER_IDS)
    fields = data.draw(st.dictionaries(st.from_regex(r"f_[a-z]{1,8}", fullmatch=True), TEXT))
    payload = {"userId": user, **fields}
    return Message(
        "/buildable/emit",
        {"X-Buildable-Secret": live.key},
        {"event": "bd.event", "payload": payload},
        user,
        fields,
    )


def _status(code: int) -> Callable[[httpx.Response], bool]:
    return lambda response: response.status_code == code


DOORS = [
    Door("bunce", "bunce", _status(200), _bunce),
    Door("eventbunker", "eventbunker", _status(200), _eventbunker),
    Door(
        "cdp",
        "cdp",
        lambda r: r.status_code == 200 and r.json()["status"]["code"] == 1100,
        _cdp,
    ),
    Door("reward", "reward", lambda r: r.is_success, _reward),
    Door("segment", "segment", _status(200), _segment),
    Door("cloudevents", "cloudevents", _status(202), _cloudevents),
    Door("buildable", "buildable", _status(200), _buildable),
]


def _required_trigger(live: Live, trigger: str, **types: str) -> dict[str, Any]:
    attributes = [{"name": n, "type": t, "required": True} for n, t in types.items()]
    body = {"id": trigger, "name": trigger, "attributes": attributes}
    made: dict[str, Any] = live.ok(live.http.post("/v1/triggers", json=body))
    return made


@pytest.fixture(scope="module")
def ids(live: Live) -> dict[str, str]:
    """The triggers the doors need: Bunce's by uuid, the CDP's by its webhook path."""
    bunce = _required_trigger(live, "bunce_payment", email="email", amount="number")
    cdp = _required_trigger(
        live,
        "cdp_visit",
        event_name="string",
        customer_id="string",
        external_event_id="string",
        city="string",
    )
    return {"bunce_uuid": bunce["uuid"], "cdp_path": cdp["cdp_webhook_path"]}


def newest(live: Live) -> dict[str, Any] | None:
    page: list[dict[str, Any]] = live.ok(live.http.get("/v1/events", params={"limit": 1}))["data"]
    return page[0] if page else None


def send(live: Live, message: Message, body: bytes | None = None) -> httpx.Response:
    content = json.dumps(message.body).encode() if body is None else body
    headers = {"Content-Type": "application/json", **message.headers}
    return live.http.post(message.path, content=content, headers=headers)


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
@given(data=st.data())
def test_a_valid_message_is_stored_and_readable(
    live: Live, ids: dict[str, str], door: Door, data: st.DataObject
) -> None:
    message = door.build(live, ids, data)
    answer = send(live, message)
    assert door.accepted(answer), f"{answer.status_code} {answer.text}"
    event = newest(live)
    assert event is not None
    assert event["source"] == door.source
    assert event["user_id"] == message.user
    stored = live.ok(live.http.get(f"/v1/events/{event['id']}"))
    for name, value in message.payload.items():
        assert stored["payload"][name] == value, (name, stored["payload"])


def _mutations(message: Message) -> st.SearchStrategy[bytes]:
    body = message.body
    keys = sorted(body) or ["x"]
    as_bytes = json.dumps(body).encode()
    dropped = st.sampled_from(keys).map(lambda k: {n: v for n, v in body.items() if n != k})
    retyped = st.tuples(st.sampled_from(keys), json_values(8)).map(
        lambda kv: {**body, kv[0]: kv[1]}
    )
    extra = st.tuples(KEYS, json_values(8)).map(lambda kv: {**body, kv[0]: kv[1]})
    whole = json_values(20)
    truncated = st.integers(min_value=0, max_value=max(len(as_bytes) - 1, 0)).map(
        lambda n: as_bytes[:n]
    )
    as_json = st.one_of(dropped, retyped, extra, whole).map(lambda v: json.dumps(v).encode())
    return as_json | truncated


@pytest.mark.parametrize("door", DOORS, ids=lambda d: d.name)
@given(data=st.data())
def test_a_mutated_message_is_never_a_5xx_and_a_refusal_leaves_no_trace(
    live: Live, ids: dict[str, str], door: Door, data: st.DataObject
) -> None:
    message = door.build(live, ids, data)
    body = data.draw(_mutations(message))
    before = newest(live)
    answer = send(live, message, body)
    assert answer.status_code < 500, answer.text
    if not door.accepted(answer):
        assert newest(live) == before, answer.text


def test_a_cloudevent_with_non_ascii_data_base64_is_a_400_naming_the_field(
    live: Live,
) -> None:
    """Regression (schemathesis): base64 raised ValueError on non-ASCII text, a 500."""
    before = newest(live)
    answer = live.http.post(
        "/cloudevents",
        json={
            "specversion": "1.0",
            "id": "x",
            "source": "/fuzz",
            "type": "com.example",
            "data_base64": "é\u0017",
        },
    )
    assert answer.status_code == 400, answer.text
    assert [e["path"] for e in answer.json()["errors"]] == ["$.data_base64"]
    assert newest(live) == before


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "TRACE"])
def test_a_wrong_method_at_every_door_is_a_405_naming_post(
    live: Live, ids: dict[str, str], method: str
) -> None:
    """Regression (schemathesis): /eventbunker/post answered a wrong method 400, as if the
    body were bad; a client must see 405 and Allow, as at every other door."""
    paths = [
        "/bunce/v1/events/trigger",
        "/eventbunker/post",
        ids["cdp_path"],
        "/reward/v1/triggers/t/users/u/events",
        "/segment/v1/track",
        "/cloudevents",
        "/buildable/emit",
    ]
    for path in paths:
        answer = live.http.request(method, path)
        assert answer.status_code == 405, (path, answer.text)
        assert answer.headers["allow"] == "POST", path
        assert method in answer.text, path


# Doors that deduplicate by an id of the sender's, and how to make a message they refuse.
DEDUP_BREAKERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "cdp": lambda body: {**body, "city": 7},  # a typed attribute of the wrong type
    "segment": lambda body: {n: v for n, v in body.items() if n != "event"},
    "cloudevents": lambda body: {**body, "specversion": "0.3"},
}


@pytest.mark.parametrize(
    "door", [d for d in DOORS if d.name in DEDUP_BREAKERS], ids=lambda d: d.name
)
@given(data=st.data())
def test_a_refused_message_does_not_take_its_dedup_id(
    live: Live, ids: dict[str, str], door: Door, data: st.DataObject
) -> None:
    message = door.build(live, ids, data)
    before = newest(live)
    broken = DEDUP_BREAKERS[door.name](message.body)
    refused = send(live, message, json.dumps(broken).encode())
    assert 400 <= refused.status_code < 500, refused.text
    assert newest(live) == before
    # The same id with the message fixed is stored, once.
    assert door.accepted(send(live, message))
    stored = newest(live)
    assert stored is not None
    assert stored != before
    assert stored["user_id"] == message.user
    assert door.accepted(send(live, message))
    assert newest(live) == stored


def test_a_rate_limited_key_gets_429_and_retry_after_at_every_door(tmp_path: Path) -> None:
    """EventBunker's door turned every refusal but a key's into its 400 'Body JSON validation
    failed', a 429 too: a client would not wait and retry. Every door keeps the 429."""
    database_url = f"sqlite:///{tmp_path}/eventyard.db"
    key = init_project(database_url, "limited")["keys"]["test"]
    limits = {"EVENTYARD_RATE_LIMIT_PER_SECOND": "0.01", "EVENTYARD_RATE_LIMIT_BURST": "1"}
    server = ServerProcess(database_url, tmp_path / "serve.log", limits, worker=False)
    server.start()
    try:
        doors = {
            "/bunce/v1/events/trigger": {"X-Authorization": key},
            "/eventbunker/post": {"x-eventbunker-write-key": key},
            "/buildable/emit": {"X-Buildable-Secret": key},
            "/cdp/webhooks/" + "0" * 32: _basic("fuzz", key),
            "/reward/v1/triggers/t/users/u/events": {"Authorization": f"Bearer {key}"},
            "/segment/v1/track": _basic(key),
            "/cloudevents": {"Authorization": f"Bearer {key}"},
        }
        with httpx.Client(base_url=server.url, timeout=20) as http:
            http.get("/v1/project", headers={"Authorization": f"Bearer {key}"})  # the burst
            for path, headers in doors.items():
                answer = http.post(path, json={}, headers=headers)
                assert answer.status_code == 429, (path, answer.text)
                assert int(answer.headers["retry-after"]) > 0, path
    finally:
        server.stop()
