"""The ASGI application: route, authenticate, call the handler, answer.

`create_app(services)` gives an ASGI callable. Per request it matches the raw path against
the route table, authenticates the key when the route needs one (`Authorization: Bearer`),
checks the route's scope, and runs the handler. Every `EventyardError` becomes the one
problem+json body; anything else is logged and answered `500 internal_error`.
Database outages are answered `503` with `Retry-After`, never `500`.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import time
from collections.abc import Awaitable, Callable
from random import getrandbits as _random_bits
from typing import Any

import psycopg

from eventyard import dashboard
from eventyard.api import health
from eventyard.api.adapters import ADAPTERS
from eventyard.api.context import Context
from eventyard.api.errors import internal_error, problem_response
from eventyard.api.http import Receive, Request, Response, Send
from eventyard.api.routing import InvalidPathParameter, Route, Router, RouteTable
from eventyard.api.v1 import (
    consumers,
    events,
    keys,
    project,
    stats,
    status,
    stream,
    transactions,
    triggers,
    users,
)
from eventyard.errors import EventyardError, InternalError, ServiceUnavailable
from eventyard.logs import REQUEST_ID, access_log
from eventyard.services.container import Services
from eventyard.services.keys import require_scope

logger = logging.getLogger("eventyard.api")

_DB_DOWN = (sqlite3.OperationalError, psycopg.OperationalError)


def all_routes() -> list[Route]:
    table = RouteTable()
    for module in (
        health,
        stream,  # before events: /v1/events/stream is not the event `stream`
        events,
        triggers,
        keys,
        project,
        users,
        consumers,
        transactions,
        stats,
        status,
    ):
        table.extend(module.routes)
    table.extend(dashboard.routes)
    for adapter in ADAPTERS:
        table.extend(adapter.routes)
    return table.routes


class EventyardApp:
    def __init__(
        self,
        services: Services,
        *,
        on_startup: Callable[[], Awaitable[None]] | None = None,
        on_shutdown: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.services = services
        self.routes = all_routes()
        self.router = Router(self.routes)
        # Unmatched paths under an adapter's prefix (a 404 or 405) answer in its error shape.
        self._prefix_routes: dict[str, Route] = {}
        for route in self.routes:
            if route.render_error is not None:
                self._prefix_routes.setdefault(route.segments[0], route)
        self._on_startup = on_startup
        self._on_shutdown = on_shutdown
        self._access = access_log()
        self._requests = services.telemetry.requests

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self._on_startup:
                        await self._on_startup()
                except Exception as exc:
                    logger.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._on_shutdown:
                    await self._on_shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        request_id = _request_id(scope)
        REQUEST_ID.set(request_id)  # the request's own context: log lines made for it say so
        req = Request(scope, receive)
        ctx = Context(self.services, routes=self.routes)
        route: Route | None = None
        template: str | None = None  # the matched route's path, for logs and metrics
        try:
            raw_path = scope.get("raw_path") or scope["path"].encode("utf-8")
            route, req.path_params = self.router.match(req.method, raw_path)
            template = route.path
            response = await self._handle(req, route, ctx)
        except EventyardError as exc:
            if isinstance(exc, InvalidPathParameter):
                route = exc.route
                template = route.path
            elif route is None:
                first = scope["path"].strip("/").split("/", 1)[0]
                route = self._prefix_routes.get(first)
            response = _render(route, exc)
        except _DB_DOWN as exc:
            # SQLite's own name for the error (SQLITE_FULL, SQLITE_IOERR_WRITE) says more.
            name = getattr(exc, "sqlite_errorname", None)
            logger.error("database unavailable: %s%s", exc, f" ({name})" if name else "")
            response = _render(
                route,
                ServiceUnavailable(
                    "The database is not available right now; nothing was stored. "
                    "Retry after a few seconds.",
                    headers={"Retry-After": "5"},
                ),
            )
        except Exception as exc:
            # The route's template, not the path: a path may hold a user id or an e-mail.
            where = f"{req.method} {template or '(no route)'}"
            if route is not None and route.render_error is not None:
                logger.error("unhandled error in %s", where, exc_info=exc)
                response = route.render_error(InternalError("Internal error"))
            else:
                response = internal_error(exc, where)
        response.headers["x-request-id"] = request_id
        await response.send(send)
        seconds = time.perf_counter() - started
        self._requests.observe(req.method, template, response.status, seconds)
        if self._access is not None:
            principal = ctx.principal_or_none
            self._access.write(
                req.method,
                template,
                response.status,
                seconds * 1000,
                request_id,
                None if principal is None else principal.project_id,
                None if principal is None else principal.environment.value,
                len(response.body),
            )

    async def _handle(self, req: Request, route: Route, ctx: Context) -> Response:
        limits: dict[str, str] = {}
        if route.scope is not None:
            found = route.credentials(req)
            key = found if found is None or isinstance(found, str) else await found
            principal = await self.services.keys.authenticate(key, route.key_hint)
            ctx.principal_or_none = principal  # known, even when its scope falls short (403)
            require_scope(principal, route.scope)
            limits = await self.services.ratelimit.take(principal)
        if route.guard is not None:
            await route.guard(req, ctx)
        response = await route.handler(req, ctx)
        response.headers.update(limits)
        return response


_REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"[\x21-\x7e]{1,128}")  # visible ASCII, 128 at most


def _request_id(scope: dict[str, Any]) -> str:
    """The client's `X-Request-ID` when it is 1-128 visible ASCII characters; otherwise
    (none, too long, spaces, control or non-ASCII bytes) a new random one."""
    for name, value in scope.get("headers", ()):
        if name == _REQUEST_ID_HEADER:  # ASGI servers give header names in lowercase
            if _SANE_REQUEST_ID.fullmatch(value):
                return str(value.decode("ascii"))
            break
    return f"{_random_bits(64):016x}"  # an id, not a secret: no system call a request


def _render(route: Route | None, exc: EventyardError) -> Response:
    if route is not None and route.render_error is not None:
        return route.render_error(exc)
    return problem_response(exc)


def create_app(services: Services, **hooks: Any) -> EventyardApp:
    return EventyardApp(services, **hooks)
