"""API keys: shown once, stored hashed, scoped, revocable, confined to their environment."""

from __future__ import annotations

import re

import httpx
import pytest

from eventyard.services.container import Services
from tests.conftest import Api

pytestmark = pytest.mark.anyio

SECRET = re.compile(r"^sk_(live|test)_[A-Za-z0-9]{32}$")


async def make_key(api: Api, scopes: list[str], key: str | None = None, **more: object) -> str:
    made = await api.post("/v1/keys", {"scopes": scopes, **more}, key=key)
    assert made.status_code == 201, made.text
    secret: str = made.json()["key"]
    return secret


async def call(api: Api, method: str, path: str, key: str, **kw: object) -> httpx.Response:
    return await api.client.request(method, path, headers=api.auth(key), **kw)  # type: ignore[arg-type]


async def test_a_new_key_is_shown_once_and_never_listed(api: Api) -> None:
    made = await api.post("/v1/keys", {"name": "ingest box", "scopes": ["write"]})
    assert made.status_code == 201, made.text
    body = made.json()
    secret = body["key"]
    assert SECRET.match(secret)
    assert secret.startswith("sk_test_")
    assert body["environment"] == "test"
    assert body["scopes"] == ["write"]
    assert body["name"] == "ingest box"
    assert body["prefix"] == secret[:12]
    assert body["id"].startswith("key_")

    listed = await api.get("/v1/keys")
    assert listed.status_code == 200
    assert secret not in listed.text
    assert all("key" not in k for k in listed.json()["data"])
    assert body["id"] in [k["id"] for k in listed.json()["data"]]
    one = await api.get(f"/v1/keys/{body['id']}")
    assert one.status_code == 200
    assert secret not in one.text
    assert one.json()["name"] == "ingest box"


async def test_secrets_are_random(api: Api) -> None:
    secrets = {await make_key(api, ["read"]) for _ in range(5)}
    assert len(secrets) == 5
    assert len({s[len("sk_test_") :] for s in secrets}) == 5


async def test_the_database_holds_only_a_hash(api: Api, services: Services) -> None:
    secret = await make_key(api, ["write"])
    assert (await api.send(key=secret)).status_code == 201
    rows = await services.store.read(lambda db: [dict(r) for r in db.all("SELECT * FROM api_keys")])
    assert len(rows) == 3  # the two admin keys of init, and this one
    dump = repr(rows)
    assert secret not in dump
    assert secret[len("sk_test_") :] not in dump
    for init_secret in (api.live_key, api.test_key):
        assert init_secret not in dump
        assert init_secret[len("sk_live_") :] not in dump


async def test_a_write_key_can_send_but_not_read(api: Api) -> None:
    secret = await make_key(api, ["write"])
    assert (await api.send(key=secret)).status_code == 201
    listed = await api.get("/v1/events", key=secret)
    assert listed.status_code == 403
    assert listed.json()["code"] == "forbidden"
    assert "'read'" in listed.json()["message"]
    assert (await api.get("/v1/triggers", key=secret)).status_code == 403
    assert (await api.get("/v1/keys", key=secret)).status_code == 403


async def test_a_read_key_cannot_write(api: Api) -> None:
    secret = await make_key(api, ["read"])
    refused = await api.send(key=secret)
    assert refused.status_code == 403
    assert "'write'" in refused.json()["message"]
    assert (await api.post("/v1/triggers", {"name": "x"}, key=secret)).status_code == 403
    assert (await api.get("/v1/events", key=secret)).json()["data"] == []
    assert (await api.get("/v1/triggers", key=secret)).status_code == 200


async def test_erasing_a_user_needs_the_delete_scope(api: Api) -> None:
    await api.send(user_id="x")
    write_read = await make_key(api, ["write", "read"])
    refused = await call(api, "DELETE", "/v1/users/x", write_read)
    assert refused.status_code == 403
    assert "'delete'" in refused.json()["message"]
    assert len((await api.get("/v1/events")).json()["data"]) == 1

    deleter = await make_key(api, ["delete"])
    erased = await call(api, "DELETE", "/v1/users/x", deleter)
    assert erased.status_code == 200, erased.text
    assert erased.json()["deleted"]["events"] == 1
    assert (await api.get("/v1/events")).json()["data"] == []


async def test_admin_implies_every_scope(api: Api) -> None:
    admin = await make_key(api, ["admin"])
    assert (await api.send(user_id="x", key=admin)).status_code == 201
    assert (await api.get("/v1/events", key=admin)).status_code == 200
    assert (await call(api, "DELETE", "/v1/users/x", admin)).status_code == 200
    assert (await api.get("/v1/keys", key=admin)).status_code == 200


