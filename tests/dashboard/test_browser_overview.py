"""The overview in a real Chromium, on a server of its own so the counts are exact.

What a person checks: the stat cards count what was sent, the charts are drawn (an SVG
image with a name, a legend per trigger) with their numbers a click away, a failing
consumer shows in delivery health, and `GET /v1/stats` says the same.
"""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.dashboard.conftest import (
    DashboardServer,
    ThreadedReceiver,
    create_webhook_consumer,
    send,
    until,
)
from tests.receiver import Reply


def test_a_fresh_project_says_how_to_send_the_first_event(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    page.goto(dashboard_server.base("test") + "/")  # nothing is ever sent to test here
    expect(page.get_by_role("heading", name="No events yet in test")).to_be_visible()
    expect(page.locator("main pre")).to_contain_text(f"{dashboard_server.url}/v1/events")
    expect(page.locator("#stat-day")).to_have_text("0")


def test_the_overview_counts_and_charts_what_was_sent(
    signed_in_page: Any, dashboard_server: DashboardServer, receiver: ThreadedReceiver
) -> None:
    page = signed_in_page
    receiver.answer(Reply(503, body=b"busy"))
    create_webhook_consumer(page, dashboard_server, "audit log", receiver.url("/audit"), "purchase")
    for i in range(3):
        send(dashboard_server, "signup", f"s-{i}", {"i": i})
    for i in range(2):
        send(dashboard_server, "purchase", f"p-{i}", {"value": 10 + i})
    until(lambda: len(receiver.requests) >= 6, what="both purchases failing three times")

    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Overview").click()
    expect(page.locator("#stat-hour")).to_have_text("5")
    expect(page.locator("#stat-day")).to_have_text("5")
    until(
        lambda: (
            page.reload() is not None and page.locator("#stat-failing").inner_text().strip() != "0"
        ),
        what="failing deliveries to be counted",
    )
    for chart in ("chart-hour", "chart-day"):
        svg = page.locator(f"svg[aria-labelledby^='{chart}-title']")
        expect(svg).to_be_visible()
        expect(svg).to_have_attribute("role", "img")
        assert svg.locator("rect").count() > 2  # columns were drawn
        title = page.locator(f"#{chart}-title").text_content() or ""
        expect(page.get_by_role("img", name=re.compile(re.escape(title)))).to_have_count(1)
    legend = page.get_by_role("list", name="Triggers").first
    expect(legend).to_contain_text("signup")
    expect(legend).to_contain_text("purchase")
    expect(legend).to_contain_text("3")
    # The numbers behind a chart, a click away.
    page.get_by_text("The numbers").first.click()
    table = page.get_by_role("region", name=re.compile(", as a table")).first
    expect(table).to_be_visible()
    expect(table).to_contain_text("3")

    health = page.get_by_role("region", name="Delivery health, last hour")
    expect(health).to_contain_text("audit log")
    expect(health).to_contain_text("failing deliveries: 2")
    expect(health.get_by_role("img", name=re.compile("Success rate of audit log"))).to_be_visible()

    with dashboard_server.api() as api:
        stats = api.get("/v1/stats", params={"window": "hour"}).json()
    assert stats["totals"]["total"] == 5
    assert {t["trigger"]: t["total"] for t in stats["triggers"]} == {"signup": 3, "purchase": 2}
    assert page.locator("#stat-failing").inner_text().strip() == str(stats["failing_deliveries"])
    assert not page.script_errors
