"""Property tests for trigger schemas and event validation, through a real server and store.

- Any payload a trigger's typed attributes accept is stored and read back equal, and the
  validator the server compiles agrees with the generator about what fits.
- A payload broken in one attribute is refused with a 422 naming that attribute, and leaves
  no trace: no event, no transaction for a consumer of every trigger, and its idempotency key
  is not taken — the same key with the payload fixed is stored once.
- Any JSON object (unicode, nesting, 64-bit integers, floats of every size) is stored and
  read back equal by a trigger without a schema.
- A batch stores exactly its items that fit, answers each item's fate in order, and the
  keys of the refused ones stay free.
- Checking a schema definition never raises on any JSON, and its stored form checks as
  itself.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventyard.domain.schema import compile_schema, normalize_schema
from tests.fuzz.conftest import Live
from tests.fuzz.strategies import (
    USER_IDS,
    attributes,
    broken_payload,
    fitting_payload,
    json_objects,
    json_values,
)

pytestmark = pytest.mark.fuzz


def make_trigger(live: Live, attrs: list[dict[str, Any]] | None, additional: bool = True) -> str:
    trigger = live.unique("t")
    body: dict[str, Any] = {"id": trigger, "name": trigger}
    if attrs is not None:
        body |= {"attributes": attrs, "additional_attributes": additional}
    live.ok(live.http.post("/v1/triggers", json=body))
    return trigger


def read_back(live: Live, event_id: str) -> dict[str, Any]:
    event: dict[str, Any] = live.ok(live.http.get(f"/v1/events/{event_id}"))
    return event


@given(data=st.data())
def test_a_payload_the_attributes_accept_is_stored_and_read_back_equal(
    live: Live, data: st.DataObject
) -> None:
    attrs = data.draw(attributes())
    additional = data.draw(st.booleans())
    payload = data.draw(fitting_payload(attrs))
    normalized, problems = normalize_schema(attrs, None, additional)
    assert problems == []
    assert normalized is not None
    assert compile_schema(normalized)(payload, "$.payload") == []

    trigger = make_trigger(live, attrs, additional)
    user = data.draw(USER_IDS)
    answer = live.http.post(
        "/v1/events", json={"trigger": trigger, "user_id": user, "payload": payload}
    )
    assert answer.status_code == 201, answer.text
    event = read_back(live, answer.json()["id"])
    assert event["payload"] == payload
    assert event["user_id"] == answer.json()["user_id"]
    assert [e["id"] for e in live.events(trigger)] == [event["id"]]


@given(data=st.data())
def test_a_refused_payload_leaves_no_trace_and_its_key_stays_free(
    live: Live, data: st.DataObject
) -> None:
    attrs = data.draw(attributes())
    good, bad, broken = data.draw(broken_payload(attrs))
    trigger = make_trigger(live, attrs, additional=True)
    consumer = live.ok(
        live.http.post("/v1/consumers", json={"kind": "pull", "name": "c", "triggers": [trigger]})
    )["id"]
    key = live.unique("idem-")
    event = {"trigger": trigger, "user_id": "u", "idempotency_key": key}

    refused = live.http.post("/v1/events", json={**event, "payload": bad})
    assert refused.status_code == 422, refused.text
    paths = [e["path"] for e in refused.json()["errors"]]
    assert any(path.startswith("$.payload") and broken in path for path in paths), paths
    assert live.events(trigger) == []
    pending = live.ok(live.http.get(f"/v1/consumers/{consumer}/transactions"))["data"]
    assert pending == []

    stored = live.http.post("/v1/events", json={**event, "payload": good})
    assert stored.status_code == 201, stored.text
    assert [e["payload"] for e in live.events(trigger)] == [good]
    pending = live.ok(live.http.get(f"/v1/consumers/{consumer}/transactions"))["data"]
    assert [t["event_id"] for t in pending] == [stored.json()["id"]]
    live.ok(live.http.delete(f"/v1/consumers/{consumer}"))


@given(payload=json_objects())
def test_any_json_object_is_stored_and_read_back_equal(live: Live, payload: dict[str, Any]) -> None:
    trigger = live.__dict__.setdefault("free_trigger", make_trigger(live, None))
    answer = live.http.post(
        "/v1/events", json={"trigger": trigger, "user_id": "u", "payload": payload}
    )
    assert answer.status_code == 201, answer.text
    assert read_back(live, answer.json()["id"])["payload"] == payload


@given(attrs=json_values(), json_schema=json_values(), additional=json_values(3))
def test_checking_a_schema_never_raises_and_its_stored_form_is_stable(
    attrs: Any, json_schema: Any, additional: Any
) -> None:
    for given_attrs, given_schema in ((attrs, None), (None, json_schema), (attrs, json_schema)):
        normalized, problems = normalize_schema(given_attrs, given_schema, additional)
        assert (normalized is None) == bool(problems) or (normalized, problems) == (None, [])
        if normalized is None:
            continue
        again = normalize_schema(
            normalized.get("attributes"),
            normalized.get("json_schema"),
            normalized.get("additional_attributes"),
        )
        assert again == (normalized, [])
        compile_schema(normalized)({}, "$.payload")


@given(data=st.data())
def test_the_attribute_generator_and_the_validator_agree(data: st.DataObject) -> None:
    attrs = data.draw(attributes())
    normalized, _ = normalize_schema(attrs, None, True)
    assert normalized is not None
    validate = compile_schema(normalized)
    good, bad, broken = data.draw(broken_payload(attrs))
    assert validate(good, "$.payload") == []
    errors = validate(bad, "$.payload")
    assert errors
    assert all(broken in e.path for e in errors), errors


@given(data=st.data())
def test_a_batch_stores_exactly_the_items_that_fit_and_frees_the_keys_of_the_rest(
    live: Live, data: st.DataObject
) -> None:
    attrs = data.draw(attributes())
    trigger = make_trigger(live, attrs, additional=True)
    pairs = data.draw(st.lists(broken_payload(attrs), min_size=1, max_size=8))
    fits = data.draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs)))
    keys = [live.unique("batch-") for _ in pairs]
    items = [
        {
            "trigger": trigger,
            "user_id": f"u{i}",
            "idempotency_key": key,
            "payload": p[0 if ok else 1],
        }
        for i, (p, ok, key) in enumerate(zip(pairs, fits, keys, strict=True))
    ]
    answer = live.ok(live.http.post("/v1/events/batch", json={"events": items}))
    statuses = [r["status"] for r in answer["results"]]
    assert statuses == ["accepted" if ok else "rejected" for ok in fits]
    assert answer["accepted"] == sum(fits)
    stored = {e["idempotency_key"]: e["payload"] for e in live.events(trigger)}
    assert stored == {key: p[0] for p, ok, key in zip(pairs, fits, keys, strict=True) if ok}

    # The refused items' keys are free: the same items, fixed, are stored now.
    fixed = [{**item, "payload": p[0]} for item, p in zip(items, pairs, strict=True)]
    again = live.ok(live.http.post("/v1/events/batch", json={"events": fixed}))
    assert [r["status"] for r in again["results"]] == [
        "duplicate" if ok else "accepted" for ok in fits
    ]
    assert len(live.events(trigger)) == len(items)
