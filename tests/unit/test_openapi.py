"""`/openapi.json` is valid OpenAPI 3.1 and describes every route of the table."""

from __future__ import annotations

import re
from typing import Any

import pytest
from openapi_spec_validator import validate

from eventyard.api.app import all_routes
from eventyard.api.health import build_openapi
from eventyard.api.routing import PUBLIC, Route

ROUTES = all_routes()
KEYED = [r for r in ROUTES if r.scope is not PUBLIC]
# Actions that take no body at all; any other POST or PATCH must document the body it reads.
BODILESS = {
    ("POST", "/v1/consumers/{consumer_id}/pause"),
    ("POST", "/v1/consumers/{consumer_id}/resume"),
    ("POST", "/v1/transactions/{transaction_id}/retry"),
}


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return build_openapi(ROUTES)


def operation(spec: dict[str, Any], route: Route) -> dict[str, Any]:
    path_item = spec["paths"].get(route.path)
    assert path_item is not None, f"{route.path} is not documented"
    op = path_item.get(route.method.lower())
    assert op is not None, f"{route.method} {route.path} is not documented"
    return op  # type: ignore[no-any-return]


def test_the_document_is_valid_openapi_3_1(spec: dict[str, Any]) -> None:
    assert spec["openapi"].startswith("3.1")
    validate(spec)  # raises OpenAPIValidationError with the failing part


def test_every_reference_resolves(spec: dict[str, Any]) -> None:
    text = repr(spec)
    refs = set(re.findall(r"#/components/schemas/(\w+)", text))
    assert refs
    assert refs <= set(spec["components"]["schemas"])


def test_operation_ids_are_unique(spec: dict[str, Any]) -> None:
    op_ids = [op["operationId"] for item in spec["paths"].values() for op in item.values()]
    assert len(op_ids) == len(set(op_ids))


@pytest.mark.parametrize("route", KEYED, ids=lambda r: f"{r.method} {r.path}")
def test_every_keyed_route_is_documented_with_its_refusals(
    spec: dict[str, Any], route: Route
) -> None:
    op = operation(spec, route)
    assert op["security"] == [{route.security: []}]
    assert route.security in spec["components"]["securitySchemes"]
    assert route.scope is not None
    assert f"`{route.scope.value}`" in op["description"]
    # The native API refuses with problem+json; an adapter with its own documented shape.
    error_type = "application/problem+json" if route.render_error is None else "application/json"
    for status in ("401", "403"):
        answer = op["responses"].get(status)
        assert answer is not None, f"{route.method} {route.path} does not document {status}"
        assert error_type in answer["content"]
    successes = [code for code in op["responses"] if code.startswith("2")]
    assert successes, f"{route.method} {route.path} documents no success"
    for code in successes:  # JSON, or the event stream's server-sent events
        assert {"application/json", "text/event-stream"} & set(op["responses"][code]["content"])
    documented = {p["name"] for p in op.get("parameters", []) if p["in"] == "path"}
    assert documented == set(re.findall(r"\{(\w+)\}", route.path))


@pytest.mark.parametrize(
    "route",
    [
        r
        for r in ROUTES
        if r.method in {"POST", "PATCH"}
        and (r.method, r.path) not in BODILESS
        and r.include_in_schema  # the dashboard's forms are not API
    ],
    ids=lambda r: f"{r.method} {r.path}",
)
def test_every_post_and_patch_documents_its_body(spec: dict[str, Any], route: Route) -> None:
    op = operation(spec, route)
    body = op.get("requestBody")
    assert body is not None, f"{route.method} {route.path} has no requestBody"
    assert body["content"]["application/json"]["schema"]
    if route.render_error is None:  # adapters document the statuses their seed document uses
        assert "422" in op["responses"]
        assert "413" in op["responses"]
    else:
        assert any(code.startswith("4") and code not in ("401", "403") for code in op["responses"])


def test_public_routes_need_no_key(spec: dict[str, Any]) -> None:
    for route in ROUTES:
        if route.scope is PUBLIC and route.include_in_schema:
            assert operation(spec, route)["security"] == []
    assert "bearer" in spec["components"]["securitySchemes"]


def test_the_documented_paths_are_exactly_the_table(spec: dict[str, Any]) -> None:
    documented = {(method.upper(), path) for path, item in spec["paths"].items() for method in item}
    table = {(r.method, r.path) for r in ROUTES if r.include_in_schema}
    assert documented == table
    assert {(r.method, r.path) for r in KEYED} <= documented


def test_the_validator_notices_a_broken_document(spec: dict[str, Any]) -> None:
    from openapi_spec_validator.validation.exceptions import OpenAPIValidationError

    broken = {**spec, "paths": {"/v1/events": {"get": {"responses": {"200": {}}}}}}
    with pytest.raises(OpenAPIValidationError):
        validate(broken)


def test_the_bodiless_actions_are_still_routes() -> None:
    assert {(r.method, r.path) for r in ROUTES} >= BODILESS
