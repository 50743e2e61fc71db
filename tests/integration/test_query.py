"""GET /v1/events: filters, newest-first order, cursor pagination and bad parameters; and
GET /v1/events/{id}."""

from __future__ import annotations

import base64
from typing import Any

import orjson
import pytest

from eventyard.services.container import Services
from tests.conftest import Api

pytestmark = pytest.mark.anyio

T0 = "2026-03-01T00:00:00.000000Z"
T1 = "2026-03-01T00:00:01.000000Z"
T2 = "2026-03-01T00:00:02.000000Z"
T1_MS = 1772323201000  # T1 as epoch milliseconds


async def page(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.get("/v1/events", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def ids(api: Api, **params: Any) -> list[str]:
    return [e["id"] for e in (await page(api, **params))["data"]]


async def send(api: Api, trigger: str, user_id: str, timestamp: str) -> str:
    response = await api.send(trigger, user_id, timestamp=timestamp)
    assert response.status_code == 201, response.text
    event_id: str = response.json()["id"]
    return event_id


@pytest.fixture
async def three(api: Api) -> tuple[Api, list[str]]:
    """signup/alice at T0, login/bob at T1, signup/bob at T2."""
    return api, [
        await send(api, "signup", "alice", T0),
        await send(api, "login", "bob", T1),
        await send(api, "signup", "bob", T2),
    ]


async def test_all_events_newest_first(three: tuple[Api, list[str]]) -> None:
    api, (e0, e1, e2) = three
    body = await page(api)
    assert [e["id"] for e in body["data"]] == [e2, e1, e0]
    assert body["next_cursor"] is None


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"trigger": "signup"}, [2, 0]),
        ({"trigger": "login"}, [1]),
        ({"trigger": "nothing"}, []),
        ({"user_id": "bob"}, [2, 1]),
        ({"user_id": "Bob"}, []),
        ({"trigger": "signup", "user_id": "bob"}, [2]),
        ({"since": T1}, [2, 1]),
        ({"since": T1_MS}, [2, 1]),
        ({"until": T1}, [0]),
        ({"until": T1_MS}, [0]),
        ({"since": T0, "until": T2}, [1, 0]),
        ({"since": "2026-03-01T00:00:01"}, [2, 1]),
        ({"since": "2026-03-01T01:00:01+01:00"}, [2, 1]),
        ({"since": T1, "until": T1}, []),
        ({"source": "api"}, [2, 1, 0]),
        ({"source": "segment"}, []),
    ],
)
async def test_filters(
    three: tuple[Api, list[str]], params: dict[str, Any], expected: list[int]
) -> None:
    api, sent = three
    assert await ids(api, **params) == [sent[i] for i in expected]


async def test_source_filter_tells_doors_apart(api: Api, services: Services) -> None:
    by_api = await send(api, "signup", "u1", T0)
    principal = await services.keys.authenticate(api.test_key)
    results = await services.ingest.ingest(
        principal, [{"trigger": "signup", "user_id": "u2"}], source="cli"
    )
    assert results[0].stored is not None
    assert results[0].stored.event is not None
    by_cli = results[0].stored.event.id
    assert await ids(api, source="api") == [by_api]
    assert await ids(api, source="cli") == [by_cli]
    assert set(await ids(api)) == {by_api, by_cli}


async def test_same_event_time_orders_by_id_descending(api: Api) -> None:
    sent = [await send(api, "signup", f"u{i}", T1) for i in range(5)]
    older = await send(api, "signup", "old", T0)
    assert await ids(api) == [*sorted(sent, reverse=True), older]


async def test_order_is_by_event_time_not_arrival(api: Api) -> None:
    late = await send(api, "signup", "u1", T2)
    early = await send(api, "signup", "u2", T0)
    middle = await send(api, "signup", "u3", T1)
    assert await ids(api) == [late, middle, early]


