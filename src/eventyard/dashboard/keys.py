"""Settings → Secret keys: the project's keys, "+ Create secret key", and revoking one.

The list shows both environments' keys, since a project's operator manages both; the form
defaults to the environment in the path. A new key's secret exists only in the answer to
the create form — the store keeps its hash — so the form redirects to the list with the
secret in a one-time cookie (`reveal_once`): the list shows it once, and a reload neither
shows it again nor creates a second key.
"""

from __future__ import annotations

from typing import Any

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, redirect
from eventyard.dashboard.web import (
    Pages,
    forget_revealed,
    form_of,
    project_base,
    render,
    reveal_once,
    revealed,
)
from eventyard.domain.models import Environment, Scope
from eventyard.errors import FieldError, InvalidRequest
from eventyard.services.keys import MAX_KEY_NAME, parse_scopes

routes = Pages()

SCOPES = [s.value for s in Scope]
_NOTICES = {
    "revoked": "The key is revoked: requests that send it are refused from now on.",
}


async def _keys_page(
    req: Request,
    ctx: Context,
    *,
    values: dict[str, Any] | None = None,
    errors: list[FieldError] | None = None,
    created_id: str | None = None,
    created_secret: str | None = None,
) -> Response:
    principal = ctx.principal
    keys = await ctx.services.keys.list(principal.project_id)
    created_key = next((k for k in keys if k.id == created_id), None) if created_id else None
    keys.sort(key=lambda k: (k.revoked_at is not None, -k.created_at, k.id))
    return await render(
        req,
        ctx,
        "keys.html",
        status=422 if errors else 200,
        section="keys",
        keys=keys,
        scopes=SCOPES,
        environments=[e.value for e in Environment],
        values=values or {"scopes": ["write"], "environment": principal.environment.value},
        errors=errors or [],
        created_key=created_key,
        created_secret=created_secret,
        notice=_NOTICES.get(dict(req.query).get("notice", "")),
    )


@routes.page("GET", "/p/{project}/{env}/keys", summary="Settings: secret keys")
async def key_list(req: Request, ctx: Context) -> Response:
    created_id = dict(req.query).get("created")
    secret = None
    kept = revealed(req)
    if created_id and kept and kept.startswith(created_id + ":"):
        secret = kept.split(":", 1)[1]
    response = await _keys_page(req, ctx, created_id=created_id, created_secret=secret)
    return forget_revealed(req, response)


@routes.page("POST", "/p/{project}/{env}/keys", summary="Create a secret key")
async def create_key(req: Request, ctx: Context) -> Response:
    form = await form_of(req)
    name = form.get("name").strip()
    raw_scopes = form.getlist("scopes")
    env_value = form.get("environment", ctx.principal.environment.value)
    values = {"name": name, "scopes": raw_scopes, "environment": env_value}
    errors: list[FieldError] = []
    if not name:
        errors.append(FieldError("name", "Give the key a name, such as “billing server”."))
    elif len(name) > MAX_KEY_NAME:
        errors.append(FieldError("name", f"A name has at most {MAX_KEY_NAME} characters."))
    scopes = frozenset[Scope]()
    try:
        scopes = parse_scopes(raw_scopes)
    except InvalidRequest as exc:
        problem = exc.message if raw_scopes else "Choose at least one scope."
        errors.append(FieldError("scopes", problem[:1].upper() + problem[1:]))
    try:
        environment = Environment(env_value)
    except ValueError:
        errors.append(FieldError("environment", "The environment is live or test."))
        environment = ctx.principal.environment
    if errors:
        return await _keys_page(req, ctx, values=values, errors=errors)
    key, secret = await ctx.services.keys.create(
        ctx.principal.project_id, environment, scopes, name
    )
    page = f"{project_base(ctx.principal.project_id, ctx.principal.environment)}/keys"
    return reveal_once(req, redirect(f"{page}?created={key.id}"), page, f"{key.id}:{secret}")


@routes.page("POST", "/p/{project}/{env}/keys/{key_id}/revoke", summary="Revoke a secret key")
async def revoke_key(req: Request, ctx: Context) -> Response:
    await ctx.services.keys.revoke(ctx.principal.project_id, req.path_params["key_id"])
    base = project_base(ctx.principal.project_id, ctx.principal.environment)
    return redirect(f"{base}/keys?notice=revoked")
