"""The Consumers pages in a real Chromium, with a real local receiver behind the webhook.

The signing secret the page shows once verifies what the receiver gets (Standard Webhooks);
pausing holds deliveries back and resuming sends them; rotating shows a new secret that
verifies the next delivery; replay sends past events again; pull consumers and deleting.
"""

from __future__ import annotations

import re
from typing import Any

import standardwebhooks
from playwright.sync_api import expect

from tests.dashboard.conftest import (
    DashboardServer,
    ThreadedReceiver,
    create_webhook_consumer,
    send,
    until,
)


def _accept_dialogs(page: Any) -> list[str]:
    seen: list[str] = []

    def accept(dialog: Any) -> None:
        seen.append(dialog.message)
        dialog.accept()

    page.on("dialog", accept)
    return seen


def test_a_webhook_consumer_signs_with_the_secret_shown_and_pauses_resumes_rotates_replays(
    signed_in_page: Any, dashboard_server: DashboardServer, receiver: ThreadedReceiver
) -> None:
    page = signed_in_page
    consumer_id, secret = create_webhook_consumer(
        page, dashboard_server, "crm sync", receiver.url("/crm"), "crm_update"
    )
    expect(page.get_by_role("status")).to_contain_text("The consumer is created")

    # A delivery, signed with the secret the page showed.
    send(dashboard_server, "crm_update", "c-1", {"n": 1})
    until(lambda: len(receiver.requests) >= 1, what="the first delivery")
    first = receiver.requests[0]
    verified = standardwebhooks.Webhook(secret).verify(first.body, first.headers)
    assert verified["user_id"] == "c-1"

    # The list: kind, URL, state, health.
    page.goto(dashboard_server.base() + "/consumers")
    row = page.get_by_role("row", name=re.compile("crm sync"))
    expect(row).to_contain_text("webhook")
    expect(row).to_contain_text(receiver.url("/crm"))
    expect(row).to_contain_text("enabled")
    expect(row).to_contain_text("100.0 %")
    row.get_by_role("link", name="crm sync").click()

    # Pause: new events wait (pending), nothing reaches the receiver.
    page.get_by_role("button", name="Pause").click()
    expect(page.get_by_role("status")).to_contain_text("paused")
    expect(page.get_by_role("heading", level=1)).to_contain_text("paused")
    send(dashboard_server, "crm_update", "c-2", {"n": 2})
    page.wait_for_timeout(1500)
    assert len(receiver.requests) == 1
    page.reload()
    expect(page.get_by_role("group", name="Health")).to_contain_text(re.compile(r"Pending\s*1"))
    with dashboard_server.api() as api:
        assert api.get(f"/v1/consumers/{consumer_id}").json()["state"] == "paused"

    # Resume: it goes out.
    page.get_by_role("button", name="Resume").click()
    expect(page.get_by_role("status")).to_contain_text("enabled again")
    until(lambda: len(receiver.requests) >= 2, what="the held delivery")
    assert b'"c-2"' in receiver.requests[1].body

    # Rotate the signing secret (it asks first): a new one, shown once, signs from now on.
    dialogs = _accept_dialogs(page)
    page.get_by_label(re.compile("Keep signing with the current secret")).uncheck()
    page.get_by_role("button", name="Rotate signing secret").click()
    expect(page.get_by_role("status")).to_contain_text("rotated")
    assert any("new signing secret" in d for d in dialogs)
    new_secret = page.get_by_label("Signing secret of crm sync").input_value()
    assert new_secret.startswith("whsec_")
    assert new_secret != secret
    send(dashboard_server, "crm_update", "c-3", {"n": 3})
    until(lambda: len(receiver.requests) >= 3, what="a delivery after rotation")
    third = receiver.requests[2]
    standardwebhooks.Webhook(new_secret).verify(third.body, third.headers)
    try:
        standardwebhooks.Webhook(secret).verify(third.body, third.headers)
    except standardwebhooks.WebhookVerificationError:
        pass
    else:
        raise AssertionError("the old secret still verifies after a rotation without overlap")

    # Replay since the form's default (a day ago): the three events go out again.
    page.goto(dashboard_server.base() + f"/consumers/{consumer_id}")
    expect(page.get_by_label("Replay events since (UTC)")).not_to_have_value("")
    page.get_by_role("button", name="Replay").click()
    expect(page.get_by_role("status")).to_contain_text("Replay queued: 3 transaction(s)")
    until(lambda: len(receiver.requests) >= 6, what="three replayed deliveries")
    replayed = {r.json()["user_id"] for r in receiver.requests[3:6]}  # type: ignore[index]
    assert replayed == {"c-1", "c-2", "c-3"}


def test_a_pull_consumer_and_deleting_one(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    page.goto(dashboard_server.base() + "/consumers/new")
    page.get_by_role("radio", name=re.compile("Pull")).check()
    page.get_by_label("Name", exact=True).fill("nightly batch")
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("status")).to_contain_text("The consumer is created")
    expect(page.get_by_role("heading", level=1)).to_contain_text("nightly batch")
    expect(page.locator("main")).to_contain_text("/claim")
    consumer_id = page.locator("#consumer-id-value").inner_text()
    with dashboard_server.api() as api:
        got = api.get(f"/v1/consumers/{consumer_id}")
    assert got.status_code == 200
    assert got.json()["kind"] == "pull"

    dialogs = _accept_dialogs(page)
    page.get_by_role("button", name="Delete consumer").click()
    expect(page.get_by_role("status")).to_contain_text("deleted")
    assert any("nightly batch" in d for d in dialogs)
    expect(page.get_by_role("row", name=re.compile("nightly batch"))).to_have_count(0)
    with dashboard_server.api() as api:
        assert api.get(f"/v1/consumers/{consumer_id}").status_code == 404


def test_a_consumer_that_is_not_valid_comes_back_with_the_errors(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    page.goto(dashboard_server.base() + "/consumers/new")
    page.get_by_label("Name", exact=True).fill("no url")
    page.get_by_role("button", name="Create").click()  # a webhook needs a URL
    expect(page.get_by_role("alert")).to_contain_text("The consumer was not created")
    expect(page.get_by_label("Name", exact=True)).to_have_value("no url")
