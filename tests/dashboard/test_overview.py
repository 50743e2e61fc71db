"""The overview page: its stat cards and inline SVG charts for seeded events, its delivery
health rows, and the empty state, through the app with a signed-in session."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from html import unescape

import httpx
import pytest

from eventyard.api.app import create_app
from eventyard.clock import FrozenClock, format_us
from eventyard.dashboard.overview import duration_label
from eventyard.services.container import Services, build_services
from eventyard.settings import Settings
from eventyard.store import Store
from tests.conftest import Api, make_api

pytestmark = pytest.mark.anyio

T0 = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
NOW = T0 + 30_000_000
MINUTE = 60_000_000
EMAIL, PASSWORD = "ada@example.com", "correct horse battery staple"


@dataclass
class Site:
    api: Api
    client: httpx.AsyncClient
    services: Services

    def overview_url(self, env: str = "test") -> str:
        return f"/dashboard/p/{self.api.project_id}/{env}/"


@pytest.fixture
async def site(store: Store, settings: Settings) -> AsyncIterator[Site]:
    services = build_services(store, settings, FrozenClock(NOW))
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://eventyard.test") as c:
        api = await make_api(c, services, "acme")
        await services.accounts.create_user(EMAIL, PASSWORD)
        form = await c.get("/dashboard/login")
        match = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert match, form.text
        signed = await c.post(
            "/dashboard/login",
            data={"csrf": match.group(1), "email": EMAIL, "password": PASSWORD, "next": ""},
        )
        assert signed.status_code in (302, 303), signed.text
        yield Site(api, c, services)


async def page(site: Site, env: str = "test") -> str:
    got = await site.client.get(site.overview_url(env))
    assert got.status_code == 200, got.text
    assert "style=" not in got.text  # the CSP forbids inline styles
    return got.text


def stat(html: str, name: str) -> str:
    match = re.search(rf'id="stat-{name}">([^<]*)<', html)
    assert match, f"no stat-{name}"
    return match.group(1)


def svgs(html: str) -> list[str]:
    return re.findall(r'<svg class="chart"[^>]*>.*?</svg>', html, re.S)


async def send_at(api: Api, trigger: str, at_us: int) -> None:
    sent = await api.send(trigger, "u1", timestamp=format_us(at_us))
    assert sent.status_code == 201, sent.text


async def test_the_overview_charts_seeded_events(site: Site) -> None:
    api = site.api
    made = await api.post("/v1/consumers", {"name": "warehouse", "kind": "pull"})
    assert made.status_code == 201
    for _ in range(3):
        await send_at(api, "signup", T0 + 5_000_000)  # the current minute
    await send_at(api, "purchase", T0 - 10 * MINUTE)
    await send_at(api, "purchase", T0 - 5 * 3600 * 1_000_000)  # in the day only
    for i in range(7):  # seven more triggers: the quietest share "Other triggers"
        await send_at(api, f"extra_{i}", T0 - 2 * 3600 * 1_000_000)

    html = await page(site)

    assert stat(html, "hour") == "4"
    assert stat(html, "day") == "12"
    assert stat(html, "backlog") == "12"  # one pending transaction per event
    assert stat(html, "failing") == "0"
    hour_svg, day_svg = svgs(html)
    for svg, chart in ((hour_svg, "chart-hour"), (day_svg, "chart-day")):
        assert 'role="img"' in svg
        assert f'aria-labelledby="{chart}-title {chart}-desc"' in svg
        assert f'<title id="{chart}-title">' in svg
    assert "4 events in the last hour" in unescape(hour_svg)
    assert "The busiest minute began at 00:00 UTC with 3 events." in hour_svg
    # The current minute's column: three signup events in the busiest trigger's colour.
    assert "00:00 to 00:01 UTC, 3 events: signup 3" in hour_svg
    assert re.search(r'<rect class="series-\d" [^>]*height="[\d.]+"/>', hour_svg)
    assert "12 events in the last 24 hours" in unescape(day_svg)
    assert "series-other" in day_svg
    assert "Other triggers" in html
    # Each chart's numbers are in a table too.
    assert html.count('<details class="chart-data">') == 3
    assert '<th scope="row">23:50</th>' in html  # the purchase minute, in the hour's table
    assert "Delivery health, last hour" in html
    assert "warehouse" in html
    assert "No events yet" not in html


async def test_pending_deliveries_show_in_the_cards_and_the_health_rows(site: Site) -> None:
    api = site.api
    made = await api.post("/v1/consumers", {"name": "warehouse", "kind": "pull"})
    consumer = made.json()["id"]
    for _ in range(4):
        await api.send("signup")
    claimed = await api.post(f"/v1/consumers/{consumer}/claim", {"limit": 2})
    first, second = (t["id"] for t in claimed.json()["data"])
    for txn, state in ((first, "finished"), (second, "failed")):
        await api.client.patch(f"/v1/transactions/{txn}", json={"state": state}, headers=api.auth())

    html = await page(site)

    assert stat(html, "backlog") == "2"
    assert stat(html, "failing") == "1"
    assert "Success rate of warehouse: 50%" in html
    assert 'class="health-bad" width="50.0"' in html
    assert "Pending for warehouse: 2" in html


async def test_an_empty_environment_shows_how_to_send_a_first_event(site: Site) -> None:
    await send_at(site.api, "signup", T0)  # in test; the live environment stays empty
    html = await page(site, "live")
    assert "No events yet in live" in html
    assert f'href="/dashboard/p/{site.api.project_id}/live/triggers"' in html
    assert "curl -X POST http://eventyard.test/v1/events" in html
    assert svgs(html) == []
    assert stat(html, "hour") == "0"
    assert stat(html, "day") == "0"
    assert "No consumers in live yet" in html
    # The test environment, with its event, has charts.
    assert len(svgs(await page(site, "test"))) == 2


async def test_the_overview_needs_a_session(site: Site) -> None:
    transport = httpx.ASGITransport(app=create_app(site.services))
    async with httpx.AsyncClient(transport=transport, base_url="http://eventyard.test") as c:
        got = await c.get(site.overview_url())
    assert got.status_code in (302, 303)
    assert got.headers["location"].startswith("/dashboard/login?next=")


# --- "Delivery lag, now": the numbers of GET /v1/status ---------------------------------------


def lag_panel(html: str) -> str:
    match = re.search(r'<section class="card" aria-labelledby="lag-title".*?</section>', html, re.S)
    assert match, "no delivery lag panel"
    return unescape(match.group(0))


def cells(panel: str, name: str) -> list[str]:
    row = re.search(rf'<tr><th scope="row">{name}</th>(.*?)</tr>', panel, re.S)
    assert row, f"no row for {name}"
    return [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1))]


async def test_the_lag_panel_shows_backlog_waiting_and_the_worker(site: Site) -> None:
    api = site.api
    made = await api.post("/v1/consumers", {"name": "warehouse", "kind": "pull"})
    consumer = made.json()["id"]
    for _ in range(3):
        await api.send("signup")
    clock = site.services.clock
    assert isinstance(clock, FrozenClock)
    clock.advance(90)
    claimed = await api.post(f"/v1/consumers/{consumer}/claim", {"limit": 1})
    assert len(claimed.json()["data"]) == 1

    panel = lag_panel(await page(site))

    assert "queryable the moment they are accepted" in panel
    assert re.search(r'id="worker-state"[^>]*>not running<', panel)
    pending, in_flight, waiting, p50, p99, oldest = cells(panel, "warehouse")
    assert (pending, in_flight) == ("3", "1")
    assert waiting == "2 min"  # two still unclaimed, due for 90 s
    assert (p50, p99) == ("none", "none")  # a pull consumer has no webhook attempts
    assert oldest == "1 min ago"


async def test_an_environment_without_consumers_shows_no_table(site: Site) -> None:
    panel = lag_panel(await page(site, "live"))
    assert "<table>" not in panel


def test_durations_read_short() -> None:
    assert duration_label(0) == "0 ms"
    assert duration_label(850_000) == "850 ms"
    assert duration_label(3_240_000) == "3.2 s"
    assert duration_label(240_000_000) == "4 min"
    assert duration_label(9_000_000_000) == "2.5 h"
