"""`/v1/consumers`: webhook and pull consumers, their transactions, pull claims and replays."""

from __future__ import annotations

from typing import Any

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, json_response
from eventyard.api.routing import RouteTable
from eventyard.api.schemas import AUTH_ERRORS, BODY_ERRORS, json_body, problem, ref
from eventyard.api.v1.bodies import read_object
from eventyard.domain.jsonbody import whole_number
from eventyard.domain.models import ConsumerState, Scope
from eventyard.domain.timeparse import TimeParseError, parse_event_time
from eventyard.errors import FieldError, InvalidRequest, ValidationFailed, unknown_fields
from eventyard.services.consumers import MAX_CLAIM, MAX_LEASE_SECONDS, MAX_WAIT_SECONDS
from eventyard.views import consumer_json, event_json, transaction_json

routes = RouteTable()
_NOT_FOUND = {404: problem("No such consumer in this project and environment.")}
_ONE = {200: json_body("The consumer.", ref("Consumer")), **_NOT_FOUND, **AUTH_ERRORS}


@routes.add(
    "POST",
    "/v1/consumers",
    scope=Scope.ADMIN,
    summary="Create a webhook or pull consumer",
    tags=("consumers",),
    body=ref("ConsumerInput"),
    responses={
        201: json_body(
            "The consumer; a webhook consumer's `secret` is shown here.", ref("Consumer")
        ),
        **AUTH_ERRORS,
        **BODY_ERRORS,
    },
)
async def create_consumer(req: Request, ctx: Context) -> Response:
    body = await read_object(req, ctx)
    consumer = await ctx.services.consumers.create(ctx.principal, body)
    return json_response(consumer_json(consumer, with_secret=True), 201)


@routes.add(
    "GET",
    "/v1/consumers",
    scope=Scope.READ,
    summary="List consumers",
    tags=("consumers",),
    responses={200: json_body("The consumers.", ref("ConsumerList")), **AUTH_ERRORS},
)
async def list_consumers(req: Request, ctx: Context) -> Response:
    consumers = await ctx.services.consumers.list_consumers(ctx.principal)
    return json_response({"data": [consumer_json(c) for c in consumers]})


@routes.add(
    "GET",
    "/v1/consumers/{consumer_id}",
    scope=Scope.READ,
    summary="Read a consumer",
    tags=("consumers",),
    responses=_ONE,
)
async def get_consumer(req: Request, ctx: Context) -> Response:
    consumer = await ctx.services.consumers.get(ctx.principal, req.path_params["consumer_id"])
    return json_response(consumer_json(consumer))


@routes.add(
    "PATCH",
    "/v1/consumers/{consumer_id}",
    scope=Scope.ADMIN,
    summary="Change a consumer (name, url, triggers, retry_schedule, timeout_seconds, state)",
    tags=("consumers",),
    body=ref("ConsumerUpdate"),
    responses={**_ONE, **BODY_ERRORS},
)
async def update_consumer(req: Request, ctx: Context) -> Response:
    body = await read_object(req, ctx)
    consumer = await ctx.services.consumers.update(
        ctx.principal, req.path_params["consumer_id"], body
    )
    return json_response(consumer_json(consumer))


@routes.add(
    "DELETE",
    "/v1/consumers/{consumer_id}",
    scope=Scope.ADMIN,
    summary="Delete a consumer (its open transactions are closed as failed)",
    tags=("consumers",),
    responses=_ONE,
)
async def delete_consumer(req: Request, ctx: Context) -> Response:
    consumer = await ctx.services.consumers.delete(ctx.principal, req.path_params["consumer_id"])
    return json_response(consumer_json(consumer))


@routes.add(
    "POST",
    "/v1/consumers/{consumer_id}/pause",
    scope=Scope.ADMIN,
    summary="Pause a consumer: its transactions wait, nothing is sent",
    tags=("consumers",),
    responses=_ONE,
)
async def pause_consumer(req: Request, ctx: Context) -> Response:
    consumer = await ctx.services.consumers.set_state(
        ctx.principal, req.path_params["consumer_id"], ConsumerState.PAUSED
    )
    return json_response(consumer_json(consumer))


@routes.add(
    "POST",
    "/v1/consumers/{consumer_id}/resume",
    scope=Scope.ADMIN,
    summary="Resume (enable) a paused or disabled consumer",
    tags=("consumers",),
    responses=_ONE,
)
async def resume_consumer(req: Request, ctx: Context) -> Response:
    consumer = await ctx.services.consumers.set_state(
        ctx.principal, req.path_params["consumer_id"], ConsumerState.ENABLED
    )
    return json_response(consumer_json(consumer))


def _int_field(
    body: dict[str, Any],
    name: str,
    default: int,
    low: int,
    high: int,
    errors: list[FieldError],
) -> int:
    value = whole_number(body.get(name, default))
    if value is None or not low <= value <= high:
        errors.append(FieldError(f"$.{name}", f"must be a whole number from {low} to {high}"))
        return default
    return value


@routes.add(
    "POST",
    "/v1/consumers/{consumer_id}/rotate-secret",
    scope=Scope.ADMIN,
    summary="Give a webhook consumer a new signing secret",
    tags=("consumers",),
    body={
        "type": "object",
        "additionalProperties": False,
        "properties": {"overlap_seconds": {"type": "integer", "minimum": 0, "maximum": 2592000}},
    },
    body_optional=True,
    responses={
        200: json_body("The consumer with its new `secret`.", ref("Consumer")),
        409: problem("A pull consumer has no secret."),
        **_NOT_FOUND,
        **AUTH_ERRORS,
        **BODY_ERRORS,
    },
)
async def rotate_secret(req: Request, ctx: Context) -> Response:
    body = await read_object(req, ctx, empty_ok=True)
    errors = unknown_fields(body, {"overlap_seconds"})
    overlap = None
    if "overlap_seconds" in body:
        overlap = _int_field(body, "overlap_seconds", 0, 0, 30 * 24 * 3600, errors)
    if errors:
        raise ValidationFailed("The rotation is not valid.", errors=errors)
    consumer = await ctx.services.consumers.rotate_secret(
        ctx.principal, req.path_params["consumer_id"], overlap
    )
    return json_response(consumer_json(consumer, with_secret=True))


