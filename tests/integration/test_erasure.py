"""Erasing an end user leaves no row behind anywhere, on both backends.

The user's events come in through several doors (native, batch, the path route, Segment,
EventBunker, Buildable with a TTL that has already hidden the event), with idempotency keys;
a webhook consumer's receiver echoes each payload back (so delivery attempts hold it) and a
pull consumer reports an output naming the user. After the erasure, every column of every
table (partitions included, on PostgreSQL) is searched for the user id and for a marker only
their payloads carry; another user's rows are all still there, and the erasure's record
holds nothing of what it erased.
"""

from __future__ import annotations

import base64
import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import orjson
import pytest

from eventyard.services.users import erase_user
from eventyard.settings import Settings
from eventyard.store import Store
from eventyard.store.connect import connect
from eventyard.store.db import Db
from eventyard.store.partitions import ensure_partitions
from tests.conftest import Api
from tests.integration.delivery_fixtures import World, open_world
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.anyio

VICTIM = "erase-me-7Q2@example.com"
MARK = "VICTIM-PAYLOAD-MARK-91XK"
KEEPER = "keep-me-4Z8@example.com"
KEEP_MARK = "KEEPER-PAYLOAD-MARK-55QJ"


def tables(db: Db) -> list[str]:
    """Every table, and on PostgreSQL every partition (they are tables of their own)."""
    if db.backend == "sqlite":
        rows = db.all("SELECT name FROM sqlite_master WHERE type = 'table'")
    else:
        rows = db.all(
            "SELECT c.relname AS name FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')"
        )
    return sorted(r["name"] for r in rows)


def columns(db: Db, table: str) -> list[str]:
    if db.backend == "sqlite":
        return [c["name"] for c in db.all(f'PRAGMA table_info("{table}")')]
    rows = db.all(
        "SELECT column_name FROM information_schema.columns"
        " WHERE table_schema = current_schema() AND table_name = ?",
        (table,),
    )
    return [r["column_name"] for r in rows]


def rows_holding(db: Db, needles: list[str]) -> dict[str, int]:
    """Per `table.column`, how many rows hold any of the needles anywhere in their text."""
    found: dict[str, int] = {}
    for table in tables(db):
        for column in columns(db, table):
            text = f'CAST("{column}" AS TEXT)'
            where = " OR ".join(f"{text} LIKE ?" for _ in needles)
            n = db.scalar(
                f'SELECT COUNT(*) AS n FROM "{table}" WHERE {where}',
                [f"%{needle}%" for needle in needles],
            )
            if n:
                found[f"{table}.{column}"] = int(n)
    return found


def scan(needles: list[str]) -> Any:
    return lambda db: rows_holding(db, needles)


@pytest.fixture
async def world(store: Store, settings: Settings) -> AsyncIterator[World]:
    async with open_world(store, settings) as w:
        yield w


async def ok(response: Any, status: int = 201) -> Any:
    assert response.status_code == status, response.text
    return response.json()


async def send_through_every_door(api: Api, user: str, mark: str) -> None:
    """Events for `user` whose payloads carry `mark`, through six doors, with idempotency
    keys wherever the door takes one."""
    payload = {"note": mark}
    await ok(await api.send("signup", user, payload=payload, idempotency_key=f"{mark}-native"))
    batch = await api.post(
        "/v1/events/batch",
        {
            "events": [
                {"trigger": "order_paid", "user_id": user, "payload": payload},
                {
                    "trigger": "order_paid",
                    "user_id": user,
                    "payload": payload,
                    "idempotency_key": f"{mark}-batch",
                },
            ]
        },
    )
    assert [r["status"] for r in (await ok(batch, 200))["results"]] == ["accepted"] * 2
    await ok(
        await api.post(
            f"/v1/triggers/signup/users/{quote(user, safe='')}/events", {"payload": payload}
        )
    )
    basic = base64.b64encode(f"{api.test_key}:".encode()).decode()
    segment = await api.client.post(
        "/segment/v1/track",
        content=orjson.dumps(
            {"userId": user, "event": "Viewed", "properties": payload, "messageId": f"{mark}-m"}
        ),
        headers={"Authorization": f"Basic {basic}", "Content-Type": "application/json"},
    )
    await ok(segment, 200)
    bunker = await api.client.post(
        "/eventbunker/post",
        content=orjson.dumps({"event_name": "clicked", "customer_identifier": user, "note": mark}),
        headers={"x-eventbunker-write-key": api.test_key, "Content-Type": "application/json"},
    )
    await ok(bunker, 200)
    # A Buildable event with a one-minute TTL: hidden from queries once it has expired, but
    # still on disk until housekeeping removes it. Erasure must remove it all the same.
    buildable = await api.client.post(
        "/buildable/emit",
        content=orjson.dumps(
            {"event": "expiring", "payload": {"userId": user, "note": mark}, "ttl": 60_000}
        ),
        headers={"X-Buildable-Secret": api.test_key, "Content-Type": "application/json"},
    )
    await ok(buildable, 200)


