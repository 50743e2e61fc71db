"""Every adapter route, whatever its door, refuses a stranger and bad input with a 4xx.

Generated from the route table, so a new adapter route is covered the moment it exists.
"""

from __future__ import annotations

import httpx
import pytest

from eventyard.api.app import all_routes
from eventyard.api.routing import PUBLIC, Route

pytestmark = pytest.mark.anyio

ADAPTER_ROUTES = [
    r for r in all_routes() if not r.path.startswith("/v1/") and r.scope is not PUBLIC
]


def _path(route: Route) -> str:
    return "/".join("some-id" if seg.startswith("{") else seg for seg in route.path.split("/"))


def test_adapter_routes_all_need_a_key() -> None:
    public = [r for r in all_routes() if r.scope is PUBLIC]
    assert all(
        not r.path.startswith(
            ("/bunce", "/eventbunker", "/buildable", "/cdp", "/reward", "/segment", "/cloudevents")
        )
        for r in public
    )


@pytest.mark.parametrize("route", ADAPTER_ROUTES, ids=lambda r: f"{r.method} {r.path}")
@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'{"a": 1}', b"\xff\xfe"])
async def test_no_key_and_bad_input_get_a_4xx(
    client: httpx.AsyncClient, route: Route, body: bytes
) -> None:
    response = await client.request(
        route.method, _path(route), content=body, headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500, response.text