async def _send_25(api: Api) -> list[str]:
    # Five events share each second, so page boundaries fall inside runs of equal times.
    events = [
        {"trigger": "signup", "user_id": f"u{i}", "timestamp": 1772323200000 + (i // 5) * 1000}
        for i in range(25)
    ]
    response = await api.post("/v1/events/batch", {"events": events})
    assert response.status_code == 200
    assert response.json()["accepted"] == 25
    return [r["id"] for r in response.json()["results"]]


async def _walk(api: Api, **params: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        body = await page(api, **params, **({"cursor": cursor} if cursor else {}))
        pages.append([e["id"] for e in body["data"]])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 10, "pagination does not end"


async def test_cursor_pagination_gives_every_event_once_in_order(api: Api) -> None:
    sent = await _send_25(api)
    everything = await ids(api, limit=1000)
    assert sorted(everything) == sorted(sent)
    pages = await _walk(api, limit=10)
    assert [len(p) for p in pages] == [10, 10, 5]
    assert [i for p in pages for i in p] == everything


async def test_a_full_last_page_has_no_next_cursor(api: Api) -> None:
    await _send_25(api)
    pages = await _walk(api, limit=5)
    assert [len(p) for p in pages] == [5, 5, 5, 5, 5]
    first = await page(api, limit=25)
    assert len(first["data"]) == 25
    assert first["next_cursor"] is None


async def test_pagination_keeps_its_filters(api: Api) -> None:
    await _send_25(api)
    for i in range(7):
        await send(api, "login", f"v{i}", T1)
    pages = await _walk(api, trigger="login", limit=3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [i for p in pages for i in p] == await ids(api, trigger="login")


async def test_new_events_do_not_disturb_a_walk_in_progress(api: Api) -> None:
    await _send_25(api)
    everything = await ids(api, limit=1000)
    first = await page(api, limit=10)
    await send(api, "signup", "newcomer", "2027-01-01T00:00:00Z")
    rest: list[str] = []
    cursor = first["next_cursor"]
    while cursor:
        body = await page(api, limit=10, cursor=cursor)
        rest += [e["id"] for e in body["data"]]
        cursor = body["next_cursor"]
    assert [e["id"] for e in first["data"]] + rest == everything


def _b64(value: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!",
        "abc",
        "%%%",
        "evt_01",
        _b64({"t": 1}),
        _b64([1]),
        _b64(["1", "evt_x"]),
        _b64([True, "evt_x"]),
        _b64([1.5, "evt_x"]),
        _b64([1, 2]),
        _b64([2**63, "evt_x"]),
        _b64([2**64 - 1, "evt_x"]),
        _b64([-1, "evt_x"]),
        _b64([1, "evt_x\u0000"]),
        base64.urlsafe_b64encode(b'[1,"evt_\\ud800"]').decode(),
        base64.urlsafe_b64encode(b"\xff\xfe").decode(),
        base64.urlsafe_b64encode(b"[1,2,3]" * 1000).decode(),
    ],
)
async def test_a_bad_cursor_is_400_invalid_cursor(api: Api, cursor: str) -> None:
    await send(api, "signup", "u1", T0)
    response = await api.get("/v1/events", params={"cursor": cursor})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_cursor"


@pytest.mark.parametrize(
    "limit",
    [
        *["0", "1001", "abc", "-1", "", "1.5", " 5", "²", "١٠"],  # noqa: RUF001
        pytest.param("0" * 5000 + "5", id="5000-zeros-then-5"),
        pytest.param("9" * 5000, id="5000-nines"),
    ],
)
async def test_a_bad_limit_is_400(api: Api, limit: str) -> None:
    response = await api.get("/v1/events", params={"limit": limit})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert "limit" in response.json()["message"]


@pytest.mark.parametrize("name", ["since", "until"])
@pytest.mark.parametrize(
    "value",
    [
        *["yesterday", "2026-13-01", "99999999999999999999", "²", "-5"],
        pytest.param("9" * 5000, id="5000-nines"),
    ],
)
async def test_a_bad_time_filter_is_400(api: Api, name: str, value: str) -> None:
    response = await api.get("/v1/events", params={name: value})
    assert response.status_code == 400, response.text
    assert name in response.json()["message"]


@pytest.mark.parametrize(
    "query",
    ["user=u1", "limit=5&limit=6", "trigger=a&Trigger=b", "page=2", "%ff=1", "user_id=%ff"],
)
async def test_unknown_repeated_or_undecodable_parameters_are_400(api: Api, query: str) -> None:
    response = await api.client.get(f"/v1/events?{query}", headers=api.auth())
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_request"


async def test_limit_1000_is_allowed(api: Api) -> None:
    assert (await page(api, limit=1000))["data"] == []


async def test_get_one_unknown_event_is_404(api: Api, other_api: Api) -> None:
    response = await api.get("/v1/events/evt_doesnotexist")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "event_not_found"
    theirs = await send(other_api, "signup", "u1", T0)
    assert (await api.get(f"/v1/events/{theirs}")).status_code == 404
    live = await api.send("signup", "u1", key=api.live_key)
    assert (await api.get(f"/v1/events/{live.json()['id']}")).status_code == 404
    assert (await api.get(f"/v1/events/{live.json()['id']}", key=api.live_key)).status_code == 200