async def test_an_erased_user_leaves_no_row_behind_anywhere(world: World, store: Store) -> None:
    api = world.api
    # On PostgreSQL, time partitions as housekeeping makes them: the rows go to a range
    # partition (`events_p…`), not the DEFAULT one.
    now_ms = world.clock.now_us() // 1000
    with contextlib.closing(connect(store.url, writer=True)) as db:  # a connection of its own
        ensure_partitions(db, now_ms)
    async with Receiver() as receiver:
        hook = await world.hook(receiver.url("/hook"))
        puller = await ok(await api.post("/v1/consumers", {"name": "puller", "kind": "pull"}))
        # The receiver echoes what it got: first a 500, then a 200, both quoting the victim.
        echo = orjson.dumps({"echo": {"user": VICTIM, "note": MARK}})
        receiver.default = Reply(500, body=echo)
        await send_through_every_door(api, VICTIM, MARK)
        assert await world.deliver() == 7
        receiver.default = Reply(200, body=echo)
        assert await world.advance(6) == 7
        receiver.default = Reply(200, body=orjson.dumps({"echo": {"note": KEEP_MARK}}))
        await send_through_every_door(api, KEEPER, KEEP_MARK)
        assert await world.deliver() == 7
        claimed = await api.post(f"/v1/consumers/{puller['id']}/claim", {"limit": 100})
        for txn in (await ok(claimed, 200))["data"]:
            output = {"processed_for": txn["event"]["user_id"]}
            report = await api.client.patch(
                f"/v1/transactions/{txn['id']}",
                json={"state": "finished", "output": output},
                headers=api.auth(),
            )
            await ok(report, 200)
    world.frozen.advance(120)  # the Buildable events' TTL has passed: hidden, not gone

    before = await store.read(scan([VICTIM, MARK]))
    kept_before = await store.read(scan([KEEPER, KEEP_MARK]))
    # The setting-up reached every kind of row the receipt counts.
    assert set(before) >= {
        "events.user_id",
        "events.payload",
        "transactions.output",
        "delivery_attempts.response_excerpt",
        "idempotency_keys.key",
    }, before
    if store.backend == "postgres":
        partitions = {k.split(".")[0] for k in before if "_p2" in k}
        assert {p.rsplit("_p", 1)[0] for p in partitions} == {
            "events",
            "transactions",
            "delivery_attempts",
        }, before

    # Batches of 2 events: the erasure runs in several writes (7 events: 2, 2, 2, 1).
    commits = store.writer.stats.commits
    answer = await erase_user(store, world.clock, await principal_of(world), VICTIM, batch=2)
    receipt = answer.counts
    # At least: a key's last use may be recorded in a write of its own meanwhile.
    assert store.writer.stats.commits - commits >= 4
    assert receipt["events"] == 7
    assert receipt["transactions"] == 14  # a webhook and a pull consumer, each event
    assert receipt["idempotency_keys"] == 3  # native, batch, Segment's messageId
    assert receipt["delivery_attempts"] == 14  # a 500 and a 200 for each webhook delivery
    # Webhook: created, finished. Pull: created, processing (the claim), finished.
    assert receipt["transaction_history"] == 7 * 2 + 7 * 3

    assert await store.read(scan([VICTIM, MARK])) == {}
    assert await store.read(scan([KEEPER, KEEP_MARK])) == kept_before

    # The keeper's events, transactions and idempotency keys all still work.
    kept = (await api.get("/v1/events", params={"user_id": KEEPER})).json()["data"]
    assert len(kept) == 6  # the seventh, Buildable's, has expired
    for event in kept:
        detail = (await api.get(f"/v1/events/{event['id']}")).json()
        assert {t["consumer_id"] for t in detail["transactions"]} == {hook["id"], puller["id"]}
    again = await api.send(
        "signup", KEEPER, payload={"note": KEEP_MARK}, idempotency_key=f"{KEEP_MARK}-native"
    )
    assert again.status_code == 200, again.text

    # The record: counts, times and the key; nothing of the user.
    listed = await ok(await api.get("/v1/erasures", key=api.test_key), 200)
    (record,) = listed["data"]
    assert record["id"] == answer.id
    assert record["deleted"] == receipt
    assert record["erased_at"] is not None
    assert record["requested_by"].startswith("key_")
    assert VICTIM not in orjson.dumps(listed).decode()


