"""The dashboard's front door, proved for every route in the table.

The cases are generated from the application's route table: every dashboard route with the
session guard is called without a session (a GET is sent to the sign-in page with `next=`,
a POST is refused the same way), and every guarded POST is called with a valid session but
without its CSRF token, with a wrong one, and from another site's page: each answers 403 and
the database is byte-for-byte what it was. A new page added with `Pages.page(...)` is
covered without touching this file.

Then the sign-in itself: a wrong password is a 401 page with no session; the session cookie
is HttpOnly, SameSite=Lax, and Secure exactly when the request came over https; signing out
ends the session for good; `next=` never leads off the dashboard.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from eventyard.api.app import EventyardApp, all_routes
from eventyard.api.routing import Route
from eventyard.domain.models import Environment
from eventyard.services.container import Services
from eventyard.services.projects import init_project
from eventyard.store.db import Db

pytestmark = pytest.mark.anyio

EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"
SESSION = "eventyard_session"
UNGUARDED = {
    ("GET", "/dashboard/login"),
    ("POST", "/dashboard/login"),
    ("GET", "/dashboard/static/{name}"),
}


def dashboard_routes() -> list[Route]:
    return [r for r in all_routes() if r.path.startswith("/dashboard")]


def guarded(method: str) -> list[Route]:
    return [r for r in dashboard_routes() if r.guard is not None and r.method == method]


def _ids(routes: list[Route]) -> list[str]:
    return [f"{r.method} {r.path}" for r in routes]


GUARDED_GETS = guarded("GET")
GUARDED_POSTS = guarded("POST")


@dataclass
class Dashboard:
    client: httpx.AsyncClient
    project_id: str
    trigger_id: str
    event_id: str
    consumer_id: str
    key_id: str

    def path(self, route: Route) -> str:
        """The route's path with its parameters filled: real ids where there are some."""
        known = {
            "project": self.project_id,
            "env": "live",
            "trigger_id": self.trigger_id,
            "event_id": self.event_id,
            "consumer_id": self.consumer_id,
            "key_id": self.key_id,
            "name": "app.css",
        }

        def fill(match: re.Match[str]) -> str:
            name = match.group(1)
            return quote(known.get(name, f"unknown_{name}"), safe="")

        return re.sub(r"\{(\w+)\}", fill, route.path)


@pytest.fixture
async def dash(client: httpx.AsyncClient, services: Services) -> Dashboard:
    made = await init_project(services.store, services.clock, "acme")
    trigger = await services.triggers.create(
        made.project.id, {"name": "Successful Payment", "id": "successful_payment"}
    )
    await services.accounts.create_user(EMAIL, PASSWORD)
    live = {"Authorization": f"Bearer {made.keys[Environment.LIVE]}"}
    consumer = await client.post(
        "/v1/consumers", json={"name": "batch", "kind": "pull"}, headers=live
    )
    assert consumer.status_code == 201, consumer.text
    event = await client.post(
        "/v1/events", json={"trigger": trigger.id, "user_id": "u1"}, headers=live
    )
    assert event.status_code == 201, event.text
    keys = await client.get("/v1/keys", headers=live)
    return Dashboard(
        client,
        made.project.id,
        trigger.id,
        event.json()["id"],
        consumer.json()["id"],
        keys.json()["data"][0]["id"],
    )


def _login_token(page: httpx.Response) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None, page.text
    return found.group(1)


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each Set-Cookie of the response by its name: the whole header line."""
    lines = response.headers.get_list("set-cookie")
    return {line.split("=", 1)[0]: line for line in lines}


def _cookie_value(line: str) -> str:
    return line.split(";", 1)[0].split("=", 1)[1]


async def sign_in(
    client: httpx.AsyncClient, email: str = EMAIL, password: str = PASSWORD, next_path: str = ""
) -> httpx.Response:
    """The sign-in form as a browser uses it; the client's cookie jar is left empty."""
    page = await client.get("/dashboard/login")
    assert page.status_code == 200
    response = await client.post(
        "/dashboard/login",
        data={
            "csrf": _login_token(page),
            "email": email,
            "password": password,
            "next": next_path,
        },
    )
    client.cookies.clear()
    return response


async def session_of(client: httpx.AsyncClient) -> str:
    response = await sign_in(client)
    assert response.status_code == 303, response.text
    return _cookie_value(_set_cookies(response)[SESSION])


def with_session(token: str) -> dict[str, str]:
    return {"cookie": f"{SESSION}={token}"}


