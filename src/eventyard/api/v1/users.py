"""`/v1/users/{user_id}`: erase an end user's data; `/v1/erasures`: the record of erasures."""

from __future__ import annotations

from typing import Any

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, json_response
from eventyard.api.routing import RouteTable
from eventyard.api.schemas import AUTH_ERRORS, json_body, problem, ref
from eventyard.api.v1.events import limit_param
from eventyard.clock import format_us
from eventyard.domain.models import Scope
from eventyard.errors import InvalidCursor
from eventyard.ids import is_valid_id
from eventyard.services.events import DEFAULT_PAGE, MAX_PAGE
from eventyard.services.users import erase_user, erasures
from eventyard.store.erasures import ErasureRecord

routes = RouteTable()


@routes.add(
    "DELETE",
    "/v1/users/{user_id}",
    scope=Scope.DELETE,
    summary="Erase a user's events and everything derived from them, in this project and "
    "environment",
    tags=("users",),
    responses={200: json_body("The receipt: what was removed.", ref("Erasure")), **AUTH_ERRORS},
)
async def erase(req: Request, ctx: Context) -> Response:
    services = ctx.services
    erasure = await erase_user(
        services.store, services.clock, ctx.principal, req.path_params["user_id"]
    )
    return json_response(
        {
            "id": erasure.id,
            "user_id": erasure.user_id,
            "deleted": erasure.counts,
            "started_at": format_us(erasure.started_at),
            "erased_at": format_us(erasure.erased_at),
        }
    )


def _record_json(record: ErasureRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "environment": record.environment.value,
        "requested_by": record.requested_by,
        "deleted": record.counts,
        "started_at": format_us(record.started_at),
        "erased_at": None if record.finished_at is None else format_us(record.finished_at),
    }


_LIST_PARAMS = (
    {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE, "default": DEFAULT_PAGE},
    },
    {
        "name": "cursor",
        "in": "query",
        "schema": {"type": "string"},
        "description": "the next_cursor of the previous page",
    },
)


@routes.add(
    "GET",
    "/v1/erasures",
    scope=Scope.DELETE,
    summary="List erasures in this project and environment, newest first",
    tags=("users",),
    query=_LIST_PARAMS,
    responses={
        200: json_body("A page of erasure records.", ref("ErasurePage")),
        400: problem("A bad limit or cursor."),
        **AUTH_ERRORS,
    },
)
async def list_erasures(req: Request, ctx: Context) -> Response:
    params = req.query_params({"limit", "cursor"})
    limit = limit_param(params)
    cursor = params.get("cursor") or None
    if cursor is not None and not is_valid_id(cursor, "ers"):
        raise InvalidCursor(
            f"The cursor {cursor[:64]!r} is not one this server gave out; "
            "pass the next_cursor of a previous page unchanged."
        )
    rows = await erasures(ctx.services.store, ctx.principal, cursor, limit + 1)
    page = rows[:limit]
    return json_response(
        {
            "data": [_record_json(r) for r in page],
            "next_cursor": page[-1].id if len(rows) > limit else None,
        }
    )
