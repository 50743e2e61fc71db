"""Bad requests around the body: keys, scopes, routes, methods and URL parameters.

Every answer is a 4xx problem+json, never a 5xx, and an event sent with a bad key is not
stored.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.conftest import Api

pytestmark = pytest.mark.anyio

GOOD_EVENT = {"trigger": "signup", "user_id": "u1"}
WRITE_ROUTES = [
    ("/v1/events", GOOD_EVENT),
    ("/v1/events/batch", {"events": [GOOD_EVENT]}),
    ("/v1/triggers/signup/users/u1/events", {}),
]


def assert_problem(response: httpx.Response, status: int, code: str | None = None) -> Any:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == status
    assert problem["code"]
    assert problem["message"]
    if code is not None:
        assert problem["code"] == code
    return problem


async def assert_nothing_stored(api: Api) -> None:
    for key in (api.test_key, api.live_key):
        listed = await api.get("/v1/events", key=key)
        assert listed.status_code == 200
        assert listed.json()["data"] == []
    assert (await api.get("/v1/triggers")).json()["data"] == []


async def mint(api: Api, scopes: list[str]) -> dict[str, Any]:
    response = await api.post("/v1/keys", {"scopes": scopes, "name": "limited"})
    assert response.status_code == 201, response.text
    key: dict[str, Any] = response.json()
    return key


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token sk_test_abc",
        "sk_test_abc",
        "Bearer sk_test_unknown",
        "Bearer sk_live_" + "0" * 43,
        "Bearer " + "x" * 10_000,
        "Bearer sk_test_é".encode(),
    ],
    ids=[
        "missing", "empty", "scheme-only", "scheme-space", "basic", "token", "no-scheme",
        "unknown", "unknown-live", "huge", "non-ascii",
    ],
)  # fmt: skip
@pytest.mark.parametrize(("path", "body"), WRITE_ROUTES, ids=["events", "batch", "path"])
async def test_a_missing_malformed_or_unknown_key_is_401(
    api: Api, authorization: str | bytes | None, path: str, body: object
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    response = await api.client.post(path, json=body, headers=headers)
    assert_problem(response, 401, "unauthenticated")
    await assert_nothing_stored(api)


async def test_a_revoked_key_is_401(api: Api) -> None:
    key = await mint(api, ["write", "read"])
    assert (await api.send("signup", "u0", key=key["key"])).status_code == 201
    revoked = await api.client.delete(f"/v1/keys/{key['id']}", headers=api.auth())
    assert revoked.status_code == 200, revoked.text
    for path, body in WRITE_ROUTES:
        response = await api.post(path, body, key=key["key"])
        assert_problem(response, 401, "unauthenticated")
        assert "revoked" in response.json()["message"]
    assert_problem(await api.get("/v1/events", key=key["key"]), 401)
    assert [e["user_id"] for e in (await api.get("/v1/events")).json()["data"]] == ["u0"]


@pytest.mark.parametrize(("path", "body"), WRITE_ROUTES, ids=["events", "batch", "path"])
async def test_a_read_only_key_cannot_write(api: Api, path: str, body: object) -> None:
    key = await mint(api, ["read"])
    response = await api.post(path, body, key=key["key"])
    problem = assert_problem(response, 403, "forbidden")
    assert "write" in problem["message"]
    assert (await api.get("/v1/events", key=key["key"])).status_code == 200
    await assert_nothing_stored(api)


async def test_a_write_only_key_cannot_read_or_erase(api: Api) -> None:
    key = await mint(api, ["write"])
    sent = await api.send("signup", "u1", key=key["key"])
    assert sent.status_code == 201
    assert_problem(await api.get("/v1/events", key=key["key"]), 403, "forbidden")
    assert_problem(await api.get(f"/v1/events/{sent.json()['id']}", key=key["key"]), 403)
    erase = await api.client.delete("/v1/users/u1", headers=api.auth(key["key"]))
    assert_problem(erase, 403, "forbidden")
    assert len((await api.get("/v1/events")).json()["data"]) == 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v1/event"),
        ("POST", "/v2/events"),
        ("GET", "/v1/events/abc/def"),
        ("POST", "/v1/triggers/signup/users//events"),
        ("POST", "/v1/triggers/signup/users/u1"),
        ("GET", "/"),
    ],
)
async def test_an_unknown_route_is_404(api: Api, method: str, path: str) -> None:
    response = await api.client.request(method, path, headers=api.auth())
    assert_problem(response, 404, "not_found")
    await assert_nothing_stored(api)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/v1/events", {"GET", "POST"}),
        ("DELETE", "/v1/events", {"GET", "POST"}),
        ("PATCH", "/v1/events/evt_x", {"GET"}),
        ("GET", "/v1/triggers/signup/users/u1/events", {"POST"}),
        ("GET", "/v1/users/u1", {"DELETE"}),
        # A literal path answers for itself, not for the template it also fits
        # (/v1/events/{event_id} takes GET).
        ("OPTIONS", "/v1/events/batch", {"POST"}),
    ],
)
async def test_a_wrong_method_is_405_with_allow(
    api: Api, method: str, path: str, allowed: set[str]
) -> None:
    response = await api.client.request(method, path, headers=api.auth(), json=GOOD_EVENT)
    assert_problem(response, 405, "method_not_allowed")
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed
    await assert_nothing_stored(api)


@pytest.mark.parametrize(
    ("method", "url"),
    [
        ("GET", "/v1/events/%00"),
        ("GET", "/v1/events/%FF"),
        ("GET", "/v1/events?user_id=%00"),
        ("GET", "/v1/events?trigger=a%00"),
        ("GET", "/v1/events?source=%00"),
        ("GET", "/v1/events?user_id=%FF"),
        ("GET", "/v1/events?since=%00"),
        ("GET", "/v1/triggers/%00"),
        ("DELETE", "/v1/users/%00"),
        ("DELETE", "/v1/users/%FF"),
        ("DELETE", "/v1/keys/%00"),
    ],
)
async def test_nul_or_bad_utf8_in_the_url_is_400(api: Api, method: str, url: str) -> None:
    response = await api.client.request(method, url, headers=api.auth())
    problem = assert_problem(response, 400, "invalid_request")
    assert "NUL" in problem["message"] or "UTF-8" in problem["message"]


async def test_a_body_the_document_calls_optional_may_be_left_out_and_a_required_one_not(
    api: Api,
) -> None:
    spec = (await api.client.get("/openapi.json")).json()

    def required(path: str) -> bool:
        return bool(spec["paths"][path]["post"]["requestBody"]["required"])

    await api.client.post("/v1/triggers", headers=api.auth(), json={"id": "signup"})
    assert not required("/v1/triggers/{trigger_id}/users/{user_id}/events")
    sent = await api.client.post("/v1/triggers/signup/users/u1/events", headers=api.auth())
    assert sent.status_code == 201, sent.text

    assert required("/v1/events")
    refused = await api.client.post("/v1/events", headers=api.auth())
    assert_problem(refused, 400, "malformed_json")
