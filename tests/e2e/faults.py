"""What the fault tests (crash, outage, disk) read back through the API and check."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx

from tests.receiver import ReceivedRequest


def _pages(client: httpx.Client, path: str, cursor: str, next_name: str) -> list[dict[str, Any]]:
    """Every item of a paged list: `cursor` is the query parameter that takes the page's
    `next_name`."""
    out: list[dict[str, Any]] = []
    position = None
    while True:
        params = {"limit": "1000", **({cursor: position} if position else {})}
        r = client.get(path, params=params)
        assert r.status_code == 200, r.text
        page = r.json()
        out.extend(page["data"])
        position = page[next_name]
        if not position:
            return out


def all_events(client: httpx.Client) -> list[dict[str, Any]]:
    """Every event the client's key can see, all pages."""
    return _pages(client, "/v1/events", "cursor", "next_cursor")


def post_refused(client: httpx.Client, body: dict[str, Any], within: float) -> dict[str, Any]:
    """POST an event that the database cannot take: a 503 with `Retry-After` and the
    `unavailable` code, answered within `within` seconds. The problem body."""
    started = time.monotonic()
    r = client.post("/v1/events", json=body)
    took = time.monotonic() - started
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) > 0
    problem: dict[str, Any] = r.json()
    assert problem["code"] == "unavailable"
    assert took < within, f"answered after {took:.1f} s"
    return problem


def create_webhook(client: httpx.Client, url: str) -> str:
    r = client.post("/v1/consumers", json={"name": "hook", "kind": "webhook", "url": url})
    assert r.status_code == 201, r.text
    consumer_id: str = r.json()["id"]
    return consumer_id


def transactions(client: httpx.Client, consumer_id: str) -> list[dict[str, Any]]:
    """Every transaction of the consumer, with its attempts and history."""
    return _pages(client, f"/v1/consumers/{consumer_id}/transactions", "after", "next_after")


def wait_all_finished(
    client: httpx.Client, consumer_id: str, count: int, within: float
) -> list[dict[str, Any]]:
    """Poll until the consumer has `count` transactions, all `finished`; fail after `within`."""
    deadline = time.monotonic() + within
    while True:
        txns = transactions(client, consumer_id)
        states = Counter(t["state"] for t in txns)
        if len(txns) == count and states["finished"] == count:
            return txns
        if time.monotonic() > deadline:
            raise AssertionError(f"after {within} s: {dict(states)} of {count} transactions")
        time.sleep(0.1)


def check_delivered_once(
    txns: list[dict[str, Any]], received: list[ReceivedRequest], crashes: int
) -> None:
    """Each transaction reached `finished` once, after exactly one successful attempt, and
    its webhook (`webhook-id` = transaction id) reached the receiver. A webhook may arrive
    more often than its attempts were recorded only when an attempt's outcome could not be
    recorded — at most once per crash."""
    by_webhook_id = Counter(r.headers["webhook-id"] for r in received)
    for txn in txns:
        ok = [a for a in txn["delivery_attempts"] if 200 <= (a["status_code"] or 0) < 300]
        assert len(ok) == 1, f"{txn['id']}: {len(ok)} successful attempts recorded"
        finished = [h for h in txn["history"] if h["enter_state"] == "finished"]
        assert len(finished) == 1, f"{txn['id']} entered finished {len(finished)} times"
        arrived = by_webhook_id[txn["id"]]
        assert arrived >= 1, f"{txn['id']} never reached the receiver"
        unrecorded = arrived - len(txn["delivery_attempts"])
        assert unrecorded <= crashes, f"{txn['id']} arrived {arrived} times: {txn}"