async def csrf_of(client: httpx.AsyncClient, token: str, project_id: str) -> str:
    page = await client.get(f"/dashboard/p/{project_id}/live/triggers", headers=with_session(token))
    assert page.status_code == 200, page.text
    return _login_token(page)


async def snapshot(services: Services) -> dict[str, list[str]]:
    """Every row of every table, as text: to prove a refused request changed nothing."""

    def read(db: Db) -> dict[str, list[str]]:
        if db.backend == "sqlite":
            names = [
                r["name"]
                for r in db.all(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                    " AND name NOT LIKE 'sqlite_%'"
                )
            ]
        else:
            names = [
                r["table_name"]
                for r in db.all(
                    "SELECT table_name FROM information_schema.tables"
                    " WHERE table_schema = 'public' AND table_type = 'BASE TABLE'"
                )
            ]
        return {
            name: sorted(repr(tuple(dict(row).items())) for row in db.all(f"SELECT * FROM {name}"))
            for name in sorted(names)
        }

    return await services.store.read(read)


# --- the route table ------------------------------------------------------------------------


def test_only_the_sign_in_page_and_static_files_are_open_without_a_session() -> None:
    open_routes = {(r.method, r.path) for r in dashboard_routes() if r.guard is None}
    assert open_routes == UNGUARDED
    assert GUARDED_GETS, "the dashboard has no guarded pages?"
    assert GUARDED_POSTS, "the dashboard has no guarded forms?"
    for route in dashboard_routes():
        assert not route.include_in_schema, f"{route.path} is in /openapi.json"


@pytest.mark.parametrize("route", GUARDED_GETS, ids=_ids(GUARDED_GETS))
async def test_a_page_without_a_session_redirects_to_sign_in_with_next(
    dash: Dashboard, route: Route
) -> None:
    path = dash.path(route)
    response = await dash.client.get(path)
    assert response.status_code == 303, response.text
    assert response.headers["location"] == f"/dashboard/login?next={quote(path, safe='')}"
    # A cookie that is not a session is the same as none.
    forged = await dash.client.get(path, headers=with_session("forged-token"))
    assert forged.status_code == 303
    assert forged.headers["location"].startswith("/dashboard/login?next=")


SIGNED_IN_GETS = [r for r in GUARDED_GETS if not r.path.endswith("/stream")]


@pytest.mark.parametrize("route", SIGNED_IN_GETS, ids=_ids(SIGNED_IN_GETS))
async def test_every_page_opens_for_a_signed_in_user(dash: Dashboard, route: Route) -> None:
    """Past the guard, with real ids, every page renders (or sends on to one that does)."""
    token = await session_of(dash.client)
    path = dash.path(route)
    if route.path == "/dashboard/switch":
        path += f"?project={dash.project_id}&env=test&section=events"
    response = await dash.client.get(path, headers=with_session(token))
    if response.status_code == 303:
        location = response.headers["location"]
        assert location.startswith(f"/dashboard/p/{dash.project_id}/"), location
        response = await dash.client.get(location, headers=with_session(token))
    assert response.status_code == 200, (path, response.text[:2000])
    assert "text/html" in response.headers["content-type"]
    assert "content-security-policy" in response.headers
    assert "Sign out" in response.text


async def test_next_keeps_the_query_string(dash: Dashboard) -> None:
    path = f"/dashboard/p/{dash.project_id}/live/triggers?notice=created"
    response = await dash.client.get(path)
    assert response.status_code == 303
    assert response.headers["location"] == f"/dashboard/login?next={quote(path, safe='')}"


@pytest.mark.parametrize("route", GUARDED_POSTS, ids=_ids(GUARDED_POSTS))
async def test_a_form_post_without_a_session_is_refused(
    dash: Dashboard, services: Services, route: Route
) -> None:
    before = await snapshot(services)
    response = await dash.client.post(dash.path(route), data={"csrf": "anything"})
    assert response.status_code == 303
    assert response.headers["location"].startswith("/dashboard/login?next=")
    assert await snapshot(services) == before


