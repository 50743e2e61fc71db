"""Secrets never leak: not into the log, error bodies, OpenAPI, or anything stored.

A full scenario runs against a real server process (with its worker) at DEBUG log level:
keys are minted, one revoked; webhook consumers get signing secrets (one rotated); events
come in with those keys through the native API and every adapter's own way of carrying a key
(Bunce's X-Authorization, EventBunker's and Buildable's headers, Basic auth for CDP and
Segment, Segment's `writeKey` in the body, Bearer for Reward and CloudEvents); failing
requests send unknown, revoked, under-scoped and garbled keys; a dashboard user signs in
right and wrong; webhooks are delivered to a real receiver and to a closed port. Then every
secret the test created or sent is searched for in the server's whole log, in every answer
it got that is not the one showing a secret on purpose (a key's or a consumer's creation),
in /openapi.json, and in every column of every table — except the columns that must hold a
secret to work (a consumer's signing secrets, which sign each webhook).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import time
from pathlib import Path
from typing import Any

import httpx

from eventyard.store.connect import connect
from tests.e2e.server import ServerProcess, free_port, init_project
from tests.e2e.test_users_cli import PASSWORD, _sign_in
from tests.e2e.threaded_receiver import ThreadedReceiver
from tests.receiver import Reply
from tests.security.conftest import add_dashboard_user

# Columns that hold a secret by design: the consumer signs each webhook with it.
SECRET_COLUMNS = {("consumers", "secret"), ("consumers", "previous_secret")}
KEY_SHAPE = re.compile(r"sk_(live|test)_[A-Za-z0-9]{32}")
WEBHOOK_SECRET_SHAPE = re.compile(r"whsec_[A-Za-z0-9+/]{43}=")


def _basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


class Scenario:
    def __init__(self, url: str) -> None:
        self.client = httpx.Client(base_url=url, timeout=20)
        self.secrets: set[str] = set()
        self.answers: list[tuple[str, str]] = []  # (what, answer text) to search

    def call(self, what: str, method: str, path: str, shows_secret: bool = False, **kw: Any):  # type: ignore[no-untyped-def]
        response = self.client.request(method, path, **kw)
        assert response.status_code < 500, f"{what}: {response.status_code} {response.text}"
        if not shows_secret:
            self.answers.append((what, response.text + json.dumps(dict(response.headers))))
        return response

    def secret(self, value: str) -> str:
        self.secrets.add(value)
        body = value.split("_", 2)[-1]  # the random part alone, too
        if len(body) >= 16:
            self.secrets.add(body)
        return value


def _all_rows(database_url: str) -> list[tuple[str, str, str]]:
    """(table, column, value as text) for every value of every table."""
    db = connect(database_url, writer=False)
    try:
        if db.backend == "sqlite":
            tables = [
                r["name"] for r in db.all("SELECT name FROM sqlite_master WHERE type='table'")
            ]
        else:
            tables = [
                r["tablename"]
                for r in db.all("SELECT tablename FROM pg_tables WHERE schemaname='public'")
            ]
        found = []
        for table in tables:
            for row in db.all(f"SELECT * FROM {table}"):
                for column in row.keys():  # noqa: SIM118 - a sqlite3.Row iterates values
                    found.append((table, column, str(row[column])))
        return found
    finally:
        db.close()


def test_no_secret_reaches_the_log_an_answer_openapi_or_a_stored_row(
    store_url: str, tmp_path: Path
) -> None:
    add_dashboard_user(store_url)
    keys = init_project(store_url, "shop")["keys"]
    log = tmp_path / "server.log"
    env = {"EVENTYARD_LOG_LEVEL": "debug", "EVENTYARD_WEBHOOK_ALLOW_PRIVATE": "true"}
    server = ServerProcess(store_url, log, env)
    with ThreadedReceiver(default=Reply(200, body=b"thanks")) as receiver:
        server.start()
        try:
            s = Scenario(server.url)
            with s.client:
                run_scenario(s, keys, receiver, server.url)
        finally:
            server.stop()
    assert "eventyard listening" in log.read_text(), "the server's log was not captured"
    places = [("the server's log", log.read_text(errors="replace"))]
    places += [(f"the answer to {what}", text) for what, text in s.answers]
    places += [
        (f"{table}.{column}", value)
        for table, column, value in _all_rows(store_url)
        if (table, column) not in SECRET_COLUMNS
    ]
    leaks = [
        f"{where} holds {secret[:12]}…"
        for where, text in places
        for secret in s.secrets
        if secret in text
    ]
    assert not leaks, "\n".join(leaks)


def run_scenario(s: Scenario, keys: dict[str, str], receiver: ThreadedReceiver, url: str) -> None:
    admin = s.secret(keys["live"])
    s.secret(keys["test"])
    bearer = {"Authorization": f"Bearer {admin}"}

    def mint(scopes: list[str]) -> tuple[str, str]:
        made = s.call(
            "minting a key", "POST", "/v1/keys", True, json={"scopes": scopes}, headers=bearer
        )
        assert made.status_code == 201, made.text
        return made.json()["id"], s.secret(made.json()["key"])

    _, writer = mint(["write"])
    _, reader = mint(["read"])
    revoked_id, revoked = mint(["write"])
    assert s.call("revoking", "DELETE", f"/v1/keys/{revoked_id}", headers=bearer).status_code == 200

    hooks = []
    for name, target in (
        ("hook", receiver.url("/hook")),
        ("down", f"http://127.0.0.1:{free_port()}/x"),
    ):
        made = s.call(
            "creating a consumer",
            "POST",
            "/v1/consumers",
            True,
            json={"name": name, "kind": "webhook", "url": target},
            headers=bearer,
        )
        assert made.status_code == 201, made.text
        s.secret(made.json()["secret"])
        hooks.append(made.json()["id"])
    rotated = s.call(
        "rotating", "POST", f"/v1/consumers/{hooks[0]}/rotate-secret", True, headers=bearer
    )
    assert rotated.status_code == 200, rotated.text
    s.secret(rotated.json()["secret"])
    s.call("listing consumers", "GET", "/v1/consumers", headers=bearer)
    s.call("reading a consumer", "GET", f"/v1/consumers/{hooks[0]}", headers=bearer)
    s.call("listing keys", "GET", "/v1/keys", headers=bearer)

    w = {"Authorization": f"Bearer {writer}"}
    event = {"trigger": "signup", "user_id": "u1", "payload": {"plan": "pro"}}
    assert s.call("an event", "POST", "/v1/events", json=event, headers=w).status_code == 201
    assert (
        s.call(
            "a batch", "POST", "/v1/events/batch", json={"events": [event]}, headers=w
        ).status_code
        == 200
    )
    trigger = s.call("a trigger", "GET", "/v1/triggers/signup", headers=bearer).json()

    # Every adapter, each with its own way of carrying the key.
    ok: list[tuple[str, str, str, dict[str, Any]]] = [
        (
            "bunce",
            "POST",
            "/bunce/v1/events/trigger",
            {
                "headers": {"X-Authorization": writer},
                "json": {"event_id": trigger["uuid"], "payload": {"email": "u2@example.com"}},
            },
        ),
        (
            "eventbunker",
            "POST",
            "/eventbunker/post",
            {
                "headers": {"x-eventbunker-write-key": writer},
                "json": {"event_name": "signup", "user_id": "u3"},
            },
        ),
        (
            "buildable",
            "POST",
            "/buildable/emit",
            {
                "headers": {"X-Buildable-Secret": writer},
                "json": {"event": "signup", "payload": {"userId": "u4"}},
            },
        ),
        (
            "cdp",
            "POST",
            "/" + trigger["cdp_webhook_path"].lstrip("/"),
            {
                "headers": {"Authorization": _basic("", writer)},
                "json": {"event_name": "signup", "external_event_id": "x1", "customer_id": "u5"},
            },
        ),
        (
            "segment basic",
            "POST",
            "/segment/v1/track",
            {
                "headers": {"Authorization": _basic(writer)},
                "json": {"userId": "u6", "event": "Signed Up"},
            },
        ),
        (
            "segment writeKey",
            "POST",
            "/segment/v1/track",
            {"json": {"writeKey": writer, "userId": "u7", "event": "Signed Up"}},
        ),
        (
            "segment batch",
            "POST",
            "/segment/v1/batch",
            {
                "json": {
                    "writeKey": writer,
                    "batch": [
                        {"type": "track", "userId": "u8", "event": "Signed Up", "writeKey": writer}
                    ],
                }
            },
        ),
        (
            "reward",
            "POST",
            "/reward/v1/triggers/signup/users/u9/events",
            {"headers": w, "json": {"v": 1}},
        ),
        (
            "cloudevents",
            "POST",
            "/cloudevents",
            {
                "headers": {**w, "content-type": "application/cloudevents+json"},
                "content": json.dumps(
                    {
                        "specversion": "1.0",
                        "id": "c1",
                        "source": "/s",
                        "type": "signup",
                        "subject": "u10",
                        "data": {"v": 1},
                    }
                ),
            },
        ),
    ]
    for what, method, path, kw in ok:
        sent = s.call(what, method, path, **kw)
        assert sent.status_code < 300, f"{what}: {sent.status_code} {sent.text}"

    # Failing requests: unknown, revoked, under-scoped and garbled keys, and bad bodies.
    unknown = s.secret(
        "sk_live_" + "".join(secrets.choice("abcdefghijkLMNOP0123456789") for _ in range(32))
    )
    for what, key in (("unknown", unknown), ("revoked", revoked), ("read-only", reader)):
        for path, headers in (
            ("/v1/events", {"Authorization": f"Bearer {key}"}),
            ("/eventbunker/post", {"x-eventbunker-write-key": key}),
            ("/segment/v1/track", {"Authorization": _basic(key)}),
            ("/bunce/v1/events/trigger", {"X-Authorization": key}),
        ):
            refused = s.call(f"{what} key at {path}", "POST", path, json=event, headers=headers)
            assert refused.status_code in (401, 403), refused.text
    s.call(
        "a garbled key",
        "GET",
        "/v1/events",
        headers={"Authorization": f"Bearer {writer}\u00e9x".encode("latin-1")},
    )
    s.call("a bad body", "POST", "/v1/events", content=b"{not json", headers=w)
    s.call(
        "a key in the wrong scheme",
        "GET",
        "/v1/events",
        headers={"Authorization": f"Basic {writer}"},
    )

    # The dashboard: a wrong and a right password; the session cookie is a secret too.
    s.secret(PASSWORD)
    assert _sign_in(url, "ada@example.com", PASSWORD + "!").status_code == 401
    signed_in = _sign_in(url, "ada@example.com", PASSWORD)
    assert signed_in.status_code == 303
    s.secret(signed_in.cookies["eventyard_session"])

    s.call("openapi", "GET", "/openapi.json")
    spec = s.client.get("/openapi.json").text
    assert not KEY_SHAPE.search(spec), "an OpenAPI example looks like a real key"
    assert not WEBHOOK_SECRET_SHAPE.search(spec), "an OpenAPI example looks like a real secret"

    # Deliveries: to the receiver, and attempts that fail against a closed port.
    receiver.wait_until(lambda got: len(got) >= 2, within=30)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        txns = s.call(
            "transactions", "GET", f"/v1/consumers/{hooks[1]}/transactions", headers=bearer
        )
        if any(t["attempts"] for t in txns.json()["data"]):
            break
        time.sleep(0.2)
    else:
        raise AssertionError("no delivery attempt to the closed port was recorded")
    for got in receiver.requests:
        assert "webhook-signature" in got.headers
