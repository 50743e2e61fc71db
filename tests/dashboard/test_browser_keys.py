"""Settings → Secret keys, as the seed walks through it, in a real Chromium.

"Head over to the Secret Keys section in the Settings page… + Create secret key… name it…
Create": the secret is shown once, and it works against the API at once; revoking it asks
first and then the API refuses it.
"""

from __future__ import annotations

import re
from typing import Any

import httpx
from playwright.sync_api import expect

from tests.dashboard.conftest import DashboardServer


def _send(server: DashboardServer, key: str, user_id: str = "u1") -> httpx.Response:
    return httpx.post(
        server.url + "/v1/events",
        headers={"Authorization": f"Bearer {key}"},
        json={"trigger": "key_check", "user_id": user_id, "payload": {"n": 1}},
        timeout=10,
    )


def test_create_a_secret_key_and_use_it_with_the_api_then_revoke_it(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    nav = page.get_by_role("navigation", name="Sections")
    nav.get_by_role("link", name=re.compile("Secret keys")).click()
    expect(page.get_by_role("heading", name="Secret keys")).to_be_visible()

    page.get_by_text("+ Create secret key").click()
    form = page.get_by_role("form", name="Create secret key")
    form.get_by_label("Name your secret key").fill("billing server")
    expect(form.get_by_label("Environment")).to_have_value("live")
    expect(form.get_by_label("write")).to_be_checked()
    form.get_by_label("read").check()
    form.get_by_role("button", name="Create").click()

    shown = page.get_by_role("region", name=re.compile("billing server"))
    expect(shown).to_contain_text("This is the only time the secret is shown")
    secret = page.get_by_label(re.compile(r"^Secret key \(live\)")).input_value()
    assert secret.startswith("sk_live_"), secret
    expect(page.get_by_role("button", name="Copy").first).to_be_visible()

    # The key works with the API straight away, in its own environment.
    sent = _send(dashboard_server, secret)
    assert sent.status_code == 201, sent.text
    assert sent.json()["environment"] == "live"
    read = httpx.get(
        dashboard_server.url + f"/v1/events/{sent.json()['id']}",
        headers={"Authorization": f"Bearer {secret}"},
        timeout=10,
    )
    assert read.status_code == 200

    # The list shows it (name, prefix, scopes, environment, last used); the secret is gone.
    page.get_by_role("navigation", name="Sections").get_by_role(
        "link", name=re.compile("Secret keys")
    ).click()
    expect(page.get_by_role("heading", name="Secret keys")).to_be_visible()
    expect(page.get_by_role("region", name=re.compile("billing server"))).to_have_count(0)
    assert secret not in page.content()
    row = page.get_by_role("row", name=re.compile("billing server"))
    expect(row).to_contain_text("read, write")
    expect(row).to_contain_text("live")
    expect(row).to_contain_text("active")
    expect(row.locator("td").nth(5)).to_contain_text("ago")  # last used: just now
    prefix = row.locator("code").inner_text().rstrip("…")
    assert secret.startswith(prefix)
    assert len(prefix) < len(secret)

    # Revoking asks first; saying no changes nothing.
    dialogs: list[str] = []

    def dismiss(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", dismiss)
    row.get_by_role("button", name=re.compile("Revoke key billing server")).click()
    page.wait_for_timeout(300)
    assert dialogs
    assert "billing server" in dialogs[0]
    assert _send(dashboard_server, secret).status_code == 201

    def accept(dialog: Any) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    row.get_by_role("button", name=re.compile("Revoke key billing server")).click()
    expect(page.get_by_role("status")).to_contain_text("The key is revoked")
    row = page.get_by_role("row", name=re.compile("billing server"))
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button", name=re.compile("Revoke"))).to_have_count(0)
    assert len(dialogs) == 2
    assert _send(dashboard_server, secret).status_code == 401
    assert not page.script_errors


def test_a_test_key_sends_test_events_only(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    page.goto(dashboard_server.base() + "/keys")
    page.get_by_text("+ Create secret key").click()
    form = page.get_by_role("form", name="Create secret key")
    form.get_by_label("Name your secret key").fill("staging")
    form.get_by_label("Environment").select_option("test")
    form.get_by_role("button", name="Create").click()
    secret = page.get_by_label(re.compile(r"^Secret key \(test\)")).input_value()
    assert secret.startswith("sk_test_")
    sent = _send(dashboard_server, secret)
    assert sent.status_code == 201, sent.text
    assert sent.json()["environment"] == "test"
    row = page.get_by_role("row", name=re.compile("staging"))
    expect(row.locator(".test-mark")).to_be_visible()


def test_a_key_without_a_name_or_scopes_is_not_created(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    page.goto(dashboard_server.base() + "/keys")
    before = page.get_by_role("region", name="Secret keys").get_by_role("row").count()
    page.get_by_text("+ Create secret key").click()
    form = page.get_by_role("form", name="Create secret key")
    form.get_by_label("Name your secret key").fill("no scopes")
    form.get_by_label("write").uncheck()
    form.get_by_role("button", name="Create").click()
    expect(page.get_by_role("alert")).to_contain_text("Choose at least one scope")
    expect(form.get_by_label("Name your secret key")).to_have_value("no scopes")
    assert page.get_by_role("region", name="Secret keys").get_by_role("row").count() == before
    expect(page.get_by_label(re.compile(r"^Secret key \("))).to_have_count(0)


def test_the_copy_button_puts_the_secret_on_the_clipboard(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    page.context.grant_permissions(
        ["clipboard-read", "clipboard-write"], origin=dashboard_server.url
    )
    page.goto(dashboard_server.base() + "/keys")
    page.get_by_text("+ Create secret key").click()
    form = page.get_by_role("form", name="Create secret key")
    form.get_by_label("Name your secret key").fill("copied")
    form.get_by_role("button", name="Create").click()
    secret = page.get_by_label(re.compile(r"^Secret key \(live\)")).input_value()
    copy = page.get_by_role("region", name=re.compile("copied")).get_by_role("button")
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == secret
    expect(page.locator("#announcer")).to_have_text("Copied")  # said to screen readers