@pytest.mark.parametrize("route", GUARDED_POSTS, ids=_ids(GUARDED_POSTS))
async def test_a_form_post_without_its_csrf_token_is_refused_and_changes_nothing(
    dash: Dashboard, services: Services, route: Route
) -> None:
    token = await session_of(dash.client)
    csrf = await csrf_of(dash.client, token, dash.project_id)
    before = await snapshot(services)
    path = dash.path(route)
    attempts: list[dict[str, Any]] = [
        {"data": {"name": "x"}},  # a form whose hidden token was removed
        {"data": {"csrf": ""}},
        {"data": {"csrf": csrf + "x"}},  # a wrong one
        {"data": {"csrf": "x" * len(csrf)}},
        # The right token, from another site's page (or an opaque origin).
        {"data": {"csrf": csrf}, "headers": {"origin": "https://evil.example"}},
        {"data": {"csrf": csrf}, "headers": {"origin": "http://eventyard.test.evil.example"}},
        {"data": {"csrf": csrf}, "headers": {"origin": "null"}},
    ]
    for attempt in attempts:
        headers = {**with_session(token), **attempt.get("headers", {})}
        response = await dash.client.post(path, data=attempt["data"], headers=headers)
        assert response.status_code == 403, (attempt, response.text)
        assert "text/html" in response.headers["content-type"]
        assert "CSRF" in response.text
    assert await snapshot(services) == before
    # The session is still good: nothing, not even sign-out, happened.
    page = await dash.client.get("/dashboard/", headers=with_session(token))
    assert page.status_code == 303
    assert not page.headers["location"].startswith("/dashboard/login")


async def test_the_right_token_from_the_same_origin_is_accepted(dash: Dashboard) -> None:
    token = await session_of(dash.client)
    csrf = await csrf_of(dash.client, token, dash.project_id)
    headers = {**with_session(token), "origin": "http://eventyard.test"}
    response = await dash.client.post("/dashboard/logout", data={"csrf": csrf}, headers=headers)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/login"


async def test_each_session_has_its_own_csrf_token(dash: Dashboard) -> None:
    first = await session_of(dash.client)
    second = await session_of(dash.client)
    first_csrf = await csrf_of(dash.client, first, dash.project_id)
    assert first_csrf != await csrf_of(dash.client, second, dash.project_id)
    # One session's token does not work with the other's cookie.
    response = await dash.client.post(
        "/dashboard/logout", data={"csrf": first_csrf}, headers=with_session(second)
    )
    assert response.status_code == 403


# --- signing in and out ---------------------------------------------------------------------


async def test_a_wrong_password_is_a_401_page_with_a_message_and_no_session(
    dash: Dashboard,
) -> None:
    for email, password in ((EMAIL, PASSWORD + "!"), ("nobody@example.com", PASSWORD)):
        response = await sign_in(dash.client, email, password)
        assert response.status_code == 401
        assert "text/html" in response.headers["content-type"]
        assert "The email or the password is wrong." in response.text
        assert 'role="alert"' in response.text
        assert SESSION not in _set_cookies(response)
        # The form comes back with the email filled in, and a fresh token to try again.
        assert f'value="{email}"' in response.text
        assert _login_token(response)


async def test_a_sign_in_without_the_login_token_is_refused(dash: Dashboard) -> None:
    response = await dash.client.post(
        "/dashboard/login", data={"csrf": "made-up", "email": EMAIL, "password": PASSWORD}
    )
    assert response.status_code == 403
    assert SESSION not in _set_cookies(response)
    # A token from the page but no cookie to match it (another site posting the form).
    page = await dash.client.get("/dashboard/login")
    dash.client.cookies.clear()
    response = await dash.client.post(
        "/dashboard/login",
        data={"csrf": _login_token(page), "email": EMAIL, "password": PASSWORD},
    )
    assert response.status_code == 403
    assert SESSION not in _set_cookies(response)


async def test_the_session_cookie_is_httponly_lax_and_not_secure_over_http(
    dash: Dashboard,
) -> None:
    response = await sign_in(dash.client)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/"
    line = _set_cookies(response)[SESSION]
    attributes = [part.strip().lower() for part in line.split(";")[1:]]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "secure" not in attributes
    assert "path=/dashboard" in attributes
    assert f"max-age={12 * 3600}" in attributes
    assert len(_cookie_value(line)) >= 40  # 256 random bits


