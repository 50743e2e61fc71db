"""Script injection through every field the dashboard shows, in a real Chromium.

One server whose project is itself named with a payload; then the API and a real webhook
receiver fill every place a user's data reaches a page with payloads (a `<script>`, an
`"><img onerror>` breaking out of an attribute, an `<svg onload>`, a `javascript:` URL, a
template expression): trigger name, description, label, platform and attribute texts,
event user id, payload keys and values, idempotency key, consumer names and URL, a pull
consumer's own state and output, a receiver's answer and its redirect's Location (shown
as the attempt's error), key names, and what a visitor types into the sign-in form, the
filters and the URL. Each page is then checked as a user's browser sees it:

- no dialog opened and no payload's code ran (`window.__xss` is never set);
- no element the payloads would inject exists (no script without `src`, no element with
  an `on…` attribute, no `<img src=x>`, no `javascript:` link);
- the browser reported no Content-Security-Policy violation — so the text was escaped, not
  merely stopped by the policy (the policy is the second wall, not the first);
- the payload shows as literal text where the field is shown.

The live events list (rows built by script from the stream) gets the same checks.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import expect

from tests.dashboard.conftest import (
    DashboardServer,
    ThreadedReceiver,
    sign_in,
    start_dashboard_server,
    until,
)
from tests.receiver import Reply

# Each payload sets window.__xss and opens a dialog if it ever runs.
SCRIPT = "<script>window.__xss=1;alert(1)</script>"
ATTRIBUTE = '"><img src=x onerror="window.__xss=2;alert(2)">'
SINGLE = "'><svg/onload=window.__xss=3;alert(3)>"
JS_URL = "javascript:window.__xss=4;alert(4)"
TEMPLATE = "{{7*7}}${7*7}"
X = SCRIPT + ATTRIBUTE + SINGLE + TEMPLATE  # one string carrying all of them (141 chars)

# What the payloads would inject, looked for in the live document.
INJECTED = """() => {
  const found = [];
  for (const el of document.querySelectorAll('*')) {
    for (const attr of el.attributes) {
      if (attr.name.toLowerCase().startsWith('on')) found.push(el.tagName + ' ' + attr.name);
      if (['href', 'src', 'action', 'formaction'].includes(attr.name.toLowerCase())
          && attr.value.trim().toLowerCase().startsWith('javascript:')) {
        found.push(el.tagName + ' ' + attr.name + '=' + attr.value);
      }
    }
  }
  for (const s of document.querySelectorAll('script')) {
    if (!s.src || !s.src.includes('/dashboard/static/')) found.push('script ' + s.outerHTML);
  }
  for (const img of document.querySelectorAll('img[src="x"], svg[onload]')) {
    found.push(img.outerHTML);
  }
  return found;
}"""


@dataclass
class Seeded:
    server: DashboardServer
    trigger_id: str
    event_id: str
    webhook_id: str
    pull_id: str
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Watch:
    """What a page did that it must not: dialogs, CSP violations, script errors."""

    dialogs: list[str] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def receiver() -> Iterator[ThreadedReceiver]:
    # It answers with markup and redirects to a payload: both end up on the event's page.
    running = ThreadedReceiver(
        Reply(302, headers={"location": "http://x.test/" + quote(X)}, body=X.encode())
    )
    try:
        yield running
    finally:
        running.close()


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    """conftest's server, but its project is named with the payloads."""
    server = start_dashboard_server(tmp_path_factory.mktemp("xss"), project_name=X)
    try:
        yield server
    finally:
        server.server.stop()


@pytest.fixture(scope="module")
def seeded(dashboard_server: DashboardServer, receiver: ThreadedReceiver) -> Seeded:
    return seed(dashboard_server, receiver)


