"""The dashboard's plumbing: its route table, the sign-in guard, CSRF, and rendering.

Every dashboard route is declared with `page(...)`, which attaches the guard: a route that
needs a signed-in user gets the session from its cookie (or a redirect to the sign-in page),
every POST must carry the session's CSRF token, and a route under `/dashboard/p/{project}/
{env}/` gets a `Principal` for that project and environment with every scope, so its handler
calls the same services the v1 API calls. Templates are Jinja2 with autoescaping on for
everything: an event's payload is text in the page, never markup. Pages are served with a
Content-Security-Policy that allows only the dashboard's own script and style files, so
even a missed escape could not run an injected script.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
import orjson

from eventyard.api.context import Context
from eventyard.api.http import Form, Request, Response, html_response, redirect
from eventyard.api.routing import PUBLIC, Handler, RouteTable
from eventyard.domain.models import ApiKey, Environment, Principal, Project, Scope
from eventyard.errors import EventyardError, Forbidden, NotFound, Unauthenticated
from eventyard.services import projects
from eventyard.services.accounts import csrf_matches
from eventyard.store.accounts import DashboardSession

BASE = "/dashboard"
SESSION_COOKIE = "eventyard_session"
LOGIN_CSRF_COOKIE = "eventyard_login_csrf"
REVEAL_COOKIE = "eventyard_reveal"
_MAX_SESSION_COOKIES = 4  # each is a lookup; a browser has one, two when one was planted
_REVEAL_SECONDS = 120
FORM_LIMIT = 256 * 1024  # a trigger's schema is the largest thing a form carries
_SAFE_METHODS = {"GET", "HEAD"}
_HERE = Path(__file__).parent
STATIC_DIR = _HERE / "static"

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'"
    ),
    "x-frame-options": "DENY",
    # A page the dashboard opens (or that opens it) gets no handle on its window.
    "cross-origin-opener-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class SignInRequired(Unauthenticated):
    code = "sign_in_required"

    def __init__(self, next_path: str) -> None:
        super().__init__("Sign in to see this page.")
        self.next_path = next_path


class CsrfRefused(Forbidden):
    code = "csrf_refused"


def _when(us: int | None) -> str:
    if us is None:
        return "never"
    moment = dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(us: int | None) -> str:
    if us is None:
        return ""
    return dt.datetime.fromtimestamp(us / 1_000_000, tz=dt.UTC).isoformat(timespec="seconds")


def _ago(us: int | None, now_us: int | None = None) -> str:
    if us is None:
        return "never"
    now = now_us if now_us is not None else int(dt.datetime.now(dt.UTC).timestamp() * 1e6)
    seconds = max(0, (now - us) // 1_000_000)
    for size, unit in ((86400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


def _pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS).decode()


TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(_HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
TEMPLATES.filters["when"] = _when
TEMPLATES.filters["iso"] = _iso
TEMPLATES.filters["ago"] = _ago
TEMPLATES.filters["pretty_json"] = _pretty_json
TEMPLATES.filters["urlpart"] = lambda value: quote(str(value), safe="")


def project_base(project_id: str, environment: Environment | str) -> str:
    env = environment.value if isinstance(environment, Environment) else environment
    return f"{BASE}/p/{quote(project_id, safe='')}/{env}"


def dashboard_principal(session: DashboardSession, project: Project, env: Environment) -> Principal:
    """What a signed-in dashboard user acts as: every scope, in one project and environment."""
    key = ApiKey(
        id=f"dashboard:{session.user.email}",
        project_id=project.id,
        environment=env,
        name=f"dashboard ({session.user.email})",
        prefix="",
        scopes=frozenset(Scope),
        created_at=session.user.created_at,
        last_used_at=None,
        revoked_at=None,
    )
    return Principal(key=key, project=project)


def _same_origin(req: Request) -> bool:
    """A browser names the page a POST comes from; refuse one from another site."""
    origin = req.header("origin")
    if origin is None or origin == "null":
        return origin is None
    return urlsplit(origin).netloc == req.header("host")


def session_tokens(req: Request) -> list[str]:
    """Every session cookie the browser sent, in its order (at most `_MAX_SESSION_COOKIES`).

    A browser sends two cookies of one name when they were set for different paths, the
    more specific path first: an id planted for `/dashboard/` (from a sibling subdomain,
    say) comes before ours, set for `/dashboard`. Reading only the first would let a
    planted id shadow the real session, or stand in for it.
    """
    tokens: list[str] = []
    for part in (req.header("cookie") or "").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name == SESSION_COOKIE and value:
            tokens.append(value)
            if len(tokens) == _MAX_SESSION_COOKIES:
                break
    return tokens


async def current_session(req: Request, ctx: Context) -> tuple[str, DashboardSession] | None:
    """The first of the browser's session cookies that is a live session, with its token."""
    for token in session_tokens(req):
        session = await ctx.services.accounts.session(token)
        if session is not None:
            return token, session
    return None


