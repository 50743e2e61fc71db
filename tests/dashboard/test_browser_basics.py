"""What every page owes its users, checked in a real Chromium: CSRF refusal of a doctored
form, keyboard access from the top of the page, phone width without sideways scrolling,
and names that hold markup shown as text."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import DashboardServer

XSS_NAME = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
PAGES = [
    "/",
    "/triggers",
    "/triggers/new",
    "/events",
    "/consumers",
    "/consumers/new",
    "/keys",
]


def test_a_form_sent_without_its_csrf_token_is_refused_with_403(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    page.goto(dashboard_server.base() + "/triggers/new")
    page.get_by_label("Name", exact=True).fill("Never Created")
    page.evaluate("document.querySelector('main form input[name=csrf]').remove()")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Save").click()
    assert posted.value.status == 403
    expect(page.get_by_role("alert")).to_contain_text("CSRF")
    expect(page.get_by_role("heading", level=1)).to_contain_text("403")
    with dashboard_server.api() as api:
        assert api.get("/v1/triggers/never_created").status_code == 404

    # A token that is not this session's is refused the same way.
    page.goto(dashboard_server.base() + "/triggers/new")
    page.get_by_label("Name", exact=True).fill("Never Created")
    page.evaluate("document.querySelector('main form input[name=csrf]').value = 'forged'")
    with page.expect_response(lambda r: r.request.method == "POST") as posted:
        page.get_by_role("button", name="Save").click()
    assert posted.value.status == 403
    with dashboard_server.api() as api:
        assert api.get("/v1/triggers/never_created").status_code == 404

    # Sign-out too: the session lives on.
    page.goto(dashboard_server.base() + "/triggers")
    page.evaluate("document.querySelector('form.signout input[name=csrf]').remove()")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("alert")).to_contain_text("CSRF")
    page.goto(dashboard_server.base() + "/triggers")
    expect(page.get_by_role("heading", name="Triggers", exact=True)).to_be_visible()


def test_tab_from_the_top_reaches_the_skip_link_and_then_the_navigation(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    page.goto(dashboard_server.base() + "/triggers")
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    expect(skip).to_be_focused()
    expect(skip).to_be_in_viewport()  # hidden off-screen until focused
    # Tabbing on reaches every section of the navigation, in order.
    wanted = ["Overview", "Triggers", "Events", "Consumers", "Settings · Secret keys"]
    reached: list[str] = []
    for _ in range(20):
        page.keyboard.press("Tab")
        focused = page.evaluate(
            "() => { const el = document.activeElement;"
            " return el.closest('nav') ? el.textContent.trim() : null; }"
        )
        if focused:
            reached.append(focused)
        if len(reached) == len(wanted):
            break
    assert reached == wanted
    # Enter on the focused link follows it; the skip link moves focus to the content.
    page.keyboard.press("Enter")
    expect(page).to_have_url(dashboard_server.base() + "/keys")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"


@pytest.mark.parametrize("path", PAGES)
def test_phone_width_has_no_sideways_scrolling(
    context: Any, dashboard_server: DashboardServer, path: str
) -> None:
    page = context.new_page()
    page.set_viewport_size({"width": 390, "height": 844})
    response = page.goto(dashboard_server.base() + path)
    assert response is not None
    assert response.status == 200, path
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"{path} is {width} px wide at a 390 px viewport"
    # The navigation is still there to use.
    expect(page.get_by_role("navigation", name="Sections")).to_be_visible()


def test_the_sign_in_page_fits_a_phone(fresh_page: Any, dashboard_server: DashboardServer) -> None:
    page = fresh_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(dashboard_server.url + "/dashboard/login")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.get_by_role("button", name="Sign in")).to_be_in_viewport()


def test_a_trigger_name_with_markup_is_shown_as_text_and_runs_nothing(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    with dashboard_server.api() as api:
        made = api.post(
            "/v1/triggers",
            json={"id": "markup_name", "name": XSS_NAME, "description": XSS_NAME},
        )
    assert made.status_code == 201, made.text
    page = signed_in_page
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(dashboard_server.base() + "/triggers")
    expect(page.get_by_role("link", name=XSS_NAME)).to_be_visible()
    page.get_by_role("link", name=XSS_NAME).click()
    expect(page.get_by_role("heading", name=XSS_NAME)).to_be_visible()
    expect(page.locator("main")).to_contain_text(XSS_NAME)
    assert page.locator("main img").count() == 0
    assert page.evaluate("window.__xss") is None
    assert dialogs == []


def test_unknown_pages_and_projects_are_404_pages(
    signed_in_page: Any, dashboard_server: DashboardServer
) -> None:
    page = signed_in_page
    for path in (
        dashboard_server.base() + "/triggers/no_such_trigger",
        f"{dashboard_server.url}/dashboard/p/prj_nope/live/triggers",
        f"{dashboard_server.url}/dashboard/p/{dashboard_server.project_id}/staging/triggers",
    ):
        response = page.goto(path)
        assert response is not None
        assert response.status == 404, path
        expect(page.get_by_role("heading", level=1)).to_contain_text(re.compile("404"))


def test_behind_a_tls_proxy_on_the_same_machine_the_cookies_are_secure(
    dashboard_server: DashboardServer,
) -> None:
    """uvicorn trusts X-Forwarded-Proto from 127.0.0.1, as a local TLS proxy sends it."""
    proxied = {"x-forwarded-proto": "https", "x-forwarded-for": "203.0.113.9"}
    with httpx.Client(base_url=dashboard_server.url, headers=proxied, timeout=10) as client:
        page = client.get("/dashboard/login")
        login_cookie = page.headers["set-cookie"]
        assert "; Secure" in login_cookie
        token = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert token is not None
        signed_in = client.post(
            "/dashboard/login",
            data={
                "csrf": token.group(1),
                "email": dashboard_server.email,
                "password": dashboard_server.password,
                "next": "",
            },
            headers={"cookie": login_cookie.split(";", 1)[0]},
        )
    assert signed_in.status_code == 303
    (session,) = [
        line
        for line in signed_in.headers.get_list("set-cookie")
        if line.startswith("eventyard_session=")
    ]
    assert "; Secure" in session
    assert "; HttpOnly" in session
    # Without the proxy's header, plain http: no Secure flag (a browser would drop it).
    plain = httpx.get(dashboard_server.url + "/dashboard/login", timeout=10)
    assert "Secure" not in plain.headers["set-cookie"]
