"""Triggers: ids made from names, typed and JSON Schema payload rules, updates, archiving."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio


async def patch(api: Api, path: str, body: object) -> httpx.Response:
    return await api.client.patch(path, json=body, headers=api.auth())


async def delete(api: Api, path: str) -> httpx.Response:
    return await api.client.delete(path, headers=api.auth())


async def create(api: Api, **body: Any) -> httpx.Response:
    return await api.post("/v1/triggers", body)


def paths(response: httpx.Response) -> list[str]:
    return [e["path"] for e in response.json().get("errors", [])]


# --- ids ---------------------------------------------------------------------------------


async def test_the_id_is_made_from_the_name(api: Api) -> None:
    made = await create(api, name="Successful Payment!")
    assert made.status_code == 201, made.text
    trigger = made.json()
    assert trigger["id"] == "successful_payment"
    assert trigger["name"] == "Successful Payment!"
    assert trigger["type"] == "custom"
    assert trigger["archived"] is False

    read = await api.get("/v1/triggers/successful_payment")
    assert read.status_code == 200
    assert read.json()["uuid"] == trigger["uuid"]


async def test_an_explicit_id_is_kept(api: Api) -> None:
    made = await create(api, name="Payment", id="pay.v2-final")
    assert made.status_code == 201, made.text
    assert made.json()["id"] == "pay.v2-final"
    assert (await api.get("/v1/triggers/pay.v2-final")).status_code == 200
    assert (await api.get("/v1/triggers/payment")).status_code == 404


@pytest.mark.parametrize("bad_id", ["Has Caps", "", "-leading", "a/b", "x" * 129, "signup\n", 42])
async def test_an_invalid_id_is_refused_at_its_path(api: Api, bad_id: object) -> None:
    made = await create(api, name="Payment", id=bad_id)
    assert made.status_code == 422, made.text
    assert made.headers["content-type"] == "application/problem+json"
    assert paths(made) == ["$.id"]
    assert (await api.get("/v1/triggers")).json()["data"] == []


async def test_a_taken_id_is_a_conflict(api: Api) -> None:
    assert (await create(api, name="Signup")).status_code == 201
    again = await create(api, name="Sign-up", id="signup")
    assert again.status_code == 409
    assert again.json()["code"] == "trigger_exists"
    assert paths(again) == ["$.id"]
    same_name = await create(api, name="Signup")
    assert same_name.status_code == 409
    assert (await api.get("/v1/triggers/signup")).json()["name"] == "Signup"


async def test_a_name_is_required(api: Api) -> None:
    made = await create(api, id="nameless")
    assert made.status_code == 422
    assert "$.name" in paths(made)


async def test_the_uuid_survives_updates(api: Api) -> None:
    uuid = (await create(api, name="Signup")).json()["uuid"]
    changed = await patch(api, "/v1/triggers/signup", {"name": "New name", "label": "growth"})
    assert changed.status_code == 200, changed.text
    assert changed.json()["uuid"] == uuid
    assert changed.json()["label"] == "growth"
    await delete(api, "/v1/triggers/signup")
    restored = await patch(api, "/v1/triggers/signup", {"archived": False})
    assert restored.json()["uuid"] == uuid
    assert (await api.get("/v1/triggers/signup")).json()["name"] == "New name"


# --- typed attributes ---------------------------------------------------------------------

ALL_TYPES = [
    {"name": "title", "type": "string", "required": True},
    {"name": "amount", "type": "number", "required": True},
    {"name": "count", "type": "integer", "required": False},
    {"name": "first", "type": "boolean", "required": False},
    {"name": "plan", "type": "enum", "required": True, "values": ["free", "pro", 3]},
    {"name": "paid_at", "type": "datetime", "required": False},
    {"name": "email", "type": "email", "required": False, "description": "billing"},
    {"name": "items", "type": "array", "required": False},
    {"name": "meta", "type": "object", "required": False},
]
GOOD_PAYLOAD = {
    "title": "t",
    "amount": 19.99,
    "count": 3,
    "first": False,
    "plan": "pro",
    "paid_at": "2026-11-23T10:00:00Z",
    "email": "a@b.example",
    "items": [1, "two"],
    "meta": {"k": "v"},
}


async def test_every_attribute_type_round_trips(api: Api) -> None:
    made = await create(api, name="Payment", attributes=ALL_TYPES)
    assert made.status_code == 201, made.text
    assert made.json()["attributes"] == ALL_TYPES
    assert made.json()["additional_attributes"] is True
    assert made.json()["json_schema"] is None
    assert (await api.get("/v1/triggers/payment")).json()["attributes"] == ALL_TYPES
    ok = await api.send("payment", payload=GOOD_PAYLOAD)
    assert ok.status_code == 201, ok.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title", 5),
        ("amount", "19.99"),
        ("amount", True),
        ("count", 2.5),
        ("first", "yes"),
        ("plan", "enterprise"),
        ("paid_at", "yesterday"),
        ("email", "not-an-email"),
        ("items", {"a": 1}),
        ("meta", [1]),
    ],
)
async def test_each_type_refuses_a_wrong_value_at_its_path(
    api: Api, field: str, value: object
) -> None:
    await create(api, name="Payment", attributes=ALL_TYPES)
    sent = await api.send("payment", payload={**GOOD_PAYLOAD, field: value})
    assert sent.status_code == 422, sent.text
    assert paths(sent) == [f"$.payload.{field}"]
    assert (await api.get("/v1/events")).json()["data"] == []


async def test_missing_required_attributes_are_each_named(api: Api) -> None:
    await create(api, name="Payment", attributes=ALL_TYPES)
    sent = await api.send("payment", payload={"count": 1})
    assert sent.status_code == 422
    assert sorted(paths(sent)) == ["$.payload.amount", "$.payload.plan", "$.payload.title"]


@pytest.mark.parametrize(
    ("attributes", "path"),
    [
        ([{"name": "a", "type": "strng"}], "$.attributes[0].type"),
        ([{"name": "a", "type": "string"}, {"type": "string"}], "$.attributes[1].name"),
        ([{"name": "a", "type": "enum"}], "$.attributes[0].values"),
        ([{"name": "a", "type": "enum", "values": []}], "$.attributes[0].values"),
        ([{"name": "a", "type": "string", "values": ["x"]}], "$.attributes[0].values"),
        ([{"name": "a", "type": "string", "required": "yes"}], "$.attributes[0].required"),
        (
            [{"name": "a", "type": "string"}, {"name": "a", "type": "number"}],
            "$.attributes[1].name",
        ),
        ([{"name": "a", "type": "string", "colour": "red"}], "$.attributes[0].colour"),
        (["a"], "$.attributes[0]"),
        ({"a": "string"}, "$.attributes"),
    ],
)
async def test_a_bad_attribute_definition_names_its_path(
    api: Api, attributes: object, path: str
) -> None:
    made = await create(api, name="Payment", attributes=attributes)
    assert made.status_code == 422, made.text
    assert paths(made) == [path]
    assert (await api.get("/v1/triggers/payment")).status_code == 404


async def test_additional_attributes_false_refuses_unknown_fields(api: Api) -> None:
    attributes = [{"name": "amount", "type": "number", "required": True}]
    made = await create(api, name="Strict", attributes=attributes, additional_attributes=False)
    assert made.json()["additional_attributes"] is False
    sent = await api.send("strict", payload={"amount": 1, "coupon": "X"})
    assert sent.status_code == 422
    assert paths(sent) == ["$.payload.coupon"]
    assert (await api.send("strict", payload={"amount": 1})).status_code == 201


async def test_additional_attributes_alone_is_refused(api: Api) -> None:
    made = await create(api, name="Loose", additional_attributes=False)
    assert made.status_code == 422
    assert paths(made) == ["$.additional_attributes"]


# --- raw JSON Schema ------------------------------------------------------------------------

ORDER_SCHEMA = {
    "type": "object",
    "required": ["items"],
    "properties": {
        "items": {
            "type": "array",
            "items": {"type": "object", "required": ["sku"], "properties": {"sku": {}}},
        }
    },
}


async def test_a_json_schema_is_stored_and_enforced(api: Api) -> None:
    made = await create(api, name="Order", json_schema=ORDER_SCHEMA)
    assert made.status_code == 201, made.text
    assert made.json()["json_schema"] == ORDER_SCHEMA
    assert made.json()["attributes"] is None
    bad = await api.send("order", payload={"items": [{"qty": 1}]})
    assert bad.status_code == 422
    assert paths(bad) == ["$.payload.items[0]"]
    assert "sku" in bad.json()["errors"][0]["message"]
    missing = await api.send("order", payload={})
    assert paths(missing) == ["$.payload"]
    assert (await api.send("order", payload={"items": [{"sku": "A1"}]})).status_code == 201


@pytest.mark.parametrize(
    ("schema", "path"),
    [
        ({"type": "objekt"}, "$.json_schema.type"),
        ({"properties": {"a": {"minimum": "zero"}}}, "$.json_schema.properties.a.minimum"),
        ([], "$.json_schema"),
    ],
)
async def test_an_invalid_json_schema_is_refused(api: Api, schema: object, path: str) -> None:
    made = await create(api, name="Order", json_schema=schema)
    assert made.status_code == 422, made.text
    assert paths(made) == [path]


async def test_attributes_and_json_schema_together_are_refused(api: Api) -> None:
    made = await create(
        api, name="Order", attributes=[{"name": "a", "type": "string"}], json_schema={}
    )
    assert made.status_code == 422
    assert paths(made) == ["$.json_schema"]


# --- updates take effect on the next event ------------------------------------------------


async def test_a_schema_change_applies_to_the_very_next_event(api: Api) -> None:
    await create(api, name="Payment", attributes=[{"name": "amount", "type": "number"}])
    assert (await api.send("payment", payload={"amount": 1})).status_code == 201  # cached now
    changed = await patch(
        api, "/v1/triggers/payment", {"attributes": [{"name": "amount", "type": "string"}]}
    )
    assert changed.status_code == 200, changed.text
    refused = await api.send("payment", payload={"amount": 1})
    assert refused.status_code == 422
    assert paths(refused) == ["$.payload.amount"]
    assert (await api.send("payment", payload={"amount": "1"})).status_code == 201

    to_schema = await patch(api, "/v1/triggers/payment", {"json_schema": ORDER_SCHEMA})
    assert to_schema.json()["attributes"] is None
    assert (await api.send("payment", payload={"amount": "1"})).status_code == 422
    cleared = await patch(api, "/v1/triggers/payment", {"json_schema": None})
    assert cleared.json()["json_schema"] is None
    assert (await api.send("payment", payload={"anything": True})).status_code == 201


async def test_a_bad_update_changes_nothing(api: Api) -> None:
    await create(api, name="Payment", attributes=[{"name": "amount", "type": "number"}])
    bad = await patch(
        api, "/v1/triggers/payment", {"name": "", "attributes": [{"name": "x", "type": "?"}]}
    )
    assert bad.status_code == 422
    assert sorted(paths(bad)) == ["$.attributes[0].type", "$.name"]
    unknown = await patch(api, "/v1/triggers/payment", {"id": "renamed"})
    assert unknown.status_code == 422
    assert paths(unknown) == ["$.id"]
    now = (await api.get("/v1/triggers/payment")).json()
    assert now["name"] == "Payment"
    assert now["attributes"] == [{"name": "amount", "type": "number", "required": False}]


async def test_updating_a_missing_trigger_is_404(api: Api) -> None:
    missing = await patch(api, "/v1/triggers/nope", {"name": "x"})
    assert missing.status_code == 404
    assert missing.json()["code"] == "trigger_not_found"
    assert (await delete(api, "/v1/triggers/nope")).status_code == 404


# --- archiving ----------------------------------------------------------------------------


async def test_delete_archives_and_patch_restores(api: Api) -> None:
    await create(api, name="Signup")
    await create(api, name="Login")
    archived = await delete(api, "/v1/triggers/signup")
    assert archived.status_code == 200
    assert archived.json()["archived"] is True
    assert archived.json()["archived_at"] is not None

    listed = await api.get("/v1/triggers")
    assert [t["id"] for t in listed.json()["data"]] == ["login"]
    everything = await api.get("/v1/triggers", params={"archived": "true"})
    assert sorted(t["id"] for t in everything.json()["data"]) == ["login", "signup"]
    assert (await api.get("/v1/triggers/signup")).json()["archived"] is True

    refused = await api.send("signup")
    assert refused.status_code == 409
    assert refused.json()["code"] == "trigger_archived"

    restored = await patch(api, "/v1/triggers/signup", {"archived": False})
    assert restored.status_code == 200
    assert restored.json()["archived"] is False
    assert restored.json()["archived_at"] is None
    listed = await api.get("/v1/triggers")
    assert sorted(t["id"] for t in listed.json()["data"]) == ["login", "signup"]
    assert (await api.send("signup")).status_code == 201


async def test_a_bad_archived_filter_is_400(api: Api) -> None:
    bad = await api.get("/v1/triggers", params={"archived": "maybe"})
    assert bad.status_code == 400
    assert "archived" in bad.json()["message"]


# --- per project -------------------------------------------------------------------------


async def test_triggers_belong_to_one_project(api: Api, other_api: Api) -> None:
    await create(api, name="Signup", json_schema={"type": "object", "required": ["plan"]})
    assert (await other_api.get("/v1/triggers/signup")).status_code == 404
    assert (await other_api.get("/v1/triggers")).json()["data"] == []
    assert (await patch(other_api, "/v1/triggers/signup", {"name": "x"})).status_code == 404
    assert (await delete(other_api, "/v1/triggers/signup")).status_code == 404
    # The other project may use the same id for its own trigger, with its own rules.
    assert (await create(other_api, name="Signup")).status_code == 201
    assert (await other_api.send("signup", payload={})).status_code == 201
    assert (await api.send("signup", payload={})).status_code == 422
    mine = (await api.get("/v1/triggers/signup")).json()
    assert mine["name"] == "Signup"
    assert mine["archived"] is False
    assert mine["json_schema"] == {"type": "object", "required": ["plan"]}


async def test_triggers_are_shared_by_both_environments(api: Api) -> None:
    await create(api, name="Signup")
    seen_live = await api.get("/v1/triggers/signup", key=api.live_key)
    assert seen_live.status_code == 200
    assert seen_live.json()["name"] == "Signup"


async def test_patch_keeps_the_parts_of_the_schema_it_does_not_name(api: Api) -> None:
    attributes = [{"name": "amount", "type": "number", "required": True}]
    await create(api, name="Payment", attributes=attributes, additional_attributes=False)
    renamed = await patch(
        api, "/v1/triggers/payment", {"attributes": [{"name": "total", "type": "number"}]}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["additional_attributes"] is False
    assert (await api.send("payment", payload={"total": 1, "extra": 1})).status_code == 422

    opened = await patch(api, "/v1/triggers/payment", {"additional_attributes": True})
    assert opened.status_code == 200, opened.text
    assert opened.json()["attributes"] == [{"name": "total", "type": "number", "required": False}]
    assert (await api.send("payment", payload={"total": 1, "extra": 1})).status_code == 201
