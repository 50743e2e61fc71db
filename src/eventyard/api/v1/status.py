"""`GET /v1/status`: ingest-to-queryable time (zero by design) and, per consumer of the key's
project and environment, its backlog, oldest pending transaction and delivery lag
(`services/status.py` says how each is measured)."""

from __future__ import annotations

from typing import Any

from eventyard.api.context import Context
from eventyard.api.http import Request, Response, json_response
from eventyard.api.routing import RouteTable
from eventyard.api.schemas import AUTH_ERRORS, json_body, problem, ref
from eventyard.clock import format_us
from eventyard.domain.models import Scope
from eventyard.services.status import (
    INGEST_TO_QUERYABLE_WHY,
    LAG_WINDOW_S,
    ConsumerStatus,
    Lag,
    read_status,
)
from eventyard.views import consumer_ref

routes = RouteTable()


def _ms(us: int) -> float:
    return round(us / 1000, 3)


def _lag_json(lag: Lag | None) -> dict[str, Any] | None:
    if lag is None:
        return None
    return {"attempts": lag.attempts, "p50_ms": _ms(lag.p50_us), "p99_ms": _ms(lag.p99_us)}


def _consumer_json(c: ConsumerStatus, now: int) -> dict[str, Any]:
    oldest = c.oldest
    return {
        **consumer_ref(c.consumer),
        "pending": c.pending,
        "in_flight": c.in_flight,
        "oldest_pending": None
        if oldest is None
        else {
            "transaction": oldest.transaction_id,
            "event": oldest.event_id,
            "state": oldest.state,
            "created_at": format_us(oldest.created_at),
            "age_ms": max(0, now - oldest.created_at) // 1000,
        },
        "due_lag_ms": c.due_lag_us // 1000,
        "first_attempt_lag": _lag_json(c.first_attempt_lag),
    }


@routes.add(
    "GET",
    "/v1/status",
    scope=Scope.READ,
    summary="Ingest-to-queryable time, and per consumer its backlog and delivery lag",
    tags=("stats",),
    responses={
        200: json_body("The status, as of now.", ref("Status")),
        400: problem("An unknown query parameter."),
        **AUTH_ERRORS,
    },
)
async def get_status(req: Request, ctx: Context) -> Response:
    req.query_params(set())
    status = await read_status(ctx.services.store, ctx.services.clock, ctx.principal)
    return json_response(
        {
            "generated_at": format_us(status.now),
            "ingest_to_queryable_ms": 0,
            "ingest_to_queryable": INGEST_TO_QUERYABLE_WHY,
            "lag_window_seconds": LAG_WINDOW_S,
            "worker_running": status.worker_running,
            "consumers": [_consumer_json(c, status.now) for c in status.consumers],
        }
    )
