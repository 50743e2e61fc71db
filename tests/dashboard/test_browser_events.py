"""Events in a real Chromium: arriving live, shown escaped, and what each consumer did.

A webhook consumer created through the dashboard points at a real local receiver
(tests/receiver.py); the server allows private URLs and retries after 0, 1 and 1 s, so a
failing receiver's attempts are on the event's page within seconds, and Retry, once the
receiver is fixed, delivers it.
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

XSS_SCRIPT = "<script>window.__xss=1</script>"
XSS_IMG = '<img src=x onerror="window.__xss=2;alert(1)">'


def start_live(page: Any) -> None:
    """Press Live and wait until the stream answers, so no event slips in before it."""
    toggle = page.get_by_role("button", name="Live")
    expect(toggle).to_be_visible()
    with page.expect_response(lambda r: "/events/stream" in r.url) as stream:
        toggle.click()
    assert stream.value.status == 200
    assert stream.value.headers["content-type"].startswith("text/event-stream")
    expect(toggle).to_have_attribute("aria-pressed", "true")


def test_an_event_appears_live_without_reloading(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Events").click()
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    page.evaluate("window.__sameDocument = true")  # gone if the page reloads
    start_live(page)

    sent = send(dashboard_server, "live_signup", "live-user-1", {"plan": "pro"})
    rows = page.get_by_role("region", name="Events").locator("tbody tr")
    row = rows.filter(has_text="live-user-1")
    expect(row).to_be_visible()
    expect(row).to_contain_text("live_signup")
    expect(row).to_contain_text("api")
    expect(row).to_contain_text('{"plan":"pro"}')
    expect(page.locator("#live-status")).to_contain_text("1 new event")
    # A second one goes on top.
    send(dashboard_server, "live_signup", "live-user-2", {"plan": "free"})
    expect(rows.first).to_contain_text("live-user-2")
    expect(page.locator("#live-status")).to_contain_text("2 new events")
    assert page.evaluate("window.__sameDocument") is True

    # The row links to the event's page, which shows what the API has.
    row.get_by_role("link").first.click()
    expect(page).to_have_url(re.compile(f"/events/{sent['id']}$"))
    expect(page.locator("#event-id-value")).to_have_text(sent["id"])
    expect(page.locator("pre.payload")).to_contain_text('"plan": "pro"')
    with dashboard_server.api() as api:
        assert api.get(f"/v1/events/{sent['id']}").json()["user_id"] == "live-user-1"
    assert not page.script_errors


def test_live_follows_the_trigger_filter(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    send(dashboard_server, "filtered_in", "seed", {})  # so the trigger is in the select
    page = signed_in_page
    page.goto(dashboard_server.base() + "/events?trigger=filtered_in")
    start_live(page)
    send(dashboard_server, "filtered_out", "not-shown", {})
    send(dashboard_server, "filtered_in", "shown", {})
    table = page.get_by_role("region", name="Events")
    expect(table.locator("tbody tr").filter(has_text="shown").first).to_be_visible()
    expect(table).not_to_contain_text("not-shown")


def test_a_payload_with_markup_is_shown_as_text_and_runs_nothing(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(dashboard_server.base() + "/events")
    start_live(page)
    payload = {"note": XSS_SCRIPT, "html": XSS_IMG}
    sent = send(dashboard_server, "xss_check", XSS_IMG, payload)

    # Arriving live: the text is in the row, no element was made from it.
    table = page.get_by_role("region", name="Events")
    row = table.locator("tbody tr").filter(has_text="xss_check")
    expect(row).to_contain_text("<script>window.__xss=1</script>")
    expect(row).to_contain_text("<img src=x")
    assert table.locator("img, tbody script").count() == 0

    # Rendered by the server: the same.
    page.reload()
    row = page.get_by_role("region", name="Events").locator("tbody tr").filter(has_text="xss_check")
    expect(row).to_contain_text("<script>window.__xss=1</script>")
    assert page.locator("main img").count() == 0

    # The event's page shows the payload as JSON text.
    page.goto(dashboard_server.base() + f"/events/{sent['id']}")
    payload_box = page.locator("pre.payload")
    expect(payload_box).to_contain_text(XSS_SCRIPT)
    expect(payload_box).to_contain_text("<img src=x onerror=")
    expect(page.locator("main")).to_contain_text(XSS_IMG)  # the user id
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__xss") is None
    assert dialogs == []


def test_a_failing_webhook_shows_its_attempts_and_retry_delivers_once_it_is_fixed(
    signed_in_page: Any, dashboard_server: DashboardServer, receiver: ThreadedReceiver
) -> None:
    receiver.answer(Reply(500, body=b"receiver is down for maintenance"))
    page = signed_in_page
    consumer_id, _ = create_webhook_consumer(
        page, dashboard_server, "billing hook", receiver.url("/hooks/billing"), "payment_hook"
    )
    sent = send(dashboard_server, "payment_hook", "payer-1", {"value": 42})

    # Three attempts (0, 1, 1 s), all 500: the transaction fails.
    until(lambda: len(receiver.requests) >= 3, what="three attempts at the receiver")
    until(
        lambda: (
            page.goto(dashboard_server.base() + f"/events/{sent['id']}") is not None
            and page.locator(".txn .state-failed").count() > 0
        ),
        what="the transaction to fail",
    )
    section = page.get_by_role("region", name=re.compile(r"^billing hook"))
    expect(section).to_contain_text("failed")
    expect(section.get_by_role("note")).to_contain_text("3 attempts")
    attempts = page.get_by_role("region", name="Webhook attempts to billing hook")
    attempt_rows = attempts.locator("tbody tr")
    expect(attempt_rows).to_have_count(3)
    for i in range(3):
        expect(attempt_rows.nth(i)).to_contain_text("500")
        expect(attempt_rows.nth(i)).to_contain_text("receiver is down for maintenance")
    history = page.get_by_role("region", name="State history of billing hook")
    expect(history).to_contain_text("failed")
    transaction_id = section.locator("dl.facts code").first.inner_text()
    with dashboard_server.api() as api:
        txn = api.get(f"/v1/transactions/{transaction_id}").json()
    assert txn["state"] == "failed"
    assert txn["consumer_id"] == consumer_id
    assert [a["status_code"] for a in txn["delivery_attempts"]] == [500, 500, 500]

    # Fixed: Retry from the page delivers it.
    receiver.answer(Reply(200, body=b"thanks"))
    section.get_by_role("button", name="Retry").click()
    expect(page.get_by_role("status")).to_contain_text("pending again")
    until(lambda: len(receiver.requests) >= 4, what="the retried delivery")
    until(
        lambda: page.reload() is not None and page.locator(".txn .state-finished").count() > 0,
        what="the transaction to finish",
    )
    section = page.get_by_role("region", name=re.compile(r"^billing hook"))
    expect(section.get_by_role("button", name="Retry")).to_be_visible()  # finished: again
    attempt_rows = page.get_by_role("region", name="Webhook attempts to billing hook").locator(
        "tbody tr"
    )
    expect(attempt_rows).to_have_count(4)
    expect(attempt_rows.nth(3)).to_contain_text("200")
    expect(attempt_rows.nth(3)).to_contain_text("thanks")
    history = page.get_by_role("region", name="State history of billing hook")
    expect(history).to_contain_text(dashboard_server.email)  # who retried it
    with dashboard_server.api() as api:
        txn = api.get(f"/v1/transactions/{transaction_id}").json()
    assert txn["state"] == "finished"
    delivered = receiver.requests[3]
    assert delivered.path == "/hooks/billing"
    assert delivered.headers["webhook-id"]
    assert b'"payer-1"' in delivered.body

    # The events list shows the state, and the consumer's page its health.
    page.goto(dashboard_server.base() + "/events?trigger=payment_hook")
    expect(page.get_by_role("region", name="Events")).to_contain_text("billing hook: finished")
    page.goto(dashboard_server.base() + f"/consumers/{consumer_id}")
    expect(page.get_by_role("group", name="Health")).to_contain_text("1 of 4 attempts")


def test_filters_and_paging(signed_in_page: Any, dashboard_server: DashboardServer) -> None:
    events = [
        {"trigger": "paged", "user_id": f"pager-{i:02d}", "payload": {"i": i}} for i in range(55)
    ]
    with dashboard_server.api() as api:
        sent = api.post("/v1/events/batch", json={"events": events})
    assert sent.status_code == 200, sent.text
    page = signed_in_page
    page.goto(dashboard_server.base() + "/events")
    filters = page.get_by_role("form", name="Filter events")
    filters.get_by_label("Trigger").select_option("paged")
    filters.get_by_role("button", name="Filter").click()
    rows = page.get_by_role("region", name="Events").locator("tbody tr")
    expect(rows).to_have_count(50)
    for i in range(50):
        expect(rows.nth(i)).to_contain_text("paged")
    page.get_by_role("navigation", name="Pages").get_by_role("link", name="Older →").click()
    expect(rows).to_have_count(5)
    expect(page.get_by_role("link", name="Older →")).to_have_count(0)
    shown = {rows.nth(i).locator("td").nth(2).inner_text() for i in range(5)}
    page.get_by_role("link", name="← Newest").click()
    expect(rows).to_have_count(50)
    first_page = {rows.nth(i).locator("td").nth(2).inner_text() for i in range(50)}
    assert not shown & first_page
    assert shown | first_page == {f"pager-{i:02d}" for i in range(55)}

    # One user.
    filters.get_by_label("User ID").fill("pager-07")
    filters.get_by_role("button", name="Filter").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("pager-07")
    # A source that sent nothing, and a time range in the future: nothing matches.
    page.goto(dashboard_server.base() + "/events?trigger=paged&source=segment")
    expect(page.locator("#no-events")).to_contain_text("No events match")
    filters.get_by_label("From (UTC)").fill("2099-01-01T00:00:00")
    filters.get_by_label("Source").fill("")
    filters.get_by_role("button", name="Filter").click()
    expect(page.locator("#no-events")).to_contain_text("No events match")
    # Live follows trigger, user and source only: with a time range it is off.
    expect(page.get_by_role("button", name="Live")).to_be_disabled()
    # Clear brings back everything.
    page.get_by_role("link", name="Clear").click()
    expect(rows).to_have_count(50)


def test_test_events_stay_in_the_test_environment_and_are_marked(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    page.goto(dashboard_server.base() + "/events")
    start_live(page)
    with dashboard_server.api("test") as api:
        sent = api.post("/v1/events", json={"trigger": "sandbox", "user_id": "tester-1"})
    assert sent.status_code == 201, sent.text
    send(dashboard_server, "sandbox", "live-after-test", {})
    # The live page's stream brings the live event, never the test one sent before it.
    table = page.get_by_role("region", name="Events")
    expect(table).to_contain_text("live-after-test")
    expect(table).not_to_contain_text("tester-1")
    page.reload()
    expect(page.get_by_role("region", name="Events")).not_to_contain_text("tester-1")
    page.goto(dashboard_server.base("test") + "/events")
    row = page.get_by_role("region", name="Events").locator("tbody tr").filter(has_text="tester-1")
    expect(row.locator(".test-mark")).to_have_text("test")
    expect(page.get_by_role("note")).to_contain_text("Test environment")
    # The live page of a test event does not exist.
    response = page.goto(dashboard_server.base() + f"/events/{sent.json()['id']}")
    assert response is not None
    assert response.status == 404