def seed(server: DashboardServer, receiver: ThreadedReceiver) -> Seeded:
    with server.api() as api:

        def ok(response: Any) -> dict[str, Any]:
            assert response.status_code in (200, 201), response.text
            body: dict[str, Any] = response.json()
            return body

        ok(
            api.post(
                "/v1/triggers",
                json={
                    "id": "xss_trigger",
                    "name": X,
                    "description": X + JS_URL,
                    "label": X,
                    "platform": X,
                    "attributes": [
                        {"name": "amount", "type": "number", "description": X},
                        {"name": "plan", "type": "enum", "values": [X, "pro"]},
                    ],
                },
            )
        )
        # The webhook's URL carries a payload in its path and query.
        hook_url = receiver.url("/hook/" + ATTRIBUTE.replace(" ", "%20") + "?q=" + quote(SINGLE))
        webhook = ok(
            api.post(
                "/v1/consumers",
                json={"name": X, "kind": "webhook", "url": hook_url, "triggers": ["xss_trigger"]},
            )
        )
        pull = ok(api.post("/v1/consumers", json={"name": X + " (pull)", "kind": "pull"}))
        ok(api.post("/v1/keys", json={"name": X, "scopes": ["read"]}))
        event = ok(
            api.post(
                "/v1/events",
                json={
                    "trigger": "xss_trigger",
                    "user_id": X,
                    "payload": {X: X, "link": JS_URL, "plan": X, "amount": 1},
                    "idempotency_key": X,
                },
            )
        )
        claimed = ok(api.post(f"/v1/consumers/{pull['id']}/claim", json={"limit": 10}))
        (txn,) = [t for t in claimed["data"] if t["event"]["id"] == event["id"]]
        ok(api.patch(f"/v1/transactions/{txn['id']}", json={"state": "processing", "output": X}))

        def attempted() -> bool:
            got = ok(api.get(f"/v1/events/{event['id']}"))
            hooks = [t for t in got["transactions"] if t["consumer_id"] == webhook["id"]]
            return bool(hooks and hooks[0]["delivery_attempts"])

        until(attempted, what="the webhook attempt to the redirecting receiver")
    return Seeded(server, "xss_trigger", event["id"], webhook["id"], pull["id"])


@pytest.fixture
def page(context: Any, seeded: Seeded) -> Any:
    """A signed-in page (conftest's context) on the seeded server."""
    return context.new_page()


def watch(page: Any) -> Watch:
    seen = Watch()

    def on_dialog(dialog: Any) -> None:
        seen.dialogs.append(dialog.message)
        dialog.dismiss()

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text or "Content-Security-Policy" in message.text:
            seen.violations.append(message.text)

    page.on("dialog", on_dialog)
    page.on("console", on_console)
    page.on("pageerror", lambda exc: seen.violations.append(f"script error: {exc}"))
    return seen


def assert_inert(page: Any, seen: Watch, where: str, *, shows: tuple[str, ...] = ()) -> None:
    page.wait_for_load_state("load")
    page.wait_for_timeout(100)  # an onerror fires once the bad image fails to load
    assert seen.dialogs == [], f"{where}: a dialog opened: {seen.dialogs}"
    assert page.evaluate("window.__xss") is None, f"{where}: a payload ran"
    injected = page.evaluate(INJECTED)
    assert injected == [], f"{where}: injected elements: {injected}"
    assert seen.violations == [], f"{where}: {seen.violations}"
    text = page.evaluate("document.body.innerText")
    for literal in shows:
        assert literal in text, f"{where}: {literal!r} is not shown as text"


def visit(page: Any, url: str, where: str, *, shows: tuple[str, ...] = (X,)) -> None:
    seen = watch(page)
    response = page.goto(url)
    assert response is not None
    assert_inert(page, seen, where, shows=shows)


def test_every_signed_in_page_shows_payloads_as_text(page: Any, seeded: Seeded) -> None:
    base = seeded.server.base()
    pages = [
        ("/", "overview", (X,)),
        ("/triggers", "the triggers list", (X,)),
        (f"/triggers/{seeded.trigger_id}", "the trigger", (X, X + JS_URL)),
        ("/events", "the events list", (X,)),
        (f"/events/{seeded.event_id}", "the event", (X, JS_URL, "http://x.test/")),
        ("/consumers", "the consumers list", (X, X + " (pull)", ATTRIBUTE)),
        (f"/consumers/{seeded.webhook_id}", "the webhook consumer", (X, ATTRIBUTE)),
        (f"/consumers/{seeded.pull_id}", "the pull consumer", (X + " (pull)",)),
        ("/keys", "the keys page", (X,)),
        # What a visitor puts in the URL comes back in the filter form and its links.
        (f"/events?user_id={quote(X)}", "events filtered by a payload", ()),
        (f"/events?source={quote(X)}&trigger={quote(X)}", "a payload as source", ()),
    ]
    for path, where, shows in pages:
        visit(page, base + path, where, shows=shows)
    # The project's name, in the switcher.
    options = page.locator("select[name=project] option").all_inner_texts()
    assert X in options


def test_the_event_page_shows_the_receivers_answer_and_redirect_literally(
    page: Any, seeded: Seeded
) -> None:
    visit(page, f"{seeded.server.base()}/events/{seeded.event_id}", "the event")
    attempts = page.get_by_role("region", name=re.compile("Webhook attempts"))
    expect(attempts).to_contain_text(X)  # the receiver's body
    expect(attempts).to_contain_text("redirect (302 to http://x.test/")
    expect(page.locator("main")).to_contain_text(X)  # the pull consumer's output


