"""The dashboard's sessions and headers against an attacker, over HTTP on both databases.

- **Session fixation**: whatever session cookie the browser carries when it signs in — a
  value an attacker chose, or the attacker's own valid session planted in the victim's
  browser — signing in issues a fresh session id, and the planted one opens nothing after.
- **Sign-in throttling**: repeated wrong passwords for one email are answered 429 with a
  `Retry-After` and a message that states the limit; while it holds, even the right
  password is refused without a session; another email is not held up.
- **Security headers on every page**, from the route table: a Content-Security-Policy
  whose scripts come only from the dashboard itself (no `unsafe-inline`, no `unsafe-eval`,
  no wildcard), frame denial both ways (`frame-ancestors 'none'` and `X-Frame-Options:
  DENY`), `nosniff` and a Referrer-Policy — on the pages, the sign-in page, its 401 and 429
  answers and the error pages. And the templates hold no inline script, event handler or
  style attribute for such a policy to block.

(The same in a real browser, with script payloads in every field: test_security_xss.py.)
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from eventyard.api.app import all_routes, create_app
from eventyard.dashboard.web import STATIC_DIR
from eventyard.domain.models import Environment
from eventyard.services.container import Services, build_services
from eventyard.services.projects import init_project

pytestmark = pytest.mark.anyio

EMAIL = "ada@example.com"
MALLORY = "mallory@example.com"
PASSWORD = "correct horse battery staple"
SESSION = "eventyard_session"
TEMPLATES = Path(STATIC_DIR).parent / "templates"
MAX_FREE_TRIES = 20  # the throttle must start well before this many wrong passwords


def _cookie(response: httpx.Response, name: str) -> str | None:
    for line in response.headers.get_list("set-cookie"):
        key, _, rest = line.partition("=")
        if key == name:
            return rest.split(";", 1)[0]
    return None


async def post_sign_in(
    client: httpx.AsyncClient, email: str, password: str, session: str | None = None
) -> httpx.Response:
    """The sign-in form as a browser sends it, carrying `session` as its session cookie."""
    client.cookies.clear()
    page = await client.get("/dashboard/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert token is not None, page.text
    login_csrf = _cookie(page, "eventyard_login_csrf")
    assert login_csrf
    cookie = f"eventyard_login_csrf={login_csrf}"
    if session is not None:
        cookie += f"; {SESSION}={session}"
    client.cookies.clear()
    return await client.post(
        "/dashboard/login",
        data={"csrf": token.group(1), "email": email, "password": password},
        headers={"cookie": cookie},
    )


async def signed_in_as(client: httpx.AsyncClient, session: str) -> str | None:
    """The email the dashboard greets this session cookie with, or None (sent to sign in)."""
    cookie = {"cookie": f"{SESSION}={session}"}
    client.cookies.clear()
    door = await client.get("/dashboard/", headers=cookie)
    assert door.status_code == 303, door.text
    if door.headers["location"].startswith("/dashboard/login"):
        return None
    page = await client.get(door.headers["location"], headers=cookie)
    who = re.search(r'<span class="who">([^<]+)</span>', page.text)
    return who.group(1) if who else f"(status {page.status_code})"


# --- session fixation -----------------------------------------------------------------------


async def test_signing_in_issues_a_fresh_session_whatever_cookie_came_with_it(
    client: httpx.AsyncClient, services: Services
) -> None:
    await services.accounts.create_user(EMAIL, PASSWORD)
    await services.accounts.create_user(MALLORY, PASSWORD)
    await init_project(services.store, services.clock, "acme")
    mallory = await post_sign_in(client, MALLORY, PASSWORD)
    mallorys_session = _cookie(mallory, SESSION)
    assert mallorys_session
    assert await signed_in_as(client, mallorys_session) == MALLORY

    planted_values = ["attacker-chosen-session-id", "A" * 43, mallorys_session]
    for planted in planted_values:
        response = await post_sign_in(client, EMAIL, PASSWORD, session=planted)
        assert response.status_code == 303, response.text
        fresh = _cookie(response, SESSION)
        assert fresh, "signing in must set a session cookie"
        assert fresh != planted
        assert fresh not in planted_values
        assert await signed_in_as(client, fresh) == EMAIL
        # The planted id opens nothing now: not the victim's account, and not the
        # attacker's session either (signing in ends the session the browser came with).
        assert await signed_in_as(client, planted) is None


async def test_a_planted_cookie_sent_beside_the_real_one_neither_shadows_nor_replaces_it(
    client: httpx.AsyncClient, services: Services
) -> None:
    """A cookie planted for a more specific path (`/dashboard/`) is sent before the real one
    (set for `/dashboard`): the attacker's own session planted so cannot stand in for the
    victim's once the victim signs in, and a junk one does not lock the victim out."""
    await services.accounts.create_user(EMAIL, PASSWORD)
    await services.accounts.create_user(MALLORY, PASSWORD)
    await init_project(services.store, services.clock, "acme")
    mallorys = _cookie(await post_sign_in(client, MALLORY, PASSWORD), SESSION)
    assert mallorys
    for planted in ("junk-planted-id", mallorys):
        victim = await post_sign_in(client, EMAIL, PASSWORD, session=planted)
        fresh = _cookie(victim, SESSION)
        assert fresh
        both = f"{planted}; {SESSION}={fresh}"  # as the browser sends them: planted first
        assert await signed_in_as(client, both) == EMAIL