async def principal_of(world: World) -> Any:
    from eventyard.domain.models import Principal

    services = world.services
    found = await services.keys.authenticate(world.api.test_key)
    assert isinstance(found, Principal)
    return found


async def test_erasures_are_listed_newest_first_in_pages_of_this_environment(
    api: Api, other_api: Api
) -> None:
    ids = []
    for n in range(3):
        await ok(await api.send("signup", f"user-{n}"))
        erased = await ok(await api.client.delete(f"/v1/users/user-{n}", headers=api.auth()), 200)
        assert erased["deleted"]["events"] == 1
        assert erased["user_id"] == f"user-{n}"
        assert erased["started_at"] <= erased["erased_at"]
        ids.append(erased["id"])
    await ok(await api.client.delete("/v1/users/x", headers=api.auth(api.live_key)), 200)

    first = await ok(await api.get("/v1/erasures", params={"limit": "2"}), 200)
    assert [r["id"] for r in first["data"]] == [ids[2], ids[1]]
    second = await ok(
        await api.get("/v1/erasures", params={"limit": "2", "cursor": first["next_cursor"]}), 200
    )
    assert [r["id"] for r in second["data"]] == [ids[0]]
    assert second["next_cursor"] is None
    assert all(r["environment"] == "test" for r in first["data"] + second["data"])
    assert "user-" not in str(first) + str(second)
    # Another project, and this project's live environment, see only their own.
    assert (await ok(await other_api.get("/v1/erasures"), 200))["data"] == []
    live = (await ok(await api.get("/v1/erasures", key=api.live_key), 200))["data"]
    assert [r["environment"] for r in live] == ["live"]


async def test_listing_erasures_refuses_bad_paging_and_keys_without_the_delete_scope(
    api: Api,
) -> None:
    for params in ({"limit": "0"}, {"limit": "1001"}, {"limit": "x"}, {"cursor": "nope"}):
        refused = await api.get("/v1/erasures", params=params)
        assert refused.status_code == 400, refused.text
        assert params[next(iter(params))] in refused.json()["message"]
    reader = await ok(await api.post("/v1/keys", {"scopes": ["read", "write"]}))
    forbidden = await api.get("/v1/erasures", key=reader["key"])
    assert forbidden.status_code == 403, forbidden.text
    deleter = await ok(await api.post("/v1/keys", {"scopes": ["delete"]}))
    assert (await api.get("/v1/erasures", key=deleter["key"])).status_code == 200


async def test_events_hidden_by_retention_are_erased_from_disk(world: World, store: Store) -> None:
    api = world.api
    for n in range(2):
        await ok(await api.send("signup", VICTIM, payload={"note": MARK, "n": n}))
    await ok(await api.send("signup", KEEPER, payload={"note": KEEP_MARK}))
    patched = await api.client.patch("/v1/project", json={"retention_days": 1}, headers=api.auth())
    await ok(patched, 200)
    world.frozen.advance(2 * 86_400)  # past retention: hidden at once, on disk until housekeeping
    assert (await ok(await api.get("/v1/events"), 200))["data"] == []
    assert "events.payload" in await store.read(scan([VICTIM, MARK]))

    erased = await ok(await api.client.delete(f"/v1/users/{VICTIM}", headers=api.auth()), 200)
    assert erased["deleted"]["events"] == 2
    assert await store.read(scan([VICTIM, MARK])) == {}
    assert set(await store.read(scan([KEEPER, KEEP_MARK]))) >= {"events.payload"}
