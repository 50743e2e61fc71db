"""The dashboard's Secret keys and Consumers pages, through the ASGI app with a signed-in user.

Secrets are shown once and work at once; the list pages never show them; every form answers
bad input with its field errors (422); a POST without the session's CSRF token changes nothing.
"""

from __future__ import annotations

import re

import httpx
import pytest

from eventyard.api.app import create_app
from eventyard.domain.models import ConsumerState, Environment, Principal
from eventyard.services.container import Services, build_services
from eventyard.settings import Settings
from eventyard.store import Store
from tests.conftest import Api

pytestmark = pytest.mark.anyio

CSRF = re.compile(r'name="csrf" value="([^"]+)"')
KEY_SECRET = re.compile(r"sk_(?:live|test)_[A-Za-z0-9]{32}")
WEBHOOK_SECRET = re.compile(r"whsec_[A-Za-z0-9+/=]+")
EMAIL, PASSWORD = "ops@example.com", "correct horse battery"


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


async def shown_once(client: httpx.AsyncClient, posted: httpx.Response) -> httpx.Response:
    """Follow a create/rotate form's redirect: the page that shows the secret, once.

    The form redirects (so a reload cannot repeat it); a second visit of the same page must
    no longer show the secret.
    """
    assert posted.status_code == 303, posted.text
    page = await client.get(posted.headers["location"])
    again = await client.get(posted.headers["location"])
    assert page.status_code == again.status_code == 200
    assert "This is the only time the secret is shown" in page.text
    assert "This is the only time the secret is shown" not in again.text
    return page


def csrf_of(page: httpx.Response) -> str:
    found = CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


@pytest.fixture
async def signed(client: httpx.AsyncClient, services: Services, api: Api) -> str:
    """Sign in; the base path of the acme project's test environment."""
    await sign_in(client, services)
    return f"/dashboard/p/{api.project_id}/test"


# --- Secret keys ----------------------------------------------------------------------------


async def test_a_created_key_is_shown_once_works_and_revokes(
    client: httpx.AsyncClient, api: Api, signed: str
) -> None:
    page = await client.get(f"{signed}/keys")
    assert page.status_code == 200
    assert "+ Create secret key" in page.text
    assert 'aria-current="page">Settings · Secret keys' in page.text
    assert not KEY_SECRET.search(page.text)  # the fixture's keys are listed, never their secrets

    made = await client.post(
        f"{signed}/keys",
        data={
            "csrf": csrf_of(page),
            "name": "billing box",
            "scopes": ["read"],
            "environment": "test",
        },
    )
    made = await shown_once(client, made)
    secrets = KEY_SECRET.findall(made.text)
    assert len(secrets) == 1, "the secret appears once, in the readonly input"
    secret = secrets[0]
    assert secret.startswith("sk_test_")
    assert "This is the only time the secret is shown" in made.text
    assert 'class="secret-once"' in made.text
    assert 'data-copy="new-key-secret"' in made.text

    works = await client.get("/v1/events", headers={"Authorization": f"Bearer {secret}"})
    assert works.status_code == 200, works.text

    listed = await client.get(f"{signed}/keys")
    assert secret not in listed.text
    assert "billing box" in listed.text
    assert secret[:12] in listed.text  # the display prefix

    key_id = re.search(r'/keys/(key_[^/"]+)/revoke"[^>]*Revoke key billing box', listed.text)
    assert key_id, listed.text
    assert "Clients using it will be refused at once." in listed.text
    revoked = await client.post(
        f"{signed}/keys/{key_id.group(1)}/revoke", data={"csrf": csrf_of(listed)}
    )
    assert revoked.status_code == 303
    assert revoked.headers["location"] == f"{signed}/keys?notice=revoked"
    refused = await client.get("/v1/events", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401
    after = await client.get(revoked.headers["location"])
    assert "The key is revoked" in after.text
    assert "state-revoked" in after.text


async def test_a_live_key_can_be_made_from_the_test_environment_page(
    client: httpx.AsyncClient, services: Services, api: Api, signed: str
) -> None:
    page = await client.get(f"{signed}/keys")
    made = await client.post(
        f"{signed}/keys",
        data={
            "csrf": csrf_of(page),
            "name": "prod",
            "scopes": ["write", "read"],
            "environment": "live",
        },
    )
    made = await shown_once(client, made)
    (secret,) = KEY_SECRET.findall(made.text)
    assert secret.startswith("sk_live_")
    keys = await services.keys.list(api.project_id)
    prod = next(k for k in keys if k.name == "prod")
    assert prod.environment is Environment.LIVE
    assert {s.value for s in prod.scopes} == {"write", "read"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "", "scopes": ["write"]}, "Give the key a name"),
        ({"name": "x", "scopes": []}, "Choose at least one scope"),
        ({"name": "x", "scopes": ["root"]}, "Unknown scope"),
        ({"name": "x" * 201, "scopes": ["write"]}, "at most 200 characters"),
        ({"name": "x", "scopes": ["write"], "environment": "prod"}, "live or test"),
    ],
)
async def test_bad_key_input_is_422_and_creates_nothing(
    client: httpx.AsyncClient,
    services: Services,
    api: Api,
    signed: str,
    fields: dict[str, object],
    message: str,
) -> None:
    before = len(await services.keys.list(api.project_id))
    page = await client.get(f"{signed}/keys")
    answer = await client.post(f"{signed}/keys", data={"csrf": csrf_of(page), **fields})
    assert answer.status_code == 422, answer.text
    assert message in answer.text
    assert 'role="alert"' in answer.text
    assert '<details class="create-panel" open>' in answer.text
    assert not KEY_SECRET.search(answer.text)
    assert len(await services.keys.list(api.project_id)) == before