async def signed_in(req: Request, ctx: Context) -> None:
    found = await current_session(req, ctx)
    session = found[1] if found else None
    if session is None:
        query = req.scope.get("query_string", b"").decode("latin-1")
        raise SignInRequired(req.path + (f"?{query}" if query else ""))
    ctx.session = session
    if req.method not in _SAFE_METHODS:
        form = await req.form(FORM_LIMIT)
        if not _same_origin(req) or not csrf_matches(session, form.get("csrf") or None):
            raise CsrfRefused(
                "This form was sent without this page's security token (CSRF token), or from "
                "another site; nothing was changed. Reload the page and try again."
            )
    project_id = req.path_params.get("project")
    if project_id is None:
        return
    try:
        env = Environment(req.path_params.get("env", ""))
    except ValueError:
        raise NotFound("The environment is live or test.") from None
    project = await projects.get_project(ctx.services.store, project_id)
    ctx.principal_or_none = dashboard_principal(session, project, env)


def set_cookie(
    req: Request,
    name: str,
    value: str,
    max_age: int,
    *,
    same_site: str = "Lax",
    path: str = BASE,
) -> str:
    """A Set-Cookie value: HttpOnly always, Secure when the request came over TLS."""
    secure = "; Secure" if req.is_https else ""
    return f"{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite={same_site}{secure}"


def reveal_once(req: Request, response: Response, page: str, secret: str) -> Response:
    """Let the GET of `page` (where `response` redirects) show `secret`, once.

    A secret exists only in the answer to the form that made it. Rendering it in the POST's
    answer would make a reload submit the form again (a second key); instead the secret
    rides to the next page in a short-lived HttpOnly cookie scoped to that page's path,
    which the page clears as it shows it.
    """
    cookie = set_cookie(req, REVEAL_COOKIE, secret, _REVEAL_SECONDS, same_site="Strict", path=page)
    response.cookies.append(cookie)
    return response


def revealed(req: Request) -> str | None:
    """The secret `reveal_once` left for this page, if any (see `forget_revealed`)."""
    return req.cookie(REVEAL_COOKIE) or None


def forget_revealed(req: Request, response: Response) -> Response:
    """Clear the one-time secret as the page showing it is answered."""
    if req.cookie(REVEAL_COOKIE):
        response.cookies.append(
            set_cookie(req, REVEAL_COOKIE, "", 0, same_site="Strict", path=req.path)
        )
    return response


async def form_of(req: Request) -> Form:
    return await req.form(FORM_LIMIT)


async def render(
    req: Request, ctx: Context, template: str, status: int = 200, **values: Any
) -> Response:
    """A page of the dashboard: `template` inside the layout, with the switcher filled in."""
    principal = ctx.principal_or_none
    projects = await list_projects(ctx) if ctx.session else []
    page: dict[str, Any] = {
        "session": ctx.session,
        "csrf": ctx.session.csrf_token if ctx.session else "",
        "project": principal.project if principal else None,
        "env": principal.environment.value if principal else None,
        "base": project_base(principal.project_id, principal.environment) if principal else BASE,
        "path": req.path,
        "projects": projects,
        "now_us": ctx.services.clock.now_us(),
        "notice": None,
        "section": "",
    }
    page.update(values)
    html = TEMPLATES.get_template(template).render(page)
    return html_response(html, status, dict(SECURITY_HEADERS))


def render_error(exc: EventyardError) -> Response:
    if isinstance(exc, SignInRequired):
        return redirect(f"{BASE}/login?next={quote(exc.next_path, safe='')}")
    html = TEMPLATES.get_template("error.html").render(
        status=exc.status, title=exc.title, message=exc.message, errors=exc.errors
    )
    response = html_response(html, exc.status, dict(SECURITY_HEADERS))
    response.headers.update(exc.headers)
    return response


def origin_of(req: Request) -> str:
    """This server as the browser reached it, for URLs and examples shown on a page."""
    scheme = "https" if req.is_https else "http"
    return f"{scheme}://{req.header('host') or 'localhost'}"


def parse_utc(value: str) -> int:
    """A `datetime-local` value (no zone: the forms say UTC) as epoch microseconds.

    Raises ValueError for anything that is not a date and time.
    """
    moment = dt.datetime.fromisoformat(value.strip())
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return int(moment.timestamp() * 1_000_000)


def safe_next(value: str | None) -> str:
    """Where to go after signing in: a dashboard path only, never another site.

    Percent-encoded as it goes into the Location header, so a path holding `€` or a line
    break can neither break the header nor the answer.
    """
    if value and value.startswith(BASE + "/") and not value.startswith("//"):
        return quote(value, safe="/?=&%#:;,+@!$'()*~")
    return BASE + "/"


class Pages(RouteTable):
    """The dashboard's routes: HTML error pages, not in /openapi.json, behind the guard."""

    def page(
        self, method: str, path: str, *, summary: str, signed_in_only: bool = True
    ) -> Callable[[Handler], Handler]:
        return self.add(
            method,
            BASE + path,
            scope=PUBLIC,
            summary=summary,
            include_in_schema=False,
            render_error=render_error,
            guard=signed_in if signed_in_only else None,
        )


async def list_projects(ctx: Context) -> list[Project]:
    return await projects.list_projects(ctx.services.store)