def test_error_pages_and_the_sign_in_form_echo_input_as_text(
    page: Any, browser: Any, seeded: Seeded
) -> None:
    server = seeded.server
    base = server.base()
    visit(page, f"{base}/triggers/{quote(X, safe='')}", "an unknown trigger", shows=())
    visit(page, f"{base}/events/{quote(X, safe='')}", "an unknown event", shows=())
    visit(page, f"{server.url}/dashboard/switch?project={quote(X)}", "an unknown project", shows=())
    visit(page, f"{server.url}/dashboard/p/{quote(X, safe='')}/live/", "bad project", shows=())

    # Signed out: the sign-in form echoes the email typed and carries `next`.
    context = browser.new_context()
    try:
        fresh = context.new_page()
        seen = watch(fresh)
        fresh.goto(f"{server.url}/dashboard/login?next={quote('/dashboard/' + X)}")
        assert_inert(fresh, seen, "the sign-in page with a payload in next")
        # The field's own email check would stop the payload; a script (or curl) would not.
        fresh.evaluate("document.querySelector('form').noValidate = true")
        fresh.get_by_label("Email").fill(X)
        fresh.get_by_label("Password").fill("not the password")
        fresh.get_by_role("button", name="Sign in").click()
        expect(fresh.get_by_role("alert")).to_be_visible()
        assert_inert(fresh, seen, "a refused sign-in")
        assert fresh.get_by_label("Email").input_value() == X
    finally:
        context.close()


def test_live_rows_built_from_the_stream_show_payloads_as_text(page: Any, seeded: Seeded) -> None:
    seen = watch(page)
    page.goto(f"{seeded.server.base()}/events")
    toggle = page.get_by_role("button", name="Live")
    with page.expect_response(lambda r: "/events/stream" in r.url):
        toggle.click()
    with seeded.server.api() as api:
        sent = api.post(
            "/v1/events",
            json={"trigger": "xss_trigger", "user_id": X + " live", "payload": {X: JS_URL}},
        )
    assert sent.status_code == 201, sent.text
    row = page.locator(f'tr[data-id="{sent.json()["id"]}"]')
    expect(row).to_be_visible()
    expect(row).to_contain_text(X + " live")
    assert_inert(page, seen, "a live row", shows=(X + " live",))
    # Its links lead within the dashboard, never to a script.
    for href in row.locator("a").evaluate_all("(links) => links.map((a) => a.href)"):
        assert href.startswith(seeded.server.url + "/dashboard/"), href


def test_the_dashboard_cannot_be_framed(browser: Any, seeded: Seeded, tmp_path: Path) -> None:
    """Another site's page holding the dashboard in a frame gets an empty frame."""
    context = browser.new_context()
    try:
        page = context.new_page()
        seen = watch(page)
        framing = tmp_path / "framing.html"
        framing.write_text(
            f'<iframe id="f" src="{seeded.server.url}/dashboard/login" width=600 height=400>'
            "</iframe>"
        )
        page.goto(framing.as_uri())
        page.wait_for_timeout(1000)
        (child,) = [f for f in page.frames if f != page.main_frame]
        shown = ""
        try:
            shown = child.evaluate("document.body ? document.body.innerText : ''")
        except Exception as exc:  # a blocked frame may not even be scriptable
            shown = f"(not readable: {exc})"
        assert "Sign in" not in shown, shown
        assert any("frame-ancestors" in v or "X-Frame-Options" in v for v in seen.violations) or (
            child.url in ("", "about:blank") or child.url.startswith("chrome-error:")
        ), (child.url, seen.violations)
    finally:
        context.close()


def test_a_session_id_planted_in_the_browser_is_replaced_at_sign_in(
    browser: Any, seeded: Seeded
) -> None:
    """Session fixation, as a browser lives it: the cookie set before signing in (by a
    sibling page, a shared computer, a crafted link) is not the one after, and opens
    nothing."""
    server = seeded.server
    planted = "attacker-chosen-session-id-0123456789abcdef"
    context = browser.new_context()
    try:
        context.add_cookies(
            [{"name": "eventyard_session", "value": planted, "url": server.url + "/dashboard/"}]
        )
        page = context.new_page()
        sign_in(page, server)
        # The browser keeps the planted cookie (set for /dashboard/, it is even sent first)
        # beside the fresh one the server set; the fresh one is what signs in.
        sessions = [c for c in context.cookies() if c["name"] == "eventyard_session"]
        fresh = [c for c in sessions if c["value"] != planted]
        assert len(fresh) == 1, sessions
        assert fresh[0]["httpOnly"] is True
        page.goto(server.base() + "/keys")
        assert "/dashboard/login" not in page.url
        expect(page.get_by_role("button", name="Sign out")).to_be_visible()
    finally:
        context.close()
    # The planted id, in a browser of its own, is sent to sign in.
    other = browser.new_context()
    try:
        other.add_cookies(
            [{"name": "eventyard_session", "value": planted, "url": server.url + "/dashboard/"}]
        )
        page = other.new_page()
        page.goto(server.base() + "/keys")
        assert "/dashboard/login" in page.url
    finally:
        other.close()