async def test_revoking_an_unknown_key_is_a_404_page(
    client: httpx.AsyncClient, signed: str
) -> None:
    page = await client.get(f"{signed}/keys")
    answer = await client.post(f"{signed}/keys/key_nope/revoke", data={"csrf": csrf_of(page)})
    assert answer.status_code == 404
    assert "text/html" in answer.headers["content-type"]


# --- Consumers ------------------------------------------------------------------------------


async def create_consumer(client: httpx.AsyncClient, signed: str, **fields: str) -> httpx.Response:
    form = await client.get(f"{signed}/consumers/new")
    assert form.status_code == 200
    return await client.post(f"{signed}/consumers/new", data={"csrf": csrf_of(form), **fields})


def consumer_id_of(page: httpx.Response) -> str:
    found = re.search(r'id="consumer-id-value">(con_[^<]+)<', page.text)
    assert found, page.text
    return found.group(1)


async def test_a_webhook_consumer_lifecycle(
    client: httpx.AsyncClient, services: Services, api: Api, signed: str
) -> None:
    empty = await client.get(f"{signed}/consumers")
    assert empty.status_code == 200
    assert "No consumers in test yet" in empty.text

    # A loopback URL is refused at the door, as the sender would refuse it.
    refused = await create_consumer(
        client, signed, kind="webhook", name="billing", url="http://127.0.0.1:9/hooks"
    )
    assert refused.status_code == 422, refused.text
    assert "127.0.0.1 is a loopback address" in refused.text
    assert "EVENTYARD_WEBHOOK_ALLOW_PRIVATE=true" in refused.text

    made = await create_consumer(
        client,
        signed,
        kind="webhook",
        name="billing",
        url="http://93.184.215.14:9/hooks",
        triggers="signup, successful_payment",
    )
    made = await shown_once(client, made)
    secrets = WEBHOOK_SECRET.findall(made.text)
    assert len(secrets) == 1
    assert "This is the only time the secret is shown" in made.text
    assert "Deliveries to this URL will be refused" not in made.text
    cid = consumer_id_of(made)
    assert f'href="{signed}/events?consumer={cid}"' in made.text
    principal_consumer = (await services.consumers.list_consumers(await _principal(services, api)))[
        0
    ]
    assert principal_consumer.secret == secrets[0]
    assert principal_consumer.triggers == ("signup", "successful_payment")

    # An event makes a pending transaction: the list shows the backlog, never the secret.
    sent = await api.send("signup")
    assert sent.status_code in (200, 201, 202), sent.text
    listed = await client.get(f"{signed}/consumers")
    assert "billing" in listed.text
    assert "http://93.184.215.14:9/hooks" in listed.text
    assert "state-enabled" in listed.text
    assert re.search(r'<td class="num">1</td>', listed.text), listed.text
    assert secrets[0] not in listed.text
    page = await client.get(f"{signed}/consumers/{cid}")
    assert secrets[0] not in page.text
    token = csrf_of(page)

    paused = await client.post(f"{signed}/consumers/{cid}/pause", data={"csrf": token})
    assert paused.status_code == 303
    assert paused.headers["location"].endswith("?notice=paused")
    consumer = await services.consumers.get(await _principal(services, api), cid)
    assert consumer.state is ConsumerState.PAUSED
    shown = await client.get(paused.headers["location"])
    assert "The consumer is paused" in shown.text
    assert f"/consumers/{cid}/resume" in shown.text

    resumed = await client.post(f"{signed}/consumers/{cid}/resume", data={"csrf": token})
    assert resumed.status_code == 303
    consumer = await services.consumers.get(await _principal(services, api), cid)
    assert consumer.state is ConsumerState.ENABLED

    rotated = await client.post(
        f"{signed}/consumers/{cid}/rotate-secret", data={"csrf": token, "keep_previous": "yes"}
    )
    rotated = await shown_once(client, rotated)
    (new_secret,) = WEBHOOK_SECRET.findall(rotated.text)
    assert new_secret != secrets[0]
    consumer = await services.consumers.get(await _principal(services, api), cid)
    assert consumer.secret == new_secret
    assert consumer.previous_secret == secrets[0]

    replayed = await client.post(
        f"{signed}/consumers/{cid}/replay", data={"csrf": token, "since": "2000-01-01T00:00"}
    )
    assert replayed.status_code == 303
    assert "notice=replayed" in replayed.headers["location"]
    after = await client.get(replayed.headers["location"])
    assert "Replay queued" in after.text

    bad_replay = await client.post(
        f"{signed}/consumers/{cid}/replay", data={"csrf": token, "since": "yesterday"}
    )
    assert bad_replay.status_code == 422
    assert "Give a date and time (UTC)" in bad_replay.text

    deleted = await client.post(f"{signed}/consumers/{cid}/delete", data={"csrf": token})
    assert deleted.status_code == 303
    assert deleted.headers["location"] == f"{signed}/consumers?notice=deleted"
    gone = await client.get(deleted.headers["location"])
    assert "billing" not in gone.text
    assert (await client.get(f"{signed}/consumers/{cid}")).status_code == 404