async def test_a_failed_sign_in_gives_no_session_and_keeps_none_it_was_handed(
    client: httpx.AsyncClient, services: Services
) -> None:
    await services.accounts.create_user(EMAIL, PASSWORD)
    response = await post_sign_in(client, EMAIL, "wrong password!", session="planted-id")
    assert response.status_code == 401
    assert _cookie(response, SESSION) is None


# --- throttling -------------------------------------------------------------------------------


async def test_repeated_wrong_passwords_are_throttled_with_a_stated_limit(
    client: httpx.AsyncClient, services: Services
) -> None:
    await services.accounts.create_user(EMAIL, PASSWORD)
    await services.accounts.create_user(MALLORY, PASSWORD)
    statuses: list[int] = []
    throttled: httpx.Response | None = None
    for n in range(MAX_FREE_TRIES):
        response = await post_sign_in(client, EMAIL, f"guess number {n}")
        statuses.append(response.status_code)
        if response.status_code == 429:
            throttled = response
            break
        assert response.status_code == 401, response.text
    assert throttled is not None, f"no 429 after {MAX_FREE_TRIES} wrong passwords: {statuses}"
    assert len(statuses) > 2, "the first wrong passwords are answered 401, not 429"
    retry_after = throttled.headers.get("retry-after", "")
    assert retry_after.isdigit(), throttled.headers
    assert int(retry_after) > 0
    assert "text/html" in throttled.headers["content-type"]
    assert 'role="alert"' in throttled.text
    # The message states the limit: how long to wait, in seconds.
    assert re.search(r"\b\d+ ?s\b", throttled.text), throttled.text
    assert _cookie(throttled, SESSION) is None

    # While it holds, the right password is refused too: guessing on gains nothing.
    right = await post_sign_in(client, EMAIL, PASSWORD)
    assert right.status_code == 429
    assert _cookie(right, SESSION) is None
    # Someone else signs in as usual.
    other = await post_sign_in(client, MALLORY, PASSWORD)
    assert other.status_code == 303
    assert _cookie(other, SESSION)


# --- headers on every page --------------------------------------------------------------------


def check_security_headers(response: httpx.Response, what: str) -> None:
    headers = response.headers
    policy = headers.get("content-security-policy")
    assert policy, f"{what}: no Content-Security-Policy"
    directives: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        directives[name.lower()] = values
    scripts = directives.get("script-src", directives.get("default-src"))
    assert scripts is not None, f"{what}: {policy}"
    for forbidden in ("'unsafe-inline'", "'unsafe-eval'", "*", "data:", "http:", "https:"):
        assert forbidden not in scripts, f"{what}: script-src allows {forbidden}: {policy}"
    assert directives.get("default-src") == ["'self'"], f"{what}: {policy}"
    assert "'unsafe-inline'" not in directives.get("style-src", []), f"{what}: {policy}"
    assert directives.get("frame-ancestors") == ["'none'"], f"{what}: {policy}"
    assert directives.get("object-src") == ["'none'"], f"{what}: {policy}"
    assert directives.get("base-uri") == ["'none'"], f"{what}: {policy}"
    assert directives.get("form-action") == ["'self'"], f"{what}: {policy}"
    assert headers.get("x-frame-options") == "DENY", what
    assert headers.get("cross-origin-opener-policy") == "same-origin", what
    assert headers.get("x-content-type-options") == "nosniff", what
    assert headers.get("referrer-policy") in {"same-origin", "no-referrer", "strict-origin"}, what


