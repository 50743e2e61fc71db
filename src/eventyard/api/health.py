"""Liveness, readiness, and the API's own description (`/openapi.json`, `/docs`)."""

from __future__ import annotations

import html
from typing import Any

from eventyard import __version__
from eventyard.api.context import Context
from eventyard.api.http import Request, Response, html_response, json_response
from eventyard.api.routing import PUBLIC, Route, RouteTable, bearer_token
from eventyard.api.schemas import COMPONENTS, SECURITY_SCHEMES
from eventyard.errors import ServiceUnavailable

routes = RouteTable()


@routes.add("GET", "/healthz", scope=PUBLIC, summary="The process is up", tags=("health",))
async def healthz(req: Request, ctx: Context) -> Response:
    return json_response({"status": "ok"})


@routes.add(
    "GET",
    "/readyz",
    scope=PUBLIC,
    summary="The database answers",
    tags=("health",),
)
async def readyz(req: Request, ctx: Context) -> Response:
    try:
        await ctx.services.store.ping()
    except Exception as exc:
        raise ServiceUnavailable(
            f"The database does not answer: {type(exc).__name__}.", headers={"Retry-After": "5"}
        ) from None
    return json_response({"status": "ready", "database": ctx.services.store.backend})


def _schema_name(schema: dict[str, Any]) -> str:
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    return "JSON object"


def _route_section(route: Route) -> str:
    scope = f"needs the <code>{route.scope.value}</code> scope" if route.scope else "public"
    body = ""
    if route.body is not None:
        body = f"<p>Body: <code>{html.escape(_schema_name(route.body))}</code></p>"
    params = "".join(
        f"<li><code>{html.escape(str(p['name']))}</code> "
        f"{html.escape(str(p.get('description', '')))}</li>"
        for p in route.query
    )
    answers = "".join(
        f"<tr><td><code>{code}</code></td><td>{html.escape(spec.get('description', ''))}</td></tr>"
        for code, spec in sorted(route.responses.items())
    )
    return (
        f'<section id="{route.operation_id}"><h2><code>{route.method} '
        f"{html.escape(route.path)}</code></h2><p>{html.escape(route.summary)} ({scope}).</p>"
        f"{body}{f'<p>Query:</p><ul>{params}</ul>' if params else ''}"
        f"{f'<table>{answers}</table>' if answers else ''}</section>"
    )


def _security(route: Route) -> list[dict[str, list[str]]]:
    return [] if route.scope is None else [{route.security: []}]


def build_openapi(routes_: list[Route]) -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in routes_:
        if not route.include_in_schema:
            continue
        op: dict[str, Any] = {
            "operationId": route.operation_id,
            "summary": route.summary,
            "tags": list(route.tags),
            "security": _security(route),
            "responses": {str(code): spec for code, spec in sorted(route.responses.items())}
            or {"200": {"description": "OK"}},
        }
        if route.scope is not None:
            op["description"] = f"Needs a key with the `{route.scope.value}` scope (or `admin`)."
        params = [
            {"name": seg[1:-1], "in": "path", "required": True, "schema": {"type": "string"}}
            for seg in route.segments
            if seg.startswith("{")
        ]
        params.extend(route.query)
        if params:
            op["parameters"] = params
        if route.body is not None:
            op["requestBody"] = {
                "required": not route.body_optional,
                "content": {"application/json": {"schema": route.body}},
            }
        paths.setdefault(route.path, {})[route.method.lower()] = op
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "eventyard",
            "version": __version__,
            "description": "A self-hosted event trigger and tracking server.",
        },
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": SECURITY_SCHEMES,
        },
    }


@routes.add(
    "GET",
    "/openapi.json",
    scope=PUBLIC,
    summary="This API, as OpenAPI 3.1",
    tags=("meta",),
    include_in_schema=False,
)
async def openapi(req: Request, ctx: Context) -> Response:
    return json_response(build_openapi(ctx.routes))


@routes.add(
    "GET",
    "/docs",
    scope=PUBLIC,
    summary="A readable API reference",
    tags=("meta",),
    include_in_schema=False,
)
async def docs(req: Request, ctx: Context) -> Response:
    sections = [_route_section(route) for route in ctx.routes if route.include_in_schema]
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>eventyard API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem}}
section{{border-top:1px solid #ddd;padding:.5rem 0}} code{{background:#f4f4f4}}
td{{padding:.1rem .6rem;vertical-align:top}}</style></head>
<body><h1>eventyard API</h1>
<p>Authenticate with <code>Authorization: Bearer sk_live_…</code> (or <code>sk_test_…</code>).
Errors are <code>application/problem+json</code> with <code>code</code>, <code>message</code>
and, for validation, <code>errors: [{{path, message}}]</code>.
The machine-readable description is <a href="/openapi.json">/openapi.json</a>.</p>
{"".join(sections)}</body></html>"""
    return html_response(page)


@routes.add(
    "GET",
    "/metrics",
    scope=PUBLIC,
    summary="Prometheus metrics",
    tags=("health",),
    include_in_schema=False,
)
async def metrics(req: Request, ctx: Context) -> Response:
    telemetry = ctx.services.telemetry
    telemetry.check_token(bearer_token(req))
    text = await telemetry.render()
    return Response(200, text.encode(), "text/plain; version=0.0.4; charset=utf-8")
