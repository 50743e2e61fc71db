"""The route table: every HTTP route, its scope, and what the OpenAPI document says of it.

Routes are declared with a decorator beside their handler. Each declaration names the scope
a key needs (or `PUBLIC`), so authentication is applied by the application, never forgotten
by a handler, and the access tests and `/openapi.json` are both generated from this one
table. Paths are matched against the raw, still percent-encoded path, segment by segment,
so a user id holding `/` (sent as `%2F`) stays one segment and round-trips exactly.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_to_bytes

from eventyard.domain.models import Scope
from eventyard.errors import EventyardError, InvalidRequest, MethodNotAllowed, NotFound
from eventyard.services.keys import BEARER_HINT

if TYPE_CHECKING:
    from eventyard.api.context import Context
    from eventyard.api.http import Response

from eventyard.api.http import Request

Handler = Callable[["Request", "Context"], Awaitable["Response"]]
# Where a route finds the API key: the native API reads `Authorization: Bearer`; an adapter
# reads the header its seed document names. It may be async, to find the key in the body
# (Segment's `writeKey`); `Request.body` keeps what it read for the handler.
Credentials = Callable[["Request"], "str | Awaitable[str | None] | None"]
# How a route answers an error: the native problem+json, or an adapter's documented shape.
ErrorRenderer = Callable[[EventyardError], "Response"]
# What a route checks before its handler besides a key: the dashboard's session and CSRF
# token. It raises to refuse, and may fill in the context (the signed-in user, the project).
Guard = Callable[["Request", "Context"], Awaitable[None]]
PUBLIC = None


def bearer_token(req: Request) -> str | None:
    header = req.header("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    scope: Scope | None
    summary: str
    tags: tuple[str, ...] = ()
    body: dict[str, Any] | None = None
    body_optional: bool = False  # the handler takes no body as an empty object
    responses: dict[int, dict[str, Any]] = field(default_factory=dict)
    query: tuple[dict[str, Any], ...] = ()
    include_in_schema: bool = True
    segments: tuple[str, ...] = ()
    credentials: Credentials = bearer_token
    render_error: ErrorRenderer | None = None  # None: problem+json
    security: str = "bearer"  # the OpenAPI security scheme that describes `credentials`
    # A path parameter that may span several segments: a client that does not encode `/` in
    # it (Python's `quote` leaves `/` alone) still reaches the route, with the `/` kept.
    greedy: str | None = None
    key_hint: str = BEARER_HINT  # where the key goes, for the refusal of a request without one
    guard: Guard | None = None

    @property
    def operation_id(self) -> str:
        return self.handler.__name__


class RouteTable:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(
        self,
        method: str,
        path: str,
        *,
        scope: Scope | None,
        summary: str,
        tags: tuple[str, ...] = (),
        body: dict[str, Any] | None = None,
        body_optional: bool = False,
        responses: dict[int, dict[str, Any]] | None = None,
        query: tuple[dict[str, Any], ...] = (),
        include_in_schema: bool = True,
        credentials: Credentials = bearer_token,
        render_error: ErrorRenderer | None = None,
        security: str = "bearer",
        greedy: str | None = None,
        key_hint: str = BEARER_HINT,
        guard: Guard | None = None,
    ) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.routes.append(
                Route(
                    method=method,
                    path=path,
                    handler=handler,
                    scope=scope,
                    summary=summary,
                    tags=tags,
                    body=body,
                    body_optional=body_optional,
                    responses=responses or {},
                    query=query,
                    include_in_schema=include_in_schema,
                    segments=tuple(path.strip("/").split("/")),
                    credentials=credentials,
                    render_error=render_error,
                    security=security,
                    greedy=greedy,
                    key_hint=key_hint,
                    guard=guard,
                )
            )
            return handler

        return register

    def extend(self, other: RouteTable) -> None:
        self.routes.extend(other.routes)


class Router:
    def __init__(self, routes: list[Route]) -> None:
        self.routes = routes
        self._by_length: dict[int, list[Route]] = {}
        for route in routes:
            self._by_length.setdefault(len(route.segments), []).append(route)
        self._greedy = [r for r in routes if r.greedy is not None]
        # Paths without parameters, looked up at once: each one only where the full match
        # below would pick that same route (no earlier route with parameters shadows it).
        self._static: dict[tuple[str, str], Route] = {}
        for route in routes:
            if not any(s.startswith("{") for s in route.segments):
                key = (route.method, "/".join(route.segments))
                if self._match_slowly(route.method, key[1]) == (route, {}):
                    self._static.setdefault(key, route)

    def match(self, method: str, raw_path: bytes) -> tuple[Route, dict[str, str]]:
        path = raw_path.split(b"?", 1)[0].decode("latin-1")
        route = self._static.get((method, path.strip("/")))
        if route is not None:
            return route, {}
        return self._match_slowly(method, path)

    def _match_slowly(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        parts = path.strip("/").split("/") if path.strip("/") else [""]
        # For a 405's Allow: the methods of the most literal templates that match, so that
        # /v1/events/batch (POST) does not also offer GET for /v1/events/{event_id}.
        matched: list[tuple[int, str]] = []
        for route in self._by_length.get(len(parts), ()):
            params = _match_segments(route.segments, parts)
            if params is None:
                continue
            if route.method == method:
                return route, _decode_params(params, route)
            matched.append((len(params), route.method))
        for route in self._greedy:
            params = _match_greedy(route, parts)
            if params is None:
                continue
            if route.method == method:
                return route, _decode_params(params, route)
            matched.append((len(parts), route.method))
        fewest = min((n for n, _ in matched), default=0)
        allowed = [m for n, m in matched if n == fewest]
        if allowed:
            raise MethodNotAllowed(
                f"{method} is not allowed here; use {', '.join(sorted(set(allowed)))}.",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise NotFound(f"There is no route {path!r}; see /docs for the API.")


def _match_segments(template: tuple[str, ...], parts: list[str]) -> dict[str, str] | None:
    params: dict[str, str] = {}
    for want, got in zip(template, parts, strict=True):
        if want.startswith("{") and want.endswith("}"):
            if not got:
                return None
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


def _match_greedy(route: Route, parts: list[str]) -> dict[str, str] | None:
    """Match with `route.greedy` taking every segment the fixed ones around it leave over."""
    template = route.segments
    at = template.index("{" + str(route.greedy) + "}")
    tail = len(template) - at - 1
    if len(parts) <= len(template):
        return None  # same length: the ordinary match has had its turn
    head = _match_segments(template[:at], parts[:at])
    rest = _match_segments(template[at + 1 :], parts[len(parts) - tail :])
    if head is None or rest is None:
        return None
    return {**head, **rest, str(route.greedy): "/".join(parts[at : len(parts) - tail])}


class InvalidPathParameter(InvalidRequest):
    """A path parameter that does not decode; it names its route, so the route's own error
    shape (an adapter's) answers it."""

    def __init__(self, message: str, route: Route) -> None:
        super().__init__(message)
        self.route = route


def _decode_params(params: dict[str, str], route: Route) -> dict[str, str]:
    decoded = {}
    for name, raw in params.items():
        try:
            decoded[name] = unquote_to_bytes(raw).decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidPathParameter(
                f"The path parameter {name} is not valid UTF-8 once percent-decoded.", route
            ) from None
        if "\x00" in decoded[name]:
            raise InvalidPathParameter(
                f"The path parameter {name} holds a NUL character (%00).", route
            )
    return decoded
