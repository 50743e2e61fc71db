"""The dashboard's Events list and an event's page, through the ASGI app with a signed-in user.

The list filters like `GET /v1/events`, a payload is shown as text (escaped), an event's page
shows each consumer's transaction with its history and webhook attempts, and Retry works
only with the session's CSRF token.
"""

from __future__ import annotations

import re

import httpx
import pytest

from eventyard.services.container import Services
from eventyard.store.transactions import record_attempt, transactions_of_event
from tests.conftest import Api

pytestmark = pytest.mark.anyio

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
EMAIL, PASSWORD = "ops@example.com", "correct horse battery"
XSS = "<script>alert(1)</script>"


async def sign_in(client: httpx.AsyncClient, services: Services) -> None:
    await services.accounts.create_user(EMAIL, PASSWORD)
    page = await client.get("/dashboard/login")
    token = CSRF.search(page.text)
    assert token, page.text
    done = await client.post(
        "/dashboard/login",
        data={"csrf": token.group(1), "email": EMAIL, "password": PASSWORD, "next": ""},
    )
    assert done.status_code == 303, done.text


@pytest.fixture
async def signed(client: httpx.AsyncClient, services: Services, api: Api) -> str:
    """Sign in; the base path of the acme project's test environment."""
    await sign_in(client, services)
    return f"/dashboard/p/{api.project_id}/test"


def row_ids(html: str) -> list[str]:
    return re.findall(r'<tr data-id="(evt_[0-9A-Z]+)"', html)


async def send(api: Api, trigger: str, user_id: str, **payload: object) -> str:
    sent = await api.send(trigger, user_id, payload=payload)
    assert sent.status_code == 201, sent.text
    event_id: str = sent.json()["id"]
    return event_id


async def test_the_list_shows_events_newest_first_and_filters(
    client: httpx.AsyncClient, api: Api, signed: str
) -> None:
    signup = await send(api, "signup", "ada", plan="pro")
    purchase = await send(api, "purchase", "bob", amount=12)
    other = await send(api, "purchase", "ada", amount=3)
    page = await client.get(f"{signed}/events")
    assert page.status_code == 200
    assert 'aria-current="page">Events' in page.text
    assert row_ids(page.text) == [other, purchase, signup]
    assert '<span class="test-mark">test</span>' in page.text  # test-environment rows
    assert "{&#34;plan&#34;:&#34;pro&#34;}" in page.text  # the payload excerpt
    assert '<option value="purchase"' in page.text  # the trigger select

    by_trigger = await client.get(f"{signed}/events", params={"trigger": "purchase"})
    assert row_ids(by_trigger.text) == [other, purchase]
    by_user = await client.get(f"{signed}/events", params={"user_id": "ada"})
    assert row_ids(by_user.text) == [other, signup]
    by_source = await client.get(f"{signed}/events", params={"source": "segment"})
    assert row_ids(by_source.text) == []
    assert "No events match." in by_source.text
    future = await client.get(f"{signed}/events", params={"since": "2999-01-01T00:00"})
    assert row_ids(future.text) == []
    past = await client.get(f"{signed}/events", params={"until": "2000-01-01T00:00:00"})
    assert row_ids(past.text) == []
    bad = await client.get(f"{signed}/events", params={"since": "yesterday"})
    assert bad.status_code == 200
    assert "is not a date and time" in bad.text
    # the live environment is another list
    live = await client.get(f"/dashboard/p/{api.project_id}/live/events")
    assert row_ids(live.text) == []


async def test_paging_with_the_cursor(
    client: httpx.AsyncClient, api: Api, signed: str, services: Services
) -> None:
    sent = await api.post(
        "/v1/events/batch",
        {"events": [{"trigger": "tick", "user_id": f"u{n}", "timestamp": n} for n in range(55)]},
    )
    assert sent.json()["accepted"] == 55
    first = await client.get(f"{signed}/events")
    assert len(row_ids(first.text)) == 50
    older = re.search(r'href="([^"]*cursor=[^"]+)" rel="next"', first.text)
    assert older, first.text
    second = await client.get(older.group(1).replace("&amp;", "&"))
    assert len(row_ids(second.text)) == 5
    assert not set(row_ids(second.text)) & set(row_ids(first.text))
    assert "← Newest" in second.text
    assert 'rel="next"' not in second.text


