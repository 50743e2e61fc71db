"""`/reward`: Reward's custom-trigger API, replayed from its document against eventyard.

The document's cURL example as written, its Python snippet run verbatim (through `requests`
against a real HTTP server) with user ids holding every kind of character, its JavaScript
snippet's `encodeURIComponent` encoding, and the refusals: keys, scopes, environments and
malformed bodies, each in Reward's JSON error shape.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import quote

import anyio
import anyio.to_thread
import httpx
import pytest
import uvicorn

from eventyard.api.app import EventyardApp
from tests.conftest import Api

pytestmark = pytest.mark.anyio

HOST = "https://api.rewardplugin.com"

# The document's Python example, character for character; only the host is replaced.
PYTHON_SNIPPET = """
import requests
from urllib.parse import quote

def trigger_event(trigger_id, user_id, payload=None):
    encoded_user_id = quote(user_id)
    url = f"https://api.rewardplugin.com/v1/triggers/{trigger_id}/users/{encoded_user_id}/events"

    headers = {
        "Authorization": f"Bearer {api_key}",
        "Content-Type": "application/json"
    }

    data = payload if payload else {}

    response = requests.post(url, headers=headers, json=data)
    response.raise_for_status()

    return response.json()
"""

USER_IDS = [
    "user123",
    "a/b",  # quote() leaves "/" as it is: the user id spans two path segments
    "/leading",
    "trailing/",
    "a//b",
    "with space",
    "100%",
    "%2F is literal",
    "?query=1&x#fragment",
    "plus+sign",
    "semi;colon,comma:colon@at",
    "quote\"apos'back\\slash",
    "ünïcødé 用户 🎉",
    "<script>alert(1)</script>",
    "events",
    "users/x/events",
    "...dots",
]


def reward_path(trigger: str, user_id: str, *, safe: str = "/") -> str:
    return f"/reward/v1/triggers/{trigger}/users/{quote(user_id, safe=safe)}/events"


async def events(api: Api, key: str | None = None, **filters: str) -> list[dict[str, Any]]:
    listed = await api.client.get(
        "/v1/events", params={"source": "reward", **filters}, headers=api.auth(key)
    )
    assert listed.status_code == 200, listed.text
    data: list[dict[str, Any]] = listed.json()["data"]
    return data


async def test_the_documents_curl_example_stores_an_event_consumers_see(api: Api) -> None:
    consumer = await api.post("/v1/consumers", {"name": "rewards worker", "kind": "pull"})
    assert consumer.status_code == 201, consumer.text
    # curl -X POST '.../v1/triggers/successful_payment/users/user123/events' -H ... -d '...'
    sent = await api.client.post(
        "/reward/v1/triggers/successful_payment/users/user123/events",
        headers={"Authorization": f"Bearer {api.test_key}", "Content-Type": "application/json"},
        content=b'{\n    "value": 19.99\n  }',
    )
    assert sent.status_code == 201, sent.text
    assert sent.headers["content-type"] == "application/json"
    body = sent.json()
    assert body["trigger"] == "successful_payment"
    assert body["user_id"] == "user123"
    assert body["payload"] == {"value": 19.99}
    assert body["source"] == "reward"
    assert body["environment"] == "test"

    [event] = await events(api)
    assert event["id"] == body["id"]
    assert await events(api, key=api.live_key) == []  # a sk_test_ key writes test events
    read = await api.get(f"/v1/events/{body['id']}")
    assert [t["consumer_id"] for t in read.json()["transactions"]] == [consumer.json()["id"]]

    # A sk_live_ key writes a live event; an empty body is the payload {}.
    live = await api.client.post(
        "/reward/v1/triggers/successful_payment/users/user123/events",
        headers={"Authorization": f"Bearer {api.live_key}"},
    )
    assert live.status_code == 201, live.text
    assert live.json()["environment"] == "live"
    assert live.json()["payload"] == {}
    assert [e["id"] for e in await events(api, key=api.live_key)] == [live.json()["id"]]


async def test_the_python_snippet_runs_verbatim_with_every_kind_of_user_id(
    api: Api, app: EventyardApp
) -> None:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    namespace: dict[str, Any] = {"api_key": api.test_key}
    exec(PYTHON_SNIPPET.replace(HOST, f"http://127.0.0.1:{port}/reward"), namespace)
    trigger_event = namespace["trigger_event"]

    async with anyio.create_task_group() as tg:
        tg.start_soon(server.serve, [sock])
        while not server.started:  # noqa: ASYNC110 (uvicorn offers no event to wait on)
            await anyio.sleep(0.01)
        try:
            answers = [
                await anyio.to_thread.run_sync(trigger_event, "successful_payment", user_id)
                for user_id in USER_IDS
            ]
            with_payload = await anyio.to_thread.run_sync(
                trigger_event, "feature_used", "a/b", {"feature": "export", "n": [1, 2]}
            )
        finally:
            server.should_exit = True

    assert [a["user_id"] for a in answers] == USER_IDS
    assert all(a["payload"] == {} and a["source"] == "reward" for a in answers)
    assert with_payload["payload"] == {"feature": "export", "n": [1, 2]}
    for user_id in USER_IDS:  # each reads back exactly through the native API
        [event] = await events(api, user_id=user_id, trigger="successful_payment")
        assert event["user_id"] == user_id

    # The JavaScript snippet encodes with encodeURIComponent: "/" becomes %2F.
    js_safe = "-_.!~*'()"
    for user_id in USER_IDS[:6]:
        sent = await api.post(reward_path("js_event", user_id, safe=js_safe), {"from": "js"})
        assert sent.status_code == 201, sent.text
        assert sent.json()["user_id"] == user_id
    assert len(await events(api, trigger="js_event")) == 6


async def test_refusals_come_in_rewards_json_error_shape(api: Api) -> None:
    path = reward_path("successful_payment", "user123")

    async def post(content: bytes, key: str | None = None, **headers: str) -> httpx.Response:
        auth = {"Authorization": f"Bearer {key}"} if key else {}
        return await api.client.post(path, content=content, headers={**auth, **headers})

    def error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
        assert response.status_code == status, response.text
        assert response.headers["content-type"] == "application/json"
        body: dict[str, Any] = response.json()["error"]
        assert body["code"] == code
        assert body["status"] == status
        assert body["message"]
        return body

    error(await post(b"{}"), 401, "unauthenticated")
    error(await post(b"{}", key="sk_test_" + "x" * 32), 401, "unauthenticated")
    made = await api.post("/v1/keys", {"scopes": ["read"], "name": "reader"})
    error(await post(b"{}", key=made.json()["key"]), 403, "forbidden")

    key = api.test_key
    error(await post(b'{"value": 19.99', key=key), 400, "malformed_json")
    error(await post(b'{"v": "\xff"}', key=key), 400, "malformed_json")
    not_object = error(await post(b"[1, 2]", key=key), 422, "validation_failed")
    assert not_object["errors"] == [
        {"path": "$", "message": "must be a JSON object (the event's payload)"}
    ]
    error(await post(b'{"v": "' + b"x" * 600_000 + b'"}', key=key), 413, "payload_too_large")
    too_big = error(
        await post(b'{"v": "' + b"x" * 40_000 + b'"}', key=key), 413, "payload_too_large"
    )
    assert too_big["errors"][0]["path"] == "$"
    bad_trigger = await api.post(reward_path("Not A Trigger", "u"), {})
    assert error(bad_trigger, 422, "validation_failed")["errors"][0]["path"] == "triggerId"
    long_user = await api.post(reward_path("t", "u" * 300), {})
    assert error(long_user, 422, "validation_failed")["errors"][0]["path"] == "userId"
    bad_path = await api.post("/reward/v1/triggers/t/users/%FF/events", {})
    error(bad_path, 400, "invalid_request")

    await api.client.patch("/v1/project", json={"mode": "strict"}, headers=api.auth())
    error(await post(b"{}", key=key), 404, "trigger_not_found")
    assert await events(api) == []
