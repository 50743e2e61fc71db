"""`/v1/keys`: mint, list, read and revoke API keys (admin scope).

A key manages keys of its own project and environment only: a test admin key cannot mint,
see or revoke live keys.
"""

from __future__ import annotations

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, json_response
from eventyard.api.routing import RouteTable
from eventyard.api.schemas import AUTH_ERRORS, BODY_ERRORS, json_body, problem, ref
from eventyard.api.v1.bodies import read_object
from eventyard.domain.models import ApiKey, Principal, Scope
from eventyard.errors import (
    FieldError,
    InvalidRequest,
    KeyNotFound,
    ValidationFailed,
    unknown_fields,
)
from eventyard.services.keys import MAX_KEY_NAME, parse_scopes
from eventyard.views import key_json

routes = RouteTable()
_NOT_FOUND = {404: problem("No such key in this project and environment.")}


def _own(principal: Principal, key: ApiKey) -> ApiKey:
    if key.environment is not principal.environment:
        raise KeyNotFound(f"No key {key.id!r} in this project and environment.")
    return key


@routes.add(
    "POST",
    "/v1/keys",
    scope=Scope.ADMIN,
    summary="Create an API key",
    tags=("keys",),
    body=ref("KeyInput"),
    responses={
        201: json_body("The key, with its secret shown this once.", ref("KeyCreated")),
        **AUTH_ERRORS,
        **BODY_ERRORS,
    },
)
async def create_key(req: Request, ctx: Context) -> Response:
    body = await read_object(req, ctx)
    principal = ctx.principal
    errors = unknown_fields(body, {"name", "scopes", "environment"})
    name = body.get("name", "")
    if not isinstance(name, str) or len(name) > MAX_KEY_NAME:
        errors.append(
            FieldError("$.name", f"must be a string of at most {MAX_KEY_NAME} characters")
        )
    scopes_raw = body.get("scopes")
    if not isinstance(scopes_raw, list) or not all(isinstance(s, str) for s in scopes_raw):
        errors.append(FieldError("$.scopes", "is required: an array of write, read, delete, admin"))
    env = body.get("environment", principal.environment.value)
    if env != principal.environment.value:
        errors.append(
            FieldError(
                "$.environment",
                f"must be {principal.environment.value!r}: a key creates keys of its own "
                "environment only",
            )
        )
    if errors:
        raise ValidationFailed("The key is not valid.", errors=errors)
    try:
        scopes = parse_scopes(scopes_raw or [])
    except InvalidRequest as exc:
        raise ValidationFailed(exc.message, errors=[FieldError("$.scopes", exc.message)]) from None
    key, secret = await ctx.services.keys.create(
        principal.project_id, principal.environment, scopes, name or "API key"
    )
    return json_response({**key_json(key), "key": secret}, 201)


@routes.add(
    "GET",
    "/v1/keys",
    scope=Scope.ADMIN,
    summary="List API keys",
    tags=("keys",),
    responses={200: json_body("The keys, without secrets.", ref("KeyList")), **AUTH_ERRORS},
)
async def list_keys(req: Request, ctx: Context) -> Response:
    principal = ctx.principal
    keys = await ctx.services.keys.list(principal.project_id)
    return json_response(
        {"data": [key_json(k) for k in keys if k.environment is principal.environment]}
    )


@routes.add(
    "GET",
    "/v1/keys/{key_id}",
    scope=Scope.ADMIN,
    summary="Read an API key",
    tags=("keys",),
    responses={200: json_body("The key.", ref("Key")), **_NOT_FOUND, **AUTH_ERRORS},
)
async def get_key(req: Request, ctx: Context) -> Response:
    principal = ctx.principal
    key = await ctx.services.keys.get(principal.project_id, req.path_params["key_id"])
    return json_response(key_json(_own(principal, key)))


@routes.add(
    "DELETE",
    "/v1/keys/{key_id}",
    scope=Scope.ADMIN,
    summary="Revoke an API key",
    tags=("keys",),
    responses={200: json_body("The revoked key.", ref("Key")), **_NOT_FOUND, **AUTH_ERRORS},
)
async def revoke_key(req: Request, ctx: Context) -> Response:
    principal = ctx.principal
    key_id = req.path_params["key_id"]
    _own(principal, await ctx.services.keys.get(principal.project_id, key_id))
    key = await ctx.services.keys.revoke(principal.project_id, key_id)
    return json_response(key_json(key))