async def test_a_payload_is_text_never_markup(
    client: httpx.AsyncClient, api: Api, signed: str
) -> None:
    event_id = await send(api, "signup", XSS, note=XSS)
    for page in (
        await client.get(f"{signed}/events"),
        await client.get(f"{signed}/events/{event_id}"),
    ):
        assert page.status_code == 200
        assert XSS not in page.text
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
        assert "script-src 'self'" in page.headers["content-security-policy"]


async def test_the_event_page_shows_transactions_history_attempts_and_retries(
    client: httpx.AsyncClient, api: Api, signed: str, services: Services
) -> None:
    made = await api.post(
        "/v1/consumers",
        {"name": "billing hook", "kind": "webhook", "url": "https://hooks.example.com/in"},
    )
    assert made.status_code == 201, made.text
    event_id = await send(api, "purchase", "ada", amount=12)
    (txn,) = await services.store.read(lambda db: transactions_of_event(db, event_id))
    now = services.clock.now_us()
    assert await services.store.write(
        lambda db: record_attempt(
            db,
            txn,
            now=now,
            status_code=500,
            duration_ms=87,
            response_excerpt="upstream <b>broke</b>",
            error="HTTP 500",
            outcome="failed",
            next_attempt_at=None,
        )
    )
    page = await client.get(f"{signed}/events/{event_id}")
    assert page.status_code == 200
    text = page.text
    assert event_id in text
    assert "&#34;amount&#34;: 12" in text  # pretty-printed (and escaped) payload
    assert "billing hook" in text
    assert '<span class="state state-failed">failed</span>' in text
    assert "no more retries" in text
    assert "upstream &lt;b&gt;broke&lt;/b&gt;" in text
    assert ">500<" in text
    assert ">87<" in text
    assert "HTTP 500" in text
    assert "<td>worker</td>" in text  # history: pending → failed by the worker
    # pending was entered by the API key that sent the event: named, not just its id
    (key,) = [k for k in await services.keys.list(api.project_id) if k.id == txn.history[0].by]
    assert f"<td>key “{key.name}” ({key.prefix}…)</td>" in text

    url = f"{signed}/events/{event_id}/retry"
    refused = await client.post(url, data={"transaction": txn.id})
    assert refused.status_code == 403
    refused = await client.post(url, data={"transaction": txn.id, "csrf": "forged"})
    assert refused.status_code == 403
    (still,) = await services.store.read(lambda db: transactions_of_event(db, event_id))
    assert still.state == "failed"

    token = CSRF.search(text)
    assert token
    done = await client.post(url, data={"transaction": txn.id, "csrf": token.group(1)})
    assert done.status_code == 303
    assert done.headers["location"].startswith(f"{signed}/events/{event_id}?notice=retried")
    after = await client.get(done.headers["location"])
    assert "The transaction is pending again" in after.text
    (retried,) = await services.store.read(lambda db: transactions_of_event(db, event_id))
    assert retried.state == "pending"
    assert (retried.history[-1].exit_state, retried.history[-1].by) == ("failed", EMAIL)
    assert f"<td>{EMAIL}</td>" in after.text

    # pending already: nothing changes, and the page says so
    again = await client.post(url, data={"transaction": txn.id, "csrf": token.group(1)})
    assert "notice=busy" in again.headers["location"]


async def test_another_environments_event_is_not_found(
    client: httpx.AsyncClient, api: Api, signed: str
) -> None:
    event_id = await send(api, "signup", "ada")
    page = await client.get(f"/dashboard/p/{api.project_id}/live/events/{event_id}")
    assert page.status_code == 404
    assert (await client.get(f"{signed}/events/{event_id}")).status_code == 200


async def test_consumer_filter_from_the_consumers_page(
    client: httpx.AsyncClient, api: Api, signed: str
) -> None:
    made = await api.post("/v1/consumers", {"name": "puller", "kind": "pull"})
    consumer_id = made.json()["id"]
    taken = await send(api, "signup", "ada")
    page = await client.get(f"{signed}/events", params={"consumer": consumer_id})
    assert row_ids(page.text) == [taken]
    assert "puller: pending" in page.text
    failed = await client.get(
        f"{signed}/events", params={"consumer": consumer_id, "state": "failed"}
    )
    assert row_ids(failed.text) == []
    unknown = await client.get(f"{signed}/events", params={"consumer": "con_nope"})
    assert unknown.status_code == 404
