"""`/v1/transactions/{id}`: read one, report a pull consumer's progress, retry."""

from __future__ import annotations

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, json_response
from eventyard.api.routing import RouteTable
from eventyard.api.schemas import AUTH_ERRORS, BODY_ERRORS, json_body, problem, ref
from eventyard.api.v1.bodies import read_object
from eventyard.domain.models import Scope
from eventyard.views import transaction_json

routes = RouteTable()
_NOT_FOUND = {404: problem("No such transaction in this project and environment.")}


@routes.add(
    "GET",
    "/v1/transactions/{transaction_id}",
    scope=Scope.READ,
    summary="Read a transaction with its history and delivery attempts",
    tags=("transactions",),
    responses={200: json_body("The transaction.", ref("Transaction")), **_NOT_FOUND, **AUTH_ERRORS},
)
async def get_transaction(req: Request, ctx: Context) -> Response:
    txn = await ctx.services.transactions.get(ctx.principal, req.path_params["transaction_id"])
    return json_response(transaction_json(txn))


@routes.add(
    "PATCH",
    "/v1/transactions/{transaction_id}",
    scope=Scope.WRITE,
    summary="A pull consumer reports a state (processing renews the lease) and output",
    tags=("transactions",),
    body=ref("TransactionReport"),
    responses={
        200: json_body("The transaction.", ref("Transaction")),
        409: problem("The transaction is finished or failed, or belongs to a webhook consumer."),
        **_NOT_FOUND,
        **AUTH_ERRORS,
        **BODY_ERRORS,
    },
)
async def report_transaction(req: Request, ctx: Context) -> Response:
    body = await read_object(req, ctx)
    txn = await ctx.services.transactions.report(
        ctx.principal, req.path_params["transaction_id"], body, ctx.principal.key.id
    )
    return json_response(transaction_json(txn))


@routes.add(
    "POST",
    "/v1/transactions/{transaction_id}/retry",
    scope=Scope.ADMIN,
    summary="Send or offer a finished or failed transaction again, due now",
    tags=("transactions",),
    responses={
        200: json_body("The transaction, pending again.", ref("Transaction")),
        409: problem("The transaction is still pending or processing."),
        **_NOT_FOUND,
        **AUTH_ERRORS,
    },
)
async def retry_transaction(req: Request, ctx: Context) -> Response:
    txn = await ctx.services.transactions.retry(
        ctx.principal, req.path_params["transaction_id"], ctx.principal.key.id
    )
    return json_response(transaction_json(txn))