@pytest.fixture
async def https_client(app: EventyardApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://eventyard.test") as c:
        yield c


async def test_the_session_cookie_is_secure_over_https(
    dash: Dashboard, https_client: httpx.AsyncClient
) -> None:
    response = await sign_in(https_client)
    assert response.status_code == 303
    cookies = _set_cookies(response)
    for name in (SESSION, "eventyard_login_csrf"):
        attributes = [part.strip().lower() for part in cookies[name].split(";")[1:]]
        assert "secure" in attributes, name
        assert "httponly" in attributes, name
    # And it works there.
    token = _cookie_value(cookies[SESSION])
    page = await https_client.get(
        f"/dashboard/p/{dash.project_id}/live/triggers", headers=with_session(token)
    )
    assert page.status_code == 200


async def test_pages_carry_the_security_headers(dash: Dashboard) -> None:
    token = await session_of(dash.client)
    page = await dash.client.get(
        f"/dashboard/p/{dash.project_id}/live/triggers", headers=with_session(token)
    )
    assert page.status_code == 200
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"


async def test_signing_out_ends_the_session_and_the_old_cookie_no_longer_works(
    dash: Dashboard,
) -> None:
    token = await session_of(dash.client)
    triggers = f"/dashboard/p/{dash.project_id}/live/triggers"
    assert (await dash.client.get(triggers, headers=with_session(token))).status_code == 200
    csrf = await csrf_of(dash.client, token, dash.project_id)
    out = await dash.client.post(
        "/dashboard/logout", data={"csrf": csrf}, headers=with_session(token)
    )
    assert out.status_code == 303
    assert out.headers["location"] == "/dashboard/login"
    cleared = _set_cookies(out)[SESSION]
    assert _cookie_value(cleared) == ""
    assert "max-age=0" in cleared.lower()
    # The browser forgets the cookie; one that kept it gets nowhere either.
    again = await dash.client.get(triggers, headers=with_session(token))
    assert again.status_code == 303
    assert again.headers["location"].startswith("/dashboard/login")


@pytest.mark.parametrize(
    "next_path",
    [
        "https://evil.example",
        "https://evil.example/dashboard/",
        "//evil.example/dashboard/",
        "/elsewhere",
        "/v1/events",
        "javascript:alert(1)",
        "/dashboardx/",
    ],
)
async def test_next_only_leads_within_the_dashboard(dash: Dashboard, next_path: str) -> None:
    page = await dash.client.get("/dashboard/login", params={"next": next_path})
    assert 'name="next" value="/dashboard/"' in page.text
    dash.client.cookies.clear()
    response = await sign_in(dash.client, next_path=next_path)
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/"


async def test_next_leads_back_to_the_page_asked_for(dash: Dashboard) -> None:
    wanted = f"/dashboard/p/{dash.project_id}/live/triggers/{dash.trigger_id}"
    redirect = await dash.client.get(wanted)
    login_url = redirect.headers["location"]
    page = await dash.client.get(login_url)
    assert f'name="next" value="{wanted}"' in page.text
    response = await dash.client.post(
        "/dashboard/login",
        data={"csrf": _login_token(page), "email": EMAIL, "password": PASSWORD, "next": wanted},
    )
    dash.client.cookies.clear()
    assert response.status_code == 303
    assert response.headers["location"] == wanted
    token = _cookie_value(_set_cookies(response)[SESSION])
    shown = await dash.client.get(wanted, headers=with_session(token))
    assert shown.status_code == 200
    assert "successful_payment" in shown.text


async def test_a_wrong_password_keeps_next_for_the_second_try(dash: Dashboard) -> None:
    wanted = f"/dashboard/p/{dash.project_id}/live/triggers"
    page = await dash.client.get("/dashboard/login", params={"next": wanted})
    wrong = await dash.client.post(
        "/dashboard/login",
        data={"csrf": _login_token(page), "email": EMAIL, "password": "nope", "next": wanted},
    )
    assert wrong.status_code == 401
    assert f'name="next" value="{wanted}"' in wrong.text
    right = await dash.client.post(
        "/dashboard/login",
        data={"csrf": _login_token(wrong), "email": EMAIL, "password": PASSWORD, "next": wanted},
    )
    dash.client.cookies.clear()
    assert right.status_code == 303
    assert right.headers["location"] == wanted


@pytest.mark.parametrize(
    ("next_path", "location"),
    [
        ("/dashboard/€", "/dashboard/%E2%82%AC"),
        ("/dashboard/x\r\nSet-Cookie: a=b", "/dashboard/x%0D%0ASet-Cookie:%20a=b"),
    ],
)
async def test_next_with_odd_characters_is_encoded_not_a_500(
    dash: Dashboard, next_path: str, location: str
) -> None:
    response = await sign_in(dash.client, next_path=next_path)
    assert response.status_code == 303
    assert response.headers["location"] == location
    assert SESSION in _set_cookies(response)
