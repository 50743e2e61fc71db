"""The real Segment and RudderStack Python clients against a running eventyard.

Each test starts `eventyard serve` on a free port, points a client's host at
`http://127.0.0.1:PORT/segment`, sends calls, flushes, and reads the events back through the
native API (`GET /v1/events?source=segment`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from rudderstack.analytics import Client as RudderClient
from rudderstack.analytics.request import APIError as RudderAPIError
from segment.analytics import Client as SegmentClient
from segment.analytics.request import APIError as SegmentAPIError

from tests.e2e.server import ServerProcess, init_project


@pytest.fixture
def server(store_url: str, tmp_path: Path) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    keys: dict[str, str] = init_project(store_url, "shop")["keys"]
    process = ServerProcess(store_url, tmp_path / "server.log", worker=False)
    process.start()
    yield process, keys
    process.stop()


def read_events(url: str, key: str) -> list[dict[str, Any]]:
    response = httpx.get(
        f"{url}/v1/events",
        params={"source": "segment"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def test_segment_client_sends_every_call_type(
    server: tuple[ServerProcess, dict[str, str]],
) -> None:
    process, keys = server
    errors: list[Exception] = []
    client = SegmentClient(
        keys["live"],
        host=f"{process.url}/segment",
        gzip=True,
        on_error=lambda exc, batch: errors.append(exc),
    )
    client.track("u1", "Order Completed", {"total": 42}, message_id="seg-1")
    client.identify("u1", {"email": "ann@example.com"})
    client.page("u1", "Docs", "Install", {"path": "/docs"})
    client.screen(anonymous_id="device-9", name="Home")
    client.group("u1", "acme", {"plan": "pro"})
    client.alias("device-9", "u1")
    client.flush()
    client.shutdown()
    assert errors == []
    stored = {e["trigger"]: e for e in read_events(process.url, keys["live"])}
    assert set(stored) == {"order_completed", "identify", "page", "screen", "group", "alias"}
    track = stored["order_completed"]
    assert track["user_id"] == "u1"
    assert track["idempotency_key"] == "seg-1"
    assert track["payload"]["event"] == "Order Completed"
    assert track["payload"]["properties"] == {"total": 42}
    assert track["payload"]["context"]["library"]["name"] == "analytics-python"
    assert stored["screen"]["user_id"] == "anon:device-9"
    assert stored["page"]["payload"]["name"] == "Install"
    assert all(e["environment"] == "live" for e in stored.values())


def test_rudder_client_sends_gzipped_batches_and_both_clients_read_refusals(
    server: tuple[ServerProcess, dict[str, str]],
) -> None:
    process, keys = server
    errors: list[Exception] = []
    client = RudderClient(
        keys["test"],
        host=f"{process.url}/segment",
        on_error=lambda exc, batch: errors.append(exc),
    )
    client.track("r1", "Plan Upgraded", {"to": "pro"})
    client.identify("r1", {"name": "Rudy"})
    client.page("r1", name="Pricing")
    client.flush()
    client.shutdown()
    assert errors == []
    stored = read_events(process.url, keys["test"])
    assert sorted(e["trigger"] for e in stored) == ["identify", "page", "plan_upgraded"]
    assert {e["user_id"] for e in stored} == {"r1"}
    assert all(e["environment"] == "test" for e in stored)

    # Refusals: JSON with code and message, which the clients turn into APIError.
    minted = httpx.post(
        f"{process.url}/v1/keys",
        json={"scopes": ["read"], "name": "reader"},
        headers={"Authorization": f"Bearer {keys['live']}"},
        timeout=10,
    )
    reader = minted.json()["key"]
    seen: list[Exception] = []
    segment = SegmentClient(
        reader, host=f"{process.url}/segment", on_error=lambda e, b: seen.append(e)
    )
    segment.track("u1", "Refused")
    segment.flush()
    segment.shutdown()
    rudder = RudderClient(
        "sk_live_unknown", host=f"{process.url}/segment", on_error=lambda e, b: seen.append(e)
    )
    rudder.track("u1", "Refused")
    rudder.flush()
    rudder.shutdown()
    assert len(seen) == 2
    refused, unknown = seen
    assert isinstance(refused, SegmentAPIError)
    assert (refused.status, refused.code) == (403, "forbidden")
    assert isinstance(unknown, RudderAPIError)
    assert (unknown.status, unknown.code) == (401, "unauthenticated")
    assert read_events(process.url, keys["live"]) == []
