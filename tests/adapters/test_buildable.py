"""The `/buildable` adapter: the document's requests as written, and the objects it promises.

Seed: ../shared/seeds/002_ffc43582f118b5e3.txt. Each request is sent with the document's
headers and body (host changed, a real key in `X-Buildable-Secret`), and each answer is
checked field for field against the document's object.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
import orjson
import pytest

from eventyard.api.adapters.buildable_shapes import event_id_from_key, event_key
from eventyard.ids import new_id
from tests.conftest import Api

pytestmark = pytest.mark.anyio

HEX32 = re.compile(r"^[0-9a-f]{32}$")
EVENT_FIELDS = {
    "_id", "key", "eventName", "environment", "payload", "query", "headers", "createdAt",
    "state", "history", "ttl", "v", "ownership", "processing",
}  # fmt: skip
TXN_FIELDS = {
    "_id", "key", "txn", "event", "createdAt", "ttl", "state", "history", "startedAt", "txKey",
    "endedAt",
}  # fmt: skip
HISTORY_FIELDS = {"enterState", "exitState", "timestamp", "updatedBy"}
PROCESSING_FIELDS = {"hasTransactions", "totalTransactions", "hasFutureTransactions", "isCompleted"}


async def send(
    api: Api, path: str, body: object, key: str | None = None, **kw: Any
) -> httpx.Response:
    """A request as the document writes it: raw JSON, its headers, the secret header."""
    headers = {
        "Content-Type": "application/json",
        "Accept": "*/*",
        "X-Buildable-Secret": key or api.test_key,
        **kw.pop("headers", {}),
    }
    content = body if isinstance(body, bytes) else orjson.dumps(body)
    return await api.client.post(f"/buildable{path}", content=content, headers=headers, **kw)


async def ok(api: Api, path: str, body: object, key: str | None = None, **kw: Any) -> Any:
    response = await send(api, path, body, key, **kw)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return response.json()


async def refused(api: Api, path: str, body: object, status: int, key: str | None = None) -> str:
    response = await send(api, path, body, key)
    assert response.status_code == status, response.text
    answer = response.json()
    assert answer["status"] == "error"
    assert isinstance(answer["message"], str)
    assert answer["message"]
    return str(answer["message"])


def check_event_object(row: dict[str, Any]) -> None:
    assert set(row) == EVENT_FIELDS
    assert row["_id"].startswith("evt_")
    assert HEX32.match(row["key"])
    assert event_id_from_key(row["key"]) == row["_id"]
    assert isinstance(row["createdAt"], int)
    assert isinstance(row["v"], int)
    assert set(row["ownership"]) == {"buildableId", "userId", "clientId"}
    assert set(row["processing"]) == PROCESSING_FIELDS
    for step in row["history"]:
        assert set(step) == HISTORY_FIELDS
        assert isinstance(step["timestamp"], int)


def check_transaction_object(txn: dict[str, Any]) -> None:
    assert set(txn) == TXN_FIELDS
    assert set(txn["event"]) == {"_id", "eventName"}
    assert HEX32.match(txn["key"])
    assert HEX32.match(txn["txn"])
    for step in txn["history"]:
        assert set(step) == HISTORY_FIELDS


def test_an_event_key_is_the_event_ids_128_bits_in_hex() -> None:
    for _ in range(50):
        event_id = new_id("evt")
        key = event_key(event_id)
        assert HEX32.match(key)
        assert event_id_from_key(key) == event_id
    assert event_key("evt_00000000000000000000000000") == "0" * 32
    assert event_key("evt_7ZZZZZZZZZZZZZZZZZZZZZZZZZ") == "f" * 32
    for bad in ("", "F" * 32, "0" * 31, "g" * 32, "0" * 33):
        assert event_id_from_key(bad) is None


async def test_the_documents_requests_as_written(api: Api) -> None:
    emitted = await ok(api, "/emit", {"event": "", "payload": {}})
    assert set(emitted) == {"status", "key"}
    assert emitted["status"] == "success"
    assert HEX32.match(emitted["key"])

    query = {
        "eventName": "",
        "txKey": "",
        "since": None,
        "platform": "",
        "label": "",
        "txState": "does-not-exist",
        "page": 1,
        "pageSize": 10,
    }
    page = await ok(api, "/query", query)
    assert set(page) == {"rows", "total", "page", "pageSize", "totalPages"}
    assert (page["total"], page["page"], page["pageSize"], page["totalPages"]) == (1, 1, 10, 1)
    row = page["rows"][0]
    check_event_object(row)
    assert row["key"] == emitted["key"]
    assert row["eventName"] == ""
    assert row["payload"] == {}
    assert row["environment"] == "test"
    assert row["state"] == "does-not-exist"

    assert await ok(
        api, "/get-full-event-name", {"eventName": "", "platform": "", "label": ""}
    ) == {"fullName": ""}
    # The transaction requests name no event as written ("key": ""): a clear 400.
    for path, body in [
        ("/update", {"key": "", "eventName": "", "txKey": "", "txState": "processing"}),
        ("/init", {"key": "", "txKey": ""}),
        ("/transact", {"key": "", "txKey": "", "output": "", "state": "finished"}),
    ]:
        await refused(api, path, body, 400)
        # ... and, with the emitted key and a txKey filled in, the documented object.
        answer = await ok(api, path, {**body, "key": emitted["key"], "txKey": f"doc{path}"})
        if path == "/update":
            check_event_object(answer)
            assert answer["state"] == "processing"
        else:
            check_transaction_object(answer)
    assert answer["state"] == "finished"
    assert answer["txKey"] == "doc/transact"


async def test_emit_query_init_transact(api: Api) -> None:
    key = (await ok(api, "/emit", {"event": "user.created", "payload": {"userId": "u7", "n": 1}}))[
        "key"
    ]
    listener = {"eventName": "user.created", "txKey": "mailer", "txState": "does-not-exist"}
    rows = (await ok(api, "/query", listener))["rows"]
    assert [r["key"] for r in rows] == [key]
    assert rows[0]["payload"] == {"userId": "u7", "n": 1}
    assert rows[0]["ownership"]["userId"] == "u7"
    assert rows[0]["processing"] == {
        "hasTransactions": False,
        "totalTransactions": 0,
        "hasFutureTransactions": False,
        "isCompleted": False,
    }

    started = await ok(api, "/init", {"key": key, "txKey": "mailer"})
    check_transaction_object(started)
    assert started["state"] == "processing"
    assert started["endedAt"] is None
    assert started["event"] == {"_id": rows[0]["_id"], "eventName": "user.created"}
    assert [(h["exitState"], h["enterState"]) for h in started["history"]] == [
        ("does-not-exist", "pending"),
        ("pending", "processing"),
    ]
    assert isinstance(started["startedAt"], int)
    await refused(api, "/init", {"key": key, "txKey": "mailer"}, 409)  # taken up already

    consumers = (await api.get("/v1/consumers")).json()["data"]
    assert [(c["name"], c["kind"]) for c in consumers] == [("mailer", "pull")]

    # An event emitted now gets a pending transaction at once; it is still not taken up.
    later = (await ok(api, "/emit", {"event": "user.created", "payload": {}}))["key"]
    rows = (await ok(api, "/query", listener))["rows"]
    assert [(r["key"], r["state"]) for r in rows] == [(later, "pending")]

    done = await ok(
        api,
        "/transact",
        {"key": key, "txKey": "mailer", "output": {"sent": True}, "state": "finished"},
    )
    check_transaction_object(done)
    assert done["state"] == "finished"
    assert isinstance(done["endedAt"], int)
    assert done["history"][-1]["exitState"] == "processing"
    assert done["history"][-1]["updatedBy"].startswith("key_")

    finished = (await ok(api, "/query", {**listener, "txState": "finished"}))["rows"]
    assert [(r["key"], r["state"]) for r in finished] == [(key, "finished")]
    assert finished[0]["processing"]["isCompleted"] is True
    assert [h["enterState"] for h in finished[0]["history"]] == [
        "pending",
        "processing",
        "finished",
    ]
    not_yet = (await ok(api, "/query", {**listener, "txState": "does-not-exist"}))["rows"]
    assert [r["key"] for r in not_yet] == [later]

    # The same event and transaction, through the native API.
    native = (await api.get(f"/v1/events/{finished[0]['_id']}")).json()
    assert native["source"] == "buildable"
    assert native["trigger"] == "user.created"
    assert [(t["state"], t["output"]) for t in native["transactions"]] == [
        ("finished", {"sent": True})
    ]
    listed = (await api.get("/v1/events", params={"source": "buildable"})).json()["data"]
    assert len(listed) == 2

    # /update hands the later one back and answers with the event object.
    updated = await ok(
        api,
        "/update",
        {"key": later, "eventName": "user.created", "txKey": "mailer", "txState": "failed"},
    )
    check_event_object(updated)
    assert updated["state"] == "failed"
    assert updated["processing"]["isCompleted"] is True
    reset = await ok(
        api,
        "/update",
        {"key": later, "eventName": "", "txKey": "mailer", "txState": "does-not-exist"},
    )
    assert reset["state"] == "pending"
    await refused(
        api,
        "/update",
        {"key": later, "eventName": "other", "txKey": "mailer", "txState": "failed"},
        404,
    )


async def test_paging_names_platforms_and_ttl(api: Api) -> None:
    for i in range(25):
        await ok(api, "/emit", {"event": "tick", "payload": {"i": i}})
    seen = []
    for number in (1, 2, 3):
        page = await ok(api, "/query", {"eventName": "tick", "page": number, "pageSize": 10})
        assert (page["total"], page["pageSize"], page["totalPages"]) == (25, 10, 3)
        seen += [r["payload"]["i"] for r in page["rows"]]
    assert seen == list(range(24, -1, -1))  # newest first, no repeats, no gaps
    assert (await ok(api, "/query", {"page": 4, "pageSize": 10}))["rows"] == []

    naming = {"eventName": "Customer Created", "platform": "Stripe", "label": "live"}
    full = (await ok(api, "/get-full-event-name", naming))["fullName"]
    assert full == "stripe.live.customer_created"
    await ok(api, "/emit", {"event": full, "payload": {}, "ttl": 3_600_000})
    for query in (
        naming,
        {"eventName": full},
        {"platform": "stripe"},
        {"platform": "Stripe", "label": "live"},
    ):
        rows = (await ok(api, "/query", query))["rows"]
        assert [r["eventName"] for r in rows] == [full], query
    row = rows[0]
    assert row["ttl"] - row["createdAt"] == 3_600_000
    assert (await ok(api, "/query", {"platform": "paypal"}))["total"] == 0
    since = (await ok(api, "/query", {"since": row["createdAt"], "pageSize": 100}))["rows"]
    assert all(r["createdAt"] >= row["createdAt"] for r in since)
    assert row["key"] in {r["key"] for r in since}


async def test_the_secret_is_never_kept_with_the_event(api: Api) -> None:
    secret = api.test_key
    await ok(
        api,
        "/emit",
        {"event": "signup", "payload": {}},
        params={"ref": "newsletter", "token": "t0k3n", "echo": secret},
        headers={
            "Authorization": f"Bearer {secret}",
            "Cookie": "session=abc",
            "X-Api-Key": secret,
            "X-Trace": "trace-1",
            "X-Echo": f"again {secret}",
        },
    )
    row = (await ok(api, "/query", {"eventName": "signup"}))["rows"][0]
    assert row["query"] == {"ref": "newsletter"}
    assert row["headers"]["x-trace"] == "trace-1"
    assert row["headers"]["accept"] == "*/*"
    assert not {"x-buildable-secret", "authorization", "cookie", "x-api-key", "x-echo"} & set(
        row["headers"]
    )
    native = (await api.get(f"/v1/events/{row['_id']}")).text
    for text in (secret, secret[8:], "t0k3n", "session=abc"):
        assert text not in native
        assert text not in orjson.dumps(row).decode()


async def test_scopes_environments_and_bad_input(api: Api) -> None:
    async def key(scopes: list[str], env: str = "test") -> str:
        made = await api.post("/v1/keys", {"scopes": scopes, "environment": env})
        assert made.status_code == 201, made.text
        return str(made.json()["key"])

    reader, writer = await key(["read"]), await key(["write"])
    emitted = await ok(api, "/emit", {"event": "e", "payload": {}}, key=writer)
    await refused(api, "/emit", {"event": "e", "payload": {}}, 403, key=reader)
    await refused(api, "/query", {}, 403, key=writer)
    await refused(api, "/init", {"key": emitted["key"], "txKey": "t"}, 403, key=reader)
    assert (await ok(api, "/query", {}, key=reader))["total"] == 1
    assert (await ok(api, "/query", {}, key=api.live_key))["total"] == 0  # live sees no test
    await refused(api, "/init", {"key": emitted["key"], "txKey": "t"}, 404, key=api.live_key)
    await refused(api, "/emit", {"event": "e"}, 401, key="sk_test_" + "x" * 32)
    response = await api.client.post("/buildable/emit", json={"event": "e"})
    assert response.status_code == 401
    assert response.json()["status"] == "error"

    bad: list[tuple[str, object, int]] = [
        ("/emit", b"{", 400),
        ("/emit", b"[]", 400),
        ("/emit", {}, 400),
        ("/emit", {"event": 1}, 400),
        ("/emit", {"event": "e", "payload": [1]}, 400),
        ("/emit", {"event": "e", "payload": {"_buildable": 1}}, 400),
        ("/emit", {"event": "e", "payload": {}, "extra": 1}, 400),
        ("/emit", {"event": "e", "payload": {}, "ttl": -5}, 400),
        ("/emit", {"event": "e", "payload": {"x": "y" * 40_000}}, 413),
        ("/query", {"pageSize": 0}, 400),
        ("/query", {"pageSize": 101}, 400),
        ("/query", {"page": "two"}, 400),
        ("/query", {"since": "yesterday"}, 400),
        ("/query", {"txState": "Not A State"}, 400),
        ("/init", {"key": "nothex", "txKey": "t"}, 400),
        ("/init", {"key": "0" * 32, "txKey": "t"}, 404),
        ("/init", {"key": emitted["key"]}, 400),
        ("/transact", {"key": emitted["key"], "txKey": "t", "state": "BAD STATE"}, 422),
        ("/update", {"key": emitted["key"], "txKey": "t"}, 400),
        ("/get-full-event-name", {"eventName": ["x"]}, 400),
    ]
    for path, body, status in bad:
        await refused(api, path, body, status)
