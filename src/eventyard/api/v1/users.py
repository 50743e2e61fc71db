"""`/v1/users/{user_id}`: erase an end user's events."""

from __future__ import annotations

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, json_response
from eventyard.api.routing import RouteTable
from eventyard.api.schemas import AUTH_ERRORS, json_body, ref
from eventyard.clock import format_us
from eventyard.domain.models import Scope
from eventyard.services.users import erase_user

routes = RouteTable()


@routes.add(
    "DELETE",
    "/v1/users/{user_id}",
    scope=Scope.DELETE,
    summary="Erase a user's events in this project and environment",
    tags=("users",),
    responses={200: json_body("What was removed.", ref("Erasure")), **AUTH_ERRORS},
)
async def erase(req: Request, ctx: Context) -> Response:
    services = ctx.services
    erasure = await erase_user(
        services.store, services.clock, ctx.principal, req.path_params["user_id"]
    )
    return json_response(
        {
            "user_id": erasure.user_id,
            "deleted": {"events": erasure.events},
            "erased_at": format_us(erasure.erased_at),
        }
    )
