"""Signing in and the Create Trigger walk-through, in a real Chromium against a real server.

Create Trigger is done exactly as the Reward document walks its users through it: the
Triggers page, Create Trigger, a descriptive name, the generated ID reviewed and changed,
type Custom, Save; and then the trigger's page gives what a developer needs next.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import DashboardServer
from tests.e2e.server import init_project

UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def test_signing_in_through_the_form_leads_to_the_overview_with_the_environment_shown(
    fresh_page: Any, dashboard_server: DashboardServer
) -> None:
    page = fresh_page
    page.goto(dashboard_server.base() + "/")
    expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    # A wrong password first: the message, and still on the sign-in page.
    page.get_by_label("Email").fill(dashboard_server.email)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("The email or the password is wrong.")
    expect(page.get_by_label("Email")).to_have_value(dashboard_server.email)
    assert not [c for c in page.context.cookies() if c["name"] == "eventyard_session"]

    page.get_by_label("Password").fill(dashboard_server.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(dashboard_server.base() + "/")
    badge = page.locator(".env-badge")
    expect(badge).to_be_visible()
    expect(badge).to_have_text("live")
    expect(page.get_by_text(dashboard_server.email)).to_be_visible()
    nav = page.get_by_role("navigation", name="Sections")
    expect(nav.get_by_role("link", name="Overview")).to_have_attribute("aria-current", "page")

    (cookie,) = [c for c in page.context.cookies() if c["name"] == "eventyard_session"]
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Lax"
    assert cookie["secure"] is False  # plain http on 127.0.0.1
    assert page.evaluate("document.cookie") == ""  # scripts cannot read it

    # The test environment is marked as such.
    page.get_by_role("combobox", name=re.compile("^Environment")).select_option("test")
    page.get_by_role("button", name="Switch").click()
    expect(page).to_have_url(dashboard_server.base("test") + "/")
    expect(page.locator(".env-badge")).to_have_text("test")
    expect(page.get_by_role("note")).to_contain_text("Test environment")


def test_signing_out_ends_the_session(fresh_page: Any, dashboard_server: DashboardServer) -> None:
    from tests.dashboard.conftest import sign_in

    page = fresh_page
    sign_in(page, dashboard_server)
    cookie = next(c for c in page.context.cookies() if c["name"] == "eventyard_session")
    page.get_by_role("button", name="Sign out").click()
    expect(page).to_have_url(dashboard_server.url + "/dashboard/login")
    page.goto(dashboard_server.base() + "/triggers")
    expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))
    # The old cookie, put back by hand, opens nothing: the session is gone on the server.
    page.context.add_cookies([cookie])
    page.goto(dashboard_server.base() + "/triggers")
    expect(page).to_have_url(re.compile(r"/dashboard/login\?next="))


def test_create_trigger_as_the_walk_through_has_it(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    # "Go to the Triggers page"
    page.get_by_role("navigation", name="Sections").get_by_role("link", name="Triggers").click()
    expect(page.get_by_role("heading", name="Triggers", exact=True)).to_be_visible()
    # "click Create Trigger"
    page.get_by_role("link", name="Create Trigger").first.click()
    expect(page.get_by_role("heading", name="Create Trigger")).to_be_visible()

    name = page.get_by_label("Name", exact=True)
    trigger_id = page.get_by_label("Trigger ID")
    # "provide a descriptive name": the ID follows as you type.
    name.press_sequentially("Successful")
    expect(trigger_id).to_have_value("successful")
    name.press_sequentially(" Payment")
    expect(trigger_id).to_have_value("successful_payment")
    # "review the auto-generated trigger ID and change it if necessary"
    trigger_id.fill("successful_payment_v2")
    name.press_sequentially("s")  # the name goes on; the hand-edited ID stays
    expect(trigger_id).to_have_value("successful_payment_v2")
    name.fill("Successful Payment")
    expect(trigger_id).to_have_value("successful_payment_v2")
    # "select Custom"
    custom = page.get_by_label("Custom")
    custom.check()
    expect(custom).to_be_checked()
    # An attribute, as in the CDP document's table: value, number, required.
    page.get_by_label("Attribute 1 name").fill("value")
    page.get_by_label("Attribute 1 type").select_option("number")
    page.get_by_label("Attribute 1 required").select_option("required")
    page.get_by_role("button", name="Save").click()

    # The trigger's page: its ID, a UUID, the CDP webhook URL, curl examples.
    expect(page).to_have_url(
        dashboard_server.base() + "/triggers/successful_payment_v2?notice=created"
    )
    expect(page.get_by_role("status")).to_contain_text("The trigger is created")
    expect(page.get_by_role("heading", name="Successful Payment")).to_be_visible()
    expect(page.locator("#trigger-id-value")).to_have_text("successful_payment_v2")
    uuid = page.locator("#trigger-uuid").inner_text()
    assert UUID.match(uuid), uuid
    cdp_url = page.locator("#cdp-url").inner_text()
    assert cdp_url.startswith(dashboard_server.url + "/cdp/webhooks/")
    attributes = page.get_by_role("region", name="Attributes")
    expect(
        attributes.get_by_role("row", name=re.compile(r"value\s+number\s+required"))
    ).to_be_visible()
    examples = page.locator("pre code")
    assert examples.count() >= 3
    native = examples.first.inner_text()
    assert native.startswith(f"curl -X POST {dashboard_server.url}/v1/events")
    assert "successful_payment_v2" in native
    assert cdp_url in page.locator("main").inner_text()
    # The copy buttons are there once the script runs.
    expect(page.get_by_role("button", name="Copy").first).to_be_visible()

    # The API sees the same trigger.
    with dashboard_server.api() as api:
        got = api.get("/v1/triggers/successful_payment_v2")
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["name"] == "Successful Payment"
    assert body["uuid"] == uuid
    assert body["type"] == "custom"
    (attribute,) = body["attributes"]
    assert {"name": "value", "type": "number", "required": True}.items() <= attribute.items()
    assert cdp_url == dashboard_server.url + body["cdp_webhook_path"]

    # The triggers list shows it.
    page.get_by_role("link", name="← Triggers").click()
    row = page.get_by_role("row", name=re.compile("Successful Payment"))
    expect(row).to_contain_text("successful_payment_v2")
    expect(row).to_contain_text("Custom")
    expect(row).to_contain_text("never")
    assert not page.script_errors


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_example_works_as_pasted_with_a_real_key(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    page.goto(dashboard_server.base() + "/triggers/new")
    page.get_by_label("Name", exact=True).fill("Order Shipped")
    page.get_by_label("Attribute 1 name").fill("value")
    page.get_by_label("Attribute 1 type").select_option("number")
    page.get_by_label("Attribute 1 required").select_option("required")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#trigger-id-value")).to_have_text("order_shipped")
    command = page.locator("pre code").first.inner_text()
    command = command.replace("sk_live_YOUR_KEY", dashboard_server.live_key)
    done = subprocess.run(
        ["sh", "-c", command + " --silent --show-error --fail-with-body"],
        capture_output=True,
        text=True,
        timeout=20,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert '"trigger":"order_shipped"' in done.stdout.replace(" ", "")
    # The list counts it.
    page.goto(dashboard_server.base() + "/triggers")
    row = page.get_by_role("row", name=re.compile("Order Shipped"))
    expect(row.locator("td.num")).to_have_text("1")
    expect(row).to_contain_text("ago")


def test_a_trigger_that_is_not_valid_comes_back_with_the_errors_and_the_values_kept(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    page.goto(dashboard_server.base() + "/triggers/new")
    page.get_by_label("Name", exact=True).fill("Bad One")
    page.get_by_label("Trigger ID").fill("Not Valid!")
    # The browser's own pattern check would stop the form; a person can still be refused by
    # the server, so submit around it.
    page.evaluate("document.getElementById('trigger-id').removeAttribute('pattern')")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("The trigger was not created")
    expect(page.get_by_label("Name", exact=True)).to_have_value("Bad One")
    expect(page.get_by_label("Trigger ID")).to_have_value("Not Valid!")


def test_the_switcher_moves_between_projects_and_keeps_the_section(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    other = init_project(dashboard_server.database_url, "globex")
    other_id = other["project"]["id"]
    with dashboard_server.api() as api:
        made = api.post("/v1/triggers", json={"id": "acme_only", "name": "Acme Only"})
    assert made.status_code == 201, made.text
    page = signed_in_page
    page.goto(dashboard_server.base() + "/triggers")
    expect(page.get_by_role("row", name=re.compile("Acme Only"))).to_be_visible()
    # With the pointer, a choice switches at once.
    project = page.get_by_role("combobox", name=re.compile("^Project"))
    project.click()
    project.select_option(label="globex")
    expect(page).to_have_url(f"{dashboard_server.url}/dashboard/p/{other_id}/live/triggers")
    expect(page.get_by_role("heading", name="Triggers", exact=True)).to_be_visible()
    expect(page.locator("main")).not_to_contain_text("Acme Only")
    expect(page.get_by_role("combobox", name=re.compile("^Project"))).to_have_value(other_id)
    # With the keyboard, arrows only browse the options; the Switch button goes.
    environment = page.get_by_role("combobox", name=re.compile("^Environment"))
    environment.focus()
    page.keyboard.press("ArrowDown")
    expect(environment).to_have_value("test")  # the choice moved, and fired "change"
    page.wait_for_timeout(300)
    expect(page).to_have_url(f"{dashboard_server.url}/dashboard/p/{other_id}/live/triggers")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Switch")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{dashboard_server.url}/dashboard/p/{other_id}/test/triggers")
    expect(page.locator(".env-badge")).to_have_text("test")


def test_archiving_a_trigger_asks_first_and_then_the_api_refuses_its_events(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    with dashboard_server.api() as api:
        made = api.post("/v1/triggers", json={"id": "old_promo", "name": "Old Promo"})
        assert made.status_code == 201, made.text
        assert (
            api.post("/v1/events", json={"trigger": "old_promo", "user_id": "u1"}).status_code
            == 201
        )
    page = signed_in_page
    page.goto(dashboard_server.base() + "/triggers/old_promo")
    messages: list[str] = []
    page.once("dialog", lambda d: (messages.append(d.message), d.dismiss()))
    page.get_by_role("button", name="Archive trigger").click()
    page.wait_for_timeout(300)
    assert messages
    assert "old_promo" in messages[0]
    expect(page.locator("main")).to_contain_text("active")
    page.once("dialog", lambda d: (messages.append(d.message), d.accept()))
    page.get_by_role("button", name="Archive trigger").click()
    expect(page.get_by_role("status")).to_contain_text("The trigger is archived")
    expect(page.get_by_role("button", name="Archive trigger")).to_have_count(0)
    with dashboard_server.api() as api:
        refused = api.post("/v1/events", json={"trigger": "old_promo", "user_id": "u2"})
        assert refused.status_code in (409, 410, 422), refused.text
    page.get_by_role("link", name="← Triggers").click()
    expect(page.get_by_role("row", name=re.compile("Old Promo"))).to_contain_text("archived")


def test_a_taken_trigger_id_comes_back_on_the_form_with_the_values_kept(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    with dashboard_server.api() as api:
        assert api.post("/v1/triggers", json={"id": "taken", "name": "Taken"}).status_code == 201
    page = signed_in_page
    page.goto(dashboard_server.base() + "/triggers/new")
    page.get_by_label("Name", exact=True).fill("Taken")
    page.get_by_label("Attribute 1 name").fill("value")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("alert")).to_contain_text("taken")
    expect(page.get_by_role("heading", name="Create Trigger")).to_be_visible(timeout=2000)
    expect(page.get_by_label("Name", exact=True)).to_have_value("Taken")
    expect(page.get_by_label("Attribute 1 name")).to_have_value("value")
