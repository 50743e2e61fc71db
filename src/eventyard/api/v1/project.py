"""`/v1/project`: the calling key's project and its settings."""

from __future__ import annotations

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, json_response
from eventyard.api.routing import RouteTable
from eventyard.api.schemas import AUTH_ERRORS, BODY_ERRORS, json_body, ref
from eventyard.api.v1.bodies import read_object
from eventyard.domain.models import ProjectMode, Scope
from eventyard.errors import FieldError, ValidationFailed, unknown_fields
from eventyard.services import projects
from eventyard.views import project_json

routes = RouteTable()


@routes.add(
    "GET",
    "/v1/project",
    scope=Scope.READ,
    summary="Read the project",
    tags=("project",),
    responses={200: json_body("The project.", ref("Project")), **AUTH_ERRORS},
)
async def get_project(req: Request, ctx: Context) -> Response:
    return json_response(project_json(ctx.principal.project))


@routes.add(
    "PATCH",
    "/v1/project",
    scope=Scope.ADMIN,
    summary="Change the project's settings (mode: open or strict; retention_days)",
    tags=("project",),
    body=ref("ProjectUpdate"),
    responses={200: json_body("The project.", ref("Project")), **AUTH_ERRORS, **BODY_ERRORS},
)
async def update_project(req: Request, ctx: Context) -> Response:
    body = await read_object(req, ctx)
    errors = unknown_fields(body, {"mode", "retention_days"})
    if not body:
        errors.append(FieldError("$", "must set mode or retention_days"))
    mode: ProjectMode | projects.Keep = projects.KEEP
    if "mode" in body:
        mode_raw = body["mode"]
        try:
            mode = ProjectMode(str(mode_raw))
        except ValueError:
            errors.append(FieldError("$.mode", f"must be 'open' or 'strict'; got {mode_raw!r}"))
    if errors:
        raise ValidationFailed("The project update is not valid.", errors=errors)
    project = await projects.update_project(
        ctx.services.store,
        ctx.principal.project_id,
        mode=mode,
        retention_days=body.get("retention_days", projects.KEEP),
    )
    ctx.services.keys.forget_cached()  # cached principals carry the project's settings
    return json_response(project_json(project))
