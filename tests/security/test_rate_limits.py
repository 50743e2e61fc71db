"""Per-key rate limits and sign-in throttling: token buckets, held across server processes.

With `rate_limit_per_second` set, each API key has a bucket of `rate_limit_burst` requests
that refills at that rate. A request that finds it empty is refused 429 with `Retry-After`
and the RateLimit fields (draft-ietf-httpapi-ratelimit-headers-11), stores nothing, and
leaves every other key alone. On PostgreSQL the bucket is a row that every server process
takes from, so two processes together let through exactly one burst; the dashboard's
sign-in tries per email are a bucket in the same table.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from eventyard.api.app import create_app
from eventyard.clock import SystemClock
from eventyard.services.container import build_services
from eventyard.settings import Settings
from eventyard.store import Store
from tests.conftest import Api, make_api
from tests.e2e.server import ServerProcess, init_project
from tests.e2e.test_users_cli import PASSWORD, _sign_in
from tests.security.conftest import add_dashboard_user, start_servers

pytestmark = pytest.mark.anyio

BURST = 3
RATE = 0.2  # a token every 5 s: nothing refills during the test
POLICY = f'"per-key";q={BURST};w=15'


@pytest.fixture
async def limited(store: Store, settings: Settings) -> AsyncIterator[Api]:
    services = build_services(
        store,
        settings.replace(rate_limit_per_second=RATE, rate_limit_burst=BURST),
        SystemClock(),
    )
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://eventyard.test") as c:
        yield await make_api(c, services, "limited")


async def test_a_key_gets_its_burst_then_429_with_retry_after_and_ratelimit_fields(
    limited: Api,
) -> None:
    seen = []
    for n in range(BURST):
        sent = await limited.send("signup", f"u{n}")
        assert sent.status_code == 201, sent.text
        assert sent.headers["RateLimit-Policy"] == POLICY
        seen.append(sent.headers["RateLimit"])
    assert [re.sub(r";t=\d+", "", s) for s in seen] == [
        '"per-key";r=2',
        '"per-key";r=1',
        '"per-key";r=0',
    ]
    refused = await limited.send("signup", "over")
    assert refused.status_code == 429, refused.text
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited"
    assert f"burst of {BURST} requests" in refused.json()["detail"]
    assert "0.2 a second" in refused.json()["detail"]
    assert 1 <= int(refused.headers["Retry-After"]) <= 5
    assert refused.headers["RateLimit-Policy"] == POLICY
    assert refused.headers["RateLimit"].startswith('"per-key";r=0;t=')
    # Nothing of the refused request was stored; the other key of the project still works.
    listed = await limited.get("/v1/events", params={"limit": "100"})
    assert listed.status_code == 429  # a read by the same key waits too
    other = await limited.send("signup", "other key", key=limited.live_key)
    assert other.status_code == 201, other.text
    events = await limited.get("/v1/events", key=limited.live_key, params={"user_id": "over"})
    assert events.json()["data"] == []


async def test_requests_sent_at_once_get_exactly_one_burst(limited: Api) -> None:
    sent = await asyncio.gather(*(limited.send("signup", f"u{n}") for n in range(BURST * 4)))
    assert sorted(r.status_code for r in sent) == [201] * BURST + [429] * BURST * 3
    remaining = sorted(r.headers["RateLimit"].split(";")[1] for r in sent if r.status_code == 201)
    assert remaining == [f"r={n}" for n in range(BURST)]


async def test_limits_are_off_by_default(api: Api) -> None:
    for n in range(BURST * 3):
        sent = await api.send("signup", f"u{n}")
        assert sent.status_code == 201, sent.text
        assert "RateLimit" not in sent.headers


def test_a_bad_rate_setting_names_the_variable() -> None:
    from eventyard.settings import SettingsError

    with pytest.raises(SettingsError, match="EVENTYARD_RATE_LIMIT_PER_SECOND"):
        Settings.from_env({"EVENTYARD_RATE_LIMIT_PER_SECOND": "-1"})


@pytest.mark.postgres
def test_two_server_processes_on_postgresql_share_one_bucket_per_key(
    pg_url: str, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    burst = 10
    keys = init_project(pg_url, "shop")["keys"]
    env = {"EVENTYARD_RATE_LIMIT_PER_SECOND": "0.01", "EVENTYARD_RATE_LIMIT_BURST": str(burst)}
    servers = start_servers(server_factory, pg_url, tmp_path, env=env)

    def send(n: int) -> int:
        sent = httpx.post(
            servers[n % 2].url + "/v1/events",
            json={"trigger": "signup", "user_id": f"u{n}"},
            headers={"Authorization": f"Bearer {keys['test']}"},
            timeout=10,
        )
        return sent.status_code

    # Three bursts' worth at once, 30 in flight, half to each process.
    with ThreadPoolExecutor(max_workers=30) as pool:
        statuses = list(pool.map(send, range(burst * 3)))
    assert sorted(statuses) == [201] * burst + [429] * burst * 2, statuses
    assert send(0) == 429
    assert send(1) == 429
    # The other environment's key has a bucket of its own.
    other = httpx.post(
        servers[1].url + "/v1/events",
        json={"trigger": "signup", "user_id": "live"},
        headers={"Authorization": f"Bearer {keys['live']}"},
        timeout=10,
    )
    assert other.status_code == 201, other.text
    stored = httpx.get(
        servers[0].url + "/v1/events",
        params={"limit": "100"},
        headers={"Authorization": f"Bearer {keys['test']}"},
        timeout=10,
    )
    assert stored.status_code == 429  # the test key is still out of tokens, for reads too
    assert "Retry-After" in stored.headers
    stored = httpx.get(
        servers[0].url + "/v1/events",
        params={"limit": "100"},
        headers={"Authorization": f"Bearer {keys['live']}"},
        timeout=10,
    )
    assert [e["user_id"] for e in stored.json()["data"]] == ["live"]


@pytest.mark.postgres
def test_sign_in_tries_are_counted_across_server_processes(
    pg_url: str, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    add_dashboard_user(pg_url)
    servers = start_servers(server_factory, pg_url, tmp_path)
    statuses = [
        _sign_in(servers[n % 2].url, "Ada@example.com", "wrong password!").status_code
        for n in range(6)
    ]
    assert statuses == [401] * 5 + [429], statuses
    # Even the right password waits now, on either process; another email does not.
    right = _sign_in(servers[0].url, "ada@example.com", PASSWORD)
    assert right.status_code == 429
    assert 1 <= int(right.headers["Retry-After"]) <= 30
    assert "5 tries at once, then one per 30 s" in right.text
    assert _sign_in(servers[1].url, "bob@example.com", "wrong password!").status_code == 401
