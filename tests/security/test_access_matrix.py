"""The access matrix: every route that needs a key refuses every caller that should not pass.

Generated from the application's route table (`all_routes()`), native routes and every
adapter's door alike: each route is called with its real method, a path holding real ids of
project A's live data, and a credential presented the way that route reads it (Bearer, an
adapter's header, Basic auth, Segment's write key). The callers here are the ones
tests/integration/test_isolation.py does not already try: a malformed key, a revoked key, a
live key of A that lacks the route's scope — and, for the adapters' doors, project B's keys.
Each refusal must be 401 (or 403 for the missing scope), and its body must not hold any of
A's data. A new route is covered the moment it is added; a new way of presenting a key
(`Route.security`) fails here until `PRESENT` knows it, and a route that needs no key must be
on the one public list (`PUBLIC_ROUTES`/`PUBLIC_PAGES` in test_isolation.py) or carry the
dashboard's session guard.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest

from eventyard.api.app import all_routes
from eventyard.api.routing import PUBLIC, Route
from eventyard.domain.models import Scope
from tests.integration.test_isolation import (
    CASES,
    PUBLIC_PAGES,
    PUBLIC_ROUTES,
    World,
    assert_a_live_untouched,
    fill,
    route_id,
    world,
)

pytestmark = pytest.mark.anyio
__all__ = ["world"]  # the fixture, shared with the isolation test


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


# How each OpenAPI security scheme carries the key; a route with a scheme not listed fails.
PRESENT: dict[str, Callable[[str], dict[str, str]]] = {
    "bearer": lambda key: {"Authorization": f"Bearer {key}"},
    "header_x-authorization": lambda key: {"X-Authorization": key},
    "header_x-eventbunker-write-key": lambda key: {"x-eventbunker-write-key": key},
    "header_x-buildable-secret": lambda key: {"X-Buildable-Secret": key},
    "cdp_basic": _basic,
    "segment_write_key": _basic,
}
KEYED = [r for r in all_routes() if r.scope is not PUBLIC]
ADAPTER_DOORS = [r for r in KEYED if not r.path.startswith("/v1/")]
MALFORMED = ["sk_live_", "sk_live_" + "!" * 32, "x" * 300, "sk_live_ABC\tDEF", "Bearer sk_live_"]
# A well-formed key of the right length that was never minted.
UNKNOWN = "sk_live_" + "A" * 32


def _adapter_params() -> dict[str, str]:
    return {"hook_id": "0" * 32, "triggerId": "a_secret_trigger", "userId": "u"}


def _request_for(route: Route, world: World, key: str | None) -> dict[str, object]:
    present = PRESENT.get(route.security)
    if present is None:
        pytest.fail(f"{route_id(route)} reads its key as {route.security!r}: add it to PRESENT")
    case = CASES.get((route.method, route.path))
    body = case.body if case else {"event": "probe", "name": "probe", "userId": "u"}
    return {
        "method": route.method,
        "url": fill(route.path, {**world.params(), **_adapter_params()}),
        "headers": present(key) if key is not None else {},
        "json": body,
        "params": case.query if case else None,
    }


async def _mint(world: World, scopes: list[str]) -> tuple[str, str]:
    made = await world.a.post(
        "/v1/keys", {"scopes": scopes, "name": "matrix"}, key=world.a.live_key
    )
    assert made.status_code == 201, made.text
    return made.json()["id"], made.json()["key"]


def _shown(route: Route, text: str, world: World, sent_url: str, own: bool = False) -> list[str]:
    """A's data in an answer (an id the caller sent itself may come back in a message)."""
    markers = world.live_markers() + ([] if own else world.project_markers())
    return [
        f"{route_id(route)} showed {marker!r}"
        for marker in markers
        if marker not in sent_url and marker in text
    ]


async def test_every_keyed_route_refuses_bad_revoked_and_underscoped_keys(world: World) -> None:
    """One world, every keyed route in turn; every failure is collected and named."""
    revoked_id, revoked = await _mint(world, ["admin"])
    gone = await world.a.client.delete(
        f"/v1/keys/{revoked_id}", headers=world.a.auth(world.a.live_key)
    )
    assert gone.status_code == 200, gone.text
    # For each scope, a live key of A holding every other scope except admin.
    lacking = {
        scope: (await _mint(world, [s.value for s in Scope if s not in (scope, Scope.ADMIN)]))[1]
        for scope in Scope
    }
    callers: list[tuple[str, str, int]] = [(f"malformed {m!r}", m, 401) for m in MALFORMED]
    callers += [("unknown", UNKNOWN, 401), ("revoked", revoked, 401)]
    problems: list[str] = []
    for route in KEYED:
        assert route.scope is not None
        for who, key, expected in [*callers, ("without the scope", lacking[route.scope], 403)]:
            kw = _request_for(route, world, key)
            response = await world.a.client.request(**kw)  # type: ignore[arg-type]
            # An adapter answers in its own documented shape: EventBunker's is 401 for both.
            allowed = {expected} if route.render_error is None else {401, 403}
            if response.status_code not in allowed:
                problems.append(f"{route_id(route)} {who}: {response.status_code} {response.text}")
            if len(key) >= 10 and key in response.text:
                problems.append(f"{route_id(route)} {who}: the key came back")
            problems += _shown(route, response.text, world, str(response.request.url))
    assert not problems, "\n".join(problems)
    await assert_a_live_untouched(world, others=True)


async def test_adapter_doors_never_show_another_projects_or_environments_data(
    world: World,
) -> None:
    """An adapter writes or reads in its caller's own project and environment: whatever it
    answers a key of B (or A's test key), A's live data stays out of the answer and intact."""
    callers = {
        "B live admin": world.b.live_key,
        "B test admin": world.b.test_key,
        "A test admin": world.a.test_key,
    }
    problems: list[str] = []
    for route in ADAPTER_DOORS:
        for caller, key in callers.items():
            kw = _request_for(route, world, key)
            response = await world.a.client.request(**kw)  # type: ignore[arg-type]
            if response.status_code >= 500:
                problems.append(f"{route_id(route)} {caller}: {response.status_code}")
            own = caller == "A test admin"  # project-level data is its own to see
            problems += _shown(route, response.text, world, str(response.request.url), own)
    assert not problems, "\n".join(problems)
    await assert_a_live_untouched(world, others=False)


def test_every_route_is_keyed_guarded_or_on_the_public_list() -> None:
    for route in all_routes():
        keyed = route.scope is not PUBLIC
        guarded = route.guard is not None
        listed = (route.method, route.path) in PUBLIC_ROUTES | PUBLIC_PAGES
        assert keyed or guarded or listed, f"{route_id(route)} is open to anyone and not listed"
        assert not (listed and (keyed or guarded)), f"{route_id(route)} is listed but not public"


def test_every_keyed_door_has_a_way_to_present_its_key() -> None:
    assert {r.security for r in KEYED} <= set(PRESENT)