@routes.add(
    "POST",
    "/v1/consumers/{consumer_id}/replay",
    scope=Scope.ADMIN,
    summary="Queue a consumer's events since a time again (all, or only failed ones)",
    tags=("consumers",),
    body={
        "type": "object",
        "required": ["since"],
        "additionalProperties": False,
        "properties": {
            "since": {
                "anyOf": [
                    {"type": "string", "format": "date-time"},
                    {
                        "type": "integer",
                        "minimum": 0,
                        "maximum": 253402300799999,
                        "description": "epoch milliseconds, 1970 to 9999",
                    },
                ]
            },
            "only_failed": {"type": "boolean", "default": False},
        },
    },
    responses={
        200: json_body(
            "How many transactions were queued again and created.",
            {
                "type": "object",
                "properties": {"requeued": {"type": "integer"}, "created": {"type": "integer"}},
            },
        ),
        **_NOT_FOUND,
        **AUTH_ERRORS,
        **BODY_ERRORS,
    },
)
async def replay_consumer(req: Request, ctx: Context) -> Response:
    body = await read_object(req, ctx)
    errors = unknown_fields(body, {"since", "only_failed"})
    since = 0
    try:
        since = parse_event_time(body.get("since"))
    except TimeParseError as exc:
        errors.append(FieldError("$.since", f"is required: {exc}"))
    only_failed = body.get("only_failed", False)
    if not isinstance(only_failed, bool):
        errors.append(FieldError("$.only_failed", "must be a boolean"))
    if errors:
        raise ValidationFailed("The replay is not valid.", errors=errors)
    counts = await ctx.services.consumers.replay(
        ctx.principal, req.path_params["consumer_id"], since, only_failed, ctx.principal.key.id
    )
    return json_response(counts)


@routes.add(
    "POST",
    "/v1/consumers/{consumer_id}/claim",
    scope=Scope.WRITE,
    summary="A pull consumer claims pending transactions, with a lease (long-poll with "
    "wait_seconds)",
    tags=("consumers",),
    body_optional=True,
    body={
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "limit": {"type": "integer", "minimum": 1, "maximum": MAX_CLAIM, "default": 10},
            "lease_seconds": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_LEASE_SECONDS,
                "default": 60,
            },
            "wait_seconds": {
                "type": "number",
                "minimum": 0,
                "maximum": MAX_WAIT_SECONDS,
                "default": 0,
            },
        },
    },
    responses={
        200: json_body("The claimed transactions, each with its event.", ref("ClaimResult")),
        409: problem("The consumer is a webhook consumer."),
        **_NOT_FOUND,
        **AUTH_ERRORS,
        **BODY_ERRORS,
    },
)
async def claim(req: Request, ctx: Context) -> Response:
    body = await read_object(req, ctx, empty_ok=True)
    errors = unknown_fields(body, {"limit", "lease_seconds", "wait_seconds"})
    limit = _int_field(body, "limit", 10, 1, MAX_CLAIM, errors)
    lease = _int_field(body, "lease_seconds", 60, 1, MAX_LEASE_SECONDS, errors)
    wait = body.get("wait_seconds", 0)
    if (
        isinstance(wait, bool)
        or not isinstance(wait, int | float)
        or not (0 <= wait <= MAX_WAIT_SECONDS)
    ):
        errors.append(FieldError("$.wait_seconds", f"must be from 0 to {MAX_WAIT_SECONDS}"))
        wait = 0
    if errors:
        raise ValidationFailed("The claim is not valid.", errors=errors)
    claimed = await ctx.services.consumers.claim(
        ctx.principal,
        req.path_params["consumer_id"],
        limit=limit,
        lease_seconds=lease,
        wait_seconds=float(wait),
    )
    return json_response(
        {"data": [{**transaction_json(t), "event": event_json(e)} for t, e in claimed]}
    )


@routes.add(
    "GET",
    "/v1/consumers/{consumer_id}/transactions",
    scope=Scope.READ,
    summary="A consumer's transactions, newest first",
    tags=("consumers",),
    query=(
        {"name": "state", "in": "query", "schema": {"type": "string"}},
        {
            "name": "limit",
            "in": "query",
            "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
        },
        {
            "name": "after",
            "in": "query",
            "schema": {"type": "string"},
            "description": "the last transaction id of the previous page",
        },
    ),
    responses={
        200: json_body("Transactions.", ref("TransactionList")),
        400: problem("A bad state, limit or cursor, or an unknown or repeated query parameter."),
        **_NOT_FOUND,
        **AUTH_ERRORS,
    },
)
async def consumer_transactions(req: Request, ctx: Context) -> Response:
    params = req.query_params({"state", "limit", "after"})
    raw_limit = params.get("limit", "50")
    if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= 1000:
        raise InvalidRequest(f"limit must be a whole number from 1 to 1000; got {raw_limit!r}.")
    limit = int(raw_limit)
    state, after = params.get("state") or None, params.get("after") or None
    rows = await ctx.services.transactions.of_consumer(
        ctx.principal, req.path_params["consumer_id"], state, after, limit + 1
    )
    page = rows[:limit]
    return json_response(
        {
            "data": [transaction_json(t) for t in page],
            "next_after": page[-1].id if len(rows) > limit and page else None,
        }
    )
