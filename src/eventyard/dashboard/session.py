"""Signing in and out, the dashboard's front door, the switcher and its static files."""

from __future__ import annotations

import secrets

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, redirect
from eventyard.dashboard.web import (
    BASE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    STATIC_DIR,
    CsrfRefused,
    Pages,
    form_of,
    list_projects,
    project_base,
    render,
    safe_next,
    session_tokens,
    set_cookie,
)
from eventyard.errors import NotFound, TooManyRequests, Unauthenticated

routes = Pages()

_STATIC = {
    "app.css": "text/css; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "live.js": "text/javascript; charset=utf-8",
}
_SECTIONS = {"", "triggers", "events", "consumers", "keys"}


@routes.page("GET", "/login", summary="The sign-in page", signed_in_only=False)
async def login_page(req: Request, ctx: Context) -> Response:
    return await _login_form(req, ctx, error=None, email="")


async def _login_form(
    req: Request, ctx: Context, *, error: str | None, email: str, status: int = 200
) -> Response:
    token = secrets.token_urlsafe(24)
    next_path = safe_next(
        (await form_of(req)).get("next") if req.method == "POST" else dict(req.query).get("next")
    )
    response = await render(
        req,
        ctx,
        "login.html",
        status=status,
        login_csrf=token,
        next_path=next_path,
        error=error,
        email=email,
    )
    response.cookies.append(set_cookie(req, LOGIN_CSRF_COOKIE, token, 3600, same_site="Strict"))
    return response


@routes.page("POST", "/login", summary="Sign in", signed_in_only=False)
async def login(req: Request, ctx: Context) -> Response:
    form = await form_of(req)
    expected = req.cookie(LOGIN_CSRF_COOKIE)
    if not expected or not secrets.compare_digest(
        expected.encode(), form.get("csrf").encode("utf-8", "replace")
    ):
        raise CsrfRefused(
            "The sign-in form was sent without its security token (CSRF token); nothing was "
            "done. Reload the sign-in page and try again."
        )
    email = form.get("email")
    try:
        new = await ctx.services.accounts.sign_in(email, form.get("password"))
    except (Unauthenticated, TooManyRequests) as exc:
        response = await _login_form(req, ctx, error=exc.message, email=email, status=exc.status)
        response.headers.update(exc.headers)
        return response
    # The new session has a new id, never the one the browser came with, so an id planted
    # before sign-in (session fixation) opens nothing; and that old session is ended, so a
    # planted session of someone else's does not live on beside the new one.
    for previous in session_tokens(req):
        await ctx.services.accounts.sign_out(previous)
    max_age = ctx.services.settings.session_hours * 3600
    response = redirect(safe_next(form.get("next")))
    response.cookies.append(set_cookie(req, SESSION_COOKIE, new.token, max_age))
    response.cookies.append(set_cookie(req, LOGIN_CSRF_COOKIE, "", 0, same_site="Strict"))
    return response


@routes.page("POST", "/logout", summary="Sign out")
async def logout(req: Request, ctx: Context) -> Response:
    for token in session_tokens(req):
        await ctx.services.accounts.sign_out(token)
    response = redirect(f"{BASE}/login")
    response.cookies.append(set_cookie(req, SESSION_COOKIE, "", 0))
    return response


@routes.page("GET", "/", summary="The dashboard's front door: the first project's overview")
async def front_door(req: Request, ctx: Context) -> Response:
    projects = await list_projects(ctx)
    if not projects:
        return await render(req, ctx, "no_projects.html")
    return redirect(project_base(projects[0].id, "live") + "/")


@routes.page("GET", "/switch", summary="The project and environment switcher")
async def switch(req: Request, ctx: Context) -> Response:
    query = dict(req.query)
    env = query.get("env", "live")
    if env not in ("live", "test"):
        env = "live"
    section = query.get("section", "")
    if section not in _SECTIONS:
        section = ""
    project_id = query.get("project", "")
    if project_id not in {p.id for p in await list_projects(ctx)}:
        raise NotFound(f"There is no project {project_id!r}.")
    return redirect(f"{project_base(project_id, env)}/{section}")


@routes.page(
    "GET", "/static/{name}", summary="The dashboard's CSS and script", signed_in_only=False
)
async def static(req: Request, ctx: Context) -> Response:
    name = req.path_params["name"]
    media = _STATIC.get(name)
    if media is None:
        raise NotFound(f"There is no static file {name!r}.")
    body = (STATIC_DIR / name).read_bytes()
    headers = {"cache-control": "public, max-age=300", "x-content-type-options": "nosniff"}
    return Response(200, body, media, headers)