async def _principal(services: Services, api: Api) -> Principal:
    """The test environment's principal, as the fixture's admin key has it."""
    return await services.keys.authenticate(api.test_key)


async def test_a_pull_consumer_redirects_to_its_page_without_a_secret(
    client: httpx.AsyncClient, signed: str
) -> None:
    made = await create_consumer(client, signed, kind="pull", name="worker", url="", triggers="")
    assert made.status_code == 303
    page = await client.get(made.headers["location"])
    assert page.status_code == 200
    assert "The consumer is created" in page.text
    assert "whsec_" not in page.text
    assert "rotate-secret" not in page.text
    assert "every trigger" in page.text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"kind": "webhook", "name": "a", "url": ""}, "is required for a webhook consumer"),
        ({"kind": "webhook", "name": "a", "url": "ftp://example.com/x"}, "scheme"),
        ({"kind": "webhook", "name": "", "url": "https://example.com/"}, "<strong>Name</strong>"),
        (
            {"kind": "webhook", "name": "a", "url": "https://example.com/", "triggers": "Not ok!"},
            "<strong>Triggers</strong>",
        ),
        ({"kind": "nope", "name": "a"}, "<strong>Kind</strong>"),
    ],
)
async def test_bad_consumer_input_is_422_with_field_errors(
    client: httpx.AsyncClient,
    services: Services,
    api: Api,
    signed: str,
    fields: dict[str, str],
    message: str,
) -> None:
    answer = await create_consumer(client, signed, **fields)
    assert answer.status_code == 422, answer.text
    assert message in answer.text
    assert 'role="alert"' in answer.text
    assert await services.consumers.list_consumers(await _principal(services, api)) == []


async def test_no_private_warning_when_the_server_allows_private(
    store: Store, settings: Settings, api: Api
) -> None:
    services = build_services(store, settings.replace(webhook_allow_private=True))
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url="http://eventyard.test") as c:
        await sign_in(c, services)
        base = f"/dashboard/p/{api.project_id}/test"
        made = await create_consumer(
            c, base, kind="webhook", name="local", url="http://127.0.0.1:9/"
        )
        made = await shown_once(c, made)
        assert "Deliveries to this URL will be refused" not in made.text


async def test_posts_without_csrf_are_refused_and_change_nothing(
    client: httpx.AsyncClient, services: Services, api: Api, signed: str
) -> None:
    before = len(await services.keys.list(api.project_id))
    refused = await client.post(f"{signed}/keys", data={"name": "sneaky", "scopes": ["admin"]})
    assert refused.status_code == 403
    wrong = await client.post(
        f"{signed}/keys", data={"csrf": "not-it", "name": "sneaky", "scopes": ["admin"]}
    )
    assert wrong.status_code == 403
    assert len(await services.keys.list(api.project_id)) == before

    made = await create_consumer(client, signed, kind="pull", name="worker")
    cid = made.headers["location"].split("/consumers/")[1].split("?")[0]
    for action in ("pause", "delete", "rotate-secret", "replay"):
        answer = await client.post(
            f"{signed}/consumers/{cid}/{action}", data={"since": "2000-01-01T00:00"}
        )
        assert answer.status_code == 403, action
    nothing = await client.post(f"{signed}/consumers/new", data={"kind": "pull", "name": "x"})
    assert nothing.status_code == 403
    consumers = await services.consumers.list_consumers(await _principal(services, api))
    assert [(c.name, c.state) for c in consumers] == [("worker", ConsumerState.ENABLED)]


async def test_signed_out_visitors_are_sent_to_sign_in(client: httpx.AsyncClient, api: Api) -> None:
    for path in ("keys", "consumers", "consumers/new"):
        answer = await client.get(f"/dashboard/p/{api.project_id}/test/{path}")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/dashboard/login?next=")
