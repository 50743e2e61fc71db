"""`/v1/triggers`: create, list, read, update and archive triggers."""

from __future__ import annotations

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, json_response
from eventyard.api.routing import RouteTable
from eventyard.api.schemas import AUTH_ERRORS, BODY_ERRORS, json_body, problem, ref
from eventyard.api.v1.bodies import read_object
from eventyard.domain.models import Scope
from eventyard.errors import InvalidRequest
from eventyard.views import trigger_json

routes = RouteTable()
_NOT_FOUND = {404: problem("No such trigger in this project.")}


@routes.add(
    "POST",
    "/v1/triggers",
    scope=Scope.ADMIN,
    summary="Create a trigger",
    tags=("triggers",),
    body=ref("TriggerInput"),
    responses={
        201: json_body("The trigger.", ref("Trigger")),
        409: problem("The id is taken."),
        **AUTH_ERRORS,
        **BODY_ERRORS,
    },
)
async def create_trigger(req: Request, ctx: Context) -> Response:
    body = await read_object(req, ctx)
    trigger = await ctx.services.triggers.create(ctx.principal.project_id, body)
    return json_response(trigger_json(trigger), 201)


@routes.add(
    "GET",
    "/v1/triggers",
    scope=Scope.READ,
    summary="List triggers",
    tags=("triggers",),
    query=(
        {
            "name": "archived",
            "in": "query",
            "schema": {"type": "boolean"},
            "description": "true to include archived triggers",
        },
    ),
    responses={
        200: json_body("The triggers.", ref("TriggerList")),
        400: problem("A bad archived value, or an unknown or repeated query parameter."),
        **AUTH_ERRORS,
    },
)
async def list_triggers(req: Request, ctx: Context) -> Response:
    params = req.query_params({"archived"})
    raw = params.get("archived", "false")
    if raw not in {"true", "false"}:
        raise InvalidRequest(f"archived must be true or false; got {raw!r}.")
    triggers = await ctx.services.triggers.list(
        ctx.principal.project_id, include_archived=raw == "true"
    )
    return json_response({"data": [trigger_json(t) for t in triggers]})


@routes.add(
    "GET",
    "/v1/triggers/{trigger_id}",
    scope=Scope.READ,
    summary="Read a trigger",
    tags=("triggers",),
    responses={200: json_body("The trigger.", ref("Trigger")), **_NOT_FOUND, **AUTH_ERRORS},
)
async def get_trigger(req: Request, ctx: Context) -> Response:
    trigger = await ctx.services.triggers.get(
        ctx.principal.project_id, req.path_params["trigger_id"]
    )
    return json_response(trigger_json(trigger))


@routes.add(
    "PATCH",
    "/v1/triggers/{trigger_id}",
    scope=Scope.ADMIN,
    summary="Update a trigger",
    tags=("triggers",),
    body=ref("TriggerUpdate"),
    responses={
        200: json_body("The trigger.", ref("Trigger")),
        **_NOT_FOUND,
        **AUTH_ERRORS,
        **BODY_ERRORS,
    },
)
async def update_trigger(req: Request, ctx: Context) -> Response:
    body = await read_object(req, ctx)
    trigger = await ctx.services.triggers.update(
        ctx.principal.project_id, req.path_params["trigger_id"], body
    )
    return json_response(trigger_json(trigger))


@routes.add(
    "DELETE",
    "/v1/triggers/{trigger_id}",
    scope=Scope.ADMIN,
    summary="Archive a trigger (its events stay; new events for it are refused)",
    tags=("triggers",),
    responses={
        200: json_body("The archived trigger.", ref("Trigger")),
        **_NOT_FOUND,
        **AUTH_ERRORS,
    },
)
async def archive_trigger(req: Request, ctx: Context) -> Response:
    trigger = await ctx.services.triggers.archive(
        ctx.principal.project_id, req.path_params["trigger_id"]
    )
    return json_response(trigger_json(trigger))