async def test_every_page_and_error_page_carries_the_security_headers(
    client: httpx.AsyncClient, services: Services
) -> None:
    await services.accounts.create_user(EMAIL, PASSWORD)
    made = await init_project(services.store, services.clock, "acme")
    live = {"Authorization": f"Bearer {made.keys[Environment.LIVE]}"}
    trigger = await client.post("/v1/triggers", json={"name": "Signup"}, headers=live)
    event = await client.post(
        "/v1/events", json={"trigger": "signup", "user_id": "u1"}, headers=live
    )
    consumer = await client.post(
        "/v1/consumers", json={"name": "batch", "kind": "pull"}, headers=live
    )
    keys = await client.get("/v1/keys", headers=live)
    for answer in (trigger, event, consumer, keys):
        assert answer.status_code in (200, 201), answer.text
    known = {
        "project": made.project.id,
        "env": "live",
        "trigger_id": "signup",
        "event_id": event.json()["id"],
        "consumer_id": consumer.json()["id"],
        "key_id": keys.json()["data"][0]["id"],
    }

    # Signed out: the sign-in page, and its 401 and 429 answers.
    page = await client.get("/dashboard/login")
    assert page.status_code == 200
    check_security_headers(page, "GET /dashboard/login")
    for n in range(MAX_FREE_TRIES):
        wrong = await post_sign_in(client, EMAIL, f"nope {n}")
        check_security_headers(wrong, f"sign-in answered {wrong.status_code}")
        if wrong.status_code == 429:
            break
    else:
        pytest.fail("sign-in was never throttled")
    await services.accounts.create_user(MALLORY, PASSWORD)
    signed = await post_sign_in(client, MALLORY, PASSWORD)
    session = _cookie(signed, SESSION)
    assert session
    cookie = {"cookie": f"{SESSION}={session}"}

    pages = 0
    for route in all_routes():
        if not route.path.startswith("/dashboard") or route.method != "GET":
            continue
        if route.path.endswith("/stream") or route.path.endswith("/static/{name}"):
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: quote(known[m.group(1)], safe=""), route.path)
        if route.path == "/dashboard/switch":
            path += f"?project={made.project.id}&env=test&section=events"
        client.cookies.clear()
        response = await client.get(path, headers=cookie)
        if response.status_code == 303:
            response = await client.get(response.headers["location"], headers=cookie)
        assert response.status_code == 200, (path, response.status_code)
        check_security_headers(response, f"GET {path}")
        pages += 1
    assert pages >= 10, "the route table has fewer dashboard pages than expected"

    # Error pages: not found, refused CSRF, a bad form.
    base = f"/dashboard/p/{made.project.id}/live"
    for path, status in (
        (f"{base}/triggers/no_such_trigger", 404),
        (f"{base}/events/evt_nope", 404),
        ("/dashboard/p/prj_nope/live/", 404),
        (f"/dashboard/p/{made.project.id}/prod/", 404),
    ):
        client.cookies.clear()
        response = await client.get(path, headers=cookie)
        assert response.status_code == status, (path, response.status_code)
        check_security_headers(response, f"GET {path} ({status})")
    client.cookies.clear()
    refused = await client.post(f"{base}/keys", data={"name": "x"}, headers=cookie)
    assert refused.status_code == 403
    check_security_headers(refused, "a form without its CSRF token")


async def test_static_files_are_not_sniffed(client: httpx.AsyncClient) -> None:
    for name, media in (("app.js", "text/javascript"), ("app.css", "text/css")):
        response = await client.get(f"/dashboard/static/{name}")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith(media)
        assert response.headers["x-content-type-options"] == "nosniff"


def test_the_templates_hold_no_inline_script_handler_or_style() -> None:
    """What the policy would block, kept out of the markup in the first place."""
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.IGNORECASE)
    handler = re.compile(r"<[^>]*\s on[a-z]+\s*=", re.IGNORECASE | re.VERBOSE)
    style = re.compile(r"<(?!/)[^>]*\sstyle\s*=|<style\b", re.IGNORECASE)
    javascript_url = re.compile(r"(href|src|action)\s*=\s*[\"']?\s*javascript:", re.IGNORECASE)
    templates = sorted(TEMPLATES.glob("*.html"))
    assert len(templates) >= 10
    for template in templates:
        text = template.read_text()
        for name, pattern in (
            ("an inline script", inline_script),
            ("an event handler attribute", handler),
            ("a style attribute or element", style),
            ("a javascript: URL", javascript_url),
        ):
            found = pattern.search(text)
            assert found is None, f"{template.name} has {name}: {found.group(0) if found else ''}"


# --- a consumer's page warns of a destination the sender refuses -------------------------------


async def test_a_consumer_made_while_private_was_allowed_is_flagged_on_its_page(
    client: httpx.AsyncClient, services: Services
) -> None:
    """Creation now refuses a private URL, but one made while the server allowed them (or
    before this version) keeps it: its page says deliveries will be refused, and why."""
    made = await init_project(services.store, services.clock, "acme")
    allowing = build_services(
        services.store, services.settings.replace(webhook_allow_private=True), services.clock
    )
    transport = httpx.ASGITransport(app=create_app(allowing))
    async with httpx.AsyncClient(transport=transport, base_url="http://eventyard.test") as lax:
        created = await lax.post(
            "/v1/consumers",
            json={"name": "local", "kind": "webhook", "url": "http://127.0.0.1:9/hook"},
            headers={"Authorization": f"Bearer {made.keys[Environment.LIVE]}"},
        )
    assert created.status_code == 201, created.text
    await services.accounts.create_user(EMAIL, PASSWORD)
    session = _cookie(await post_sign_in(client, EMAIL, PASSWORD), SESSION)
    client.cookies.clear()
    page = await client.get(
        f"/dashboard/p/{made.project.id}/live/consumers/{created.json()['id']}",
        headers={"cookie": f"{SESSION}={session}"},
    )
    assert page.status_code == 200
    assert "Deliveries to this URL will be refused: 127.0.0.1 is a loopback address" in page.text
    assert "EVENTYARD_WEBHOOK_ALLOW_PRIVATE=true" in page.text