async def test_only_admin_manages_keys(api: Api) -> None:
    everything_else = await make_key(api, ["write", "read", "delete"])
    refused = await api.post("/v1/keys", {"scopes": ["admin"]}, key=everything_else)
    assert refused.status_code == 403
    assert "'admin'" in refused.json()["message"]


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"scopes": ["root"]}, "$.scopes"),
        ({"scopes": []}, "$.scopes"),
        ({}, "$.scopes"),
        ({"scopes": "write"}, "$.scopes"),
        ({"scopes": ["write"], "name": 5}, "$.name"),
        ({"scopes": ["write"], "owner": "me"}, "$.owner"),
    ],
)
async def test_a_bad_key_request_is_422(api: Api, body: dict[str, object], path: str) -> None:
    refused = await api.post("/v1/keys", body)
    assert refused.status_code == 422, refused.text
    assert path in [e["path"] for e in refused.json()["errors"]]
    assert len((await api.get("/v1/keys")).json()["data"]) == 1


async def test_a_revoked_key_fails_on_the_very_next_request(api: Api) -> None:
    made = (await api.post("/v1/keys", {"scopes": ["write", "read"]})).json()
    secret = made["key"]
    assert (await api.get("/v1/events", key=secret)).status_code == 200  # cached as valid now
    revoked = await call(api, "DELETE", f"/v1/keys/{made['id']}", api.test_key)
    assert revoked.status_code == 200
    assert revoked.json()["revoked"] is True
    assert revoked.json()["revoked_at"] is not None

    refused = await api.get("/v1/events", key=secret)
    assert refused.status_code == 401
    assert refused.json()["code"] == "unauthenticated"
    assert "revoked" in refused.json()["message"]
    assert (await api.send(key=secret)).status_code == 401
    listed = {k["id"]: k for k in (await api.get("/v1/keys")).json()["data"]}
    assert listed[made["id"]]["revoked"] is True


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer sk_test_" + "x" * 32, "Basic c2tfdGVzdF86", "sk_test_abc"],
)
async def test_missing_or_unknown_keys_are_401(api: Api, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    refused = await api.client.get("/v1/events", headers=headers)
    assert refused.status_code == 401
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "unauthenticated"


async def test_last_used_at_is_set_after_use(api: Api, services: Services) -> None:
    made = (await api.post("/v1/keys", {"scopes": ["write"]})).json()
    assert made["last_used_at"] is None
    assert (await api.send(key=made["key"])).status_code == 201
    await services.store.write(lambda db: None)  # the stamp is queued on the writer before this
    used = (await api.get(f"/v1/keys/{made['id']}")).json()
    assert used["last_used_at"] is not None
    assert used["last_used_at"] >= made["created_at"]


async def test_a_test_key_cannot_touch_live_keys(api: Api) -> None:
    refused = await api.post("/v1/keys", {"scopes": ["write"], "environment": "live"})
    assert refused.status_code == 422
    assert [e["path"] for e in refused.json()["errors"]] == ["$.environment"]

    live_made = (await api.post("/v1/keys", {"scopes": ["read"]}, key=api.live_key)).json()
    assert live_made["key"].startswith("sk_live_")
    live_id = live_made["id"]

    test_listing = (await api.get("/v1/keys")).json()["data"]
    assert {k["environment"] for k in test_listing} == {"test"}
    assert live_id not in [k["id"] for k in test_listing]
    assert (await api.get(f"/v1/keys/{live_id}")).status_code == 404
    revoke = await call(api, "DELETE", f"/v1/keys/{live_id}", api.test_key)
    assert revoke.status_code == 404
    assert revoke.json()["code"] == "key_not_found"
    assert (await api.get("/v1/events", key=live_made["key"])).status_code == 200

    live_listing = (await api.get("/v1/keys", key=api.live_key)).json()["data"]
    assert {k["environment"] for k in live_listing} == {"live"}
    assert live_id in [k["id"] for k in live_listing]


async def test_keys_belong_to_one_project(api: Api, other_api: Api) -> None:
    mine = (await api.post("/v1/keys", {"scopes": ["read"]})).json()
    assert (await other_api.get(f"/v1/keys/{mine['id']}")).status_code == 404
    assert (
        await call(other_api, "DELETE", f"/v1/keys/{mine['id']}", other_api.test_key)
    ).status_code == 404
    assert mine["id"] not in [k["id"] for k in (await other_api.get("/v1/keys")).json()["data"]]
    assert (await api.get("/v1/events", key=mine["key"])).status_code == 200
