"""`verify_webhook`: webhooks a real server delivered to a real receiver check out, and the
scheme matches the `standardwebhooks` library both ways; forgeries are refused, saying why."""

from __future__ import annotations

import base64
import json
import time
from datetime import UTC, datetime

import httpx
import pytest
import standardwebhooks
from eventyard_client import AsyncClient, Resource, WebhookVerificationError, verify_webhook
from eventyard_client.webhooks import sign

from eventyard.domain.signing import generate_secret
from tests.client.conftest import RunningServer
from tests.receiver import ReceivedRequest, Receiver

BODY = b'{"id":"evt_1","trigger":"signup","payload":{"name":"Zo\xc3\xab"}}'
MSG_ID = "txn_01J0000000000000000000000"


def signed(secret: str, *, at: int | None = None, body: bytes = BODY) -> dict[str, str]:
    timestamp = int(time.time()) if at is None else at
    return {
        "webhook-id": MSG_ID,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, MSG_ID, timestamp, body),
    }


@pytest.mark.anyio
async def test_a_delivered_webhook_verifies_and_forgeries_of_it_do_not(
    server: RunningServer,
) -> None:
    async with Receiver() as receiver, AsyncClient(server.url, server.live_key) as client:
        hook = await client.consumers.create("hook", "webhook", url=receiver.url("/hook"))
        sent = await client.send("order_paid", "u1", {"total": 5, "note": "naïve"})
        (first,) = await receiver.wait_for(1, within=15)

        event = verify_webhook(first.body, first.headers, hook.secret)
        assert isinstance(event, Resource)
        assert (event.id, event.trigger, event.user_id) == (sent.id, "order_paid", "u1")
        assert event.payload == {"total": 5, "note": "naïve"}
        # Any mapping of headers, any case; the body as text; the secret without its prefix.
        capitalized = {name.title(): value for name, value in first.headers.items()}
        assert verify_webhook(first.body.decode(), capitalized, hook.secret).id == sent.id
        assert verify_webhook(first.body, httpx.Headers(capitalized), hook.secret).id == sent.id
        unprefixed = hook.secret.removeprefix("whsec_")
        assert verify_webhook(first.body, first.headers, unprefixed).id == sent.id
        assert standardwebhooks.Webhook(hook.secret).verify(first.body, first.headers) == event

        refuse_forgeries(first, hook.secret)

        # During a rotation's overlap the server signs with both secrets: either verifies.
        rotated = await client.consumers.rotate_secret(hook.id, overlap_seconds=60)
        await client.send("order_paid", "u2")
        _, during = await receiver.wait_for(2, within=15)
        assert len(during.headers["webhook-signature"].split(" ")) == 2
        for secret in (hook.secret, rotated.secret):
            assert verify_webhook(during.body, during.headers, secret).user_id == "u2"
        with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
            verify_webhook(during.body, during.headers, generate_secret())


def refuse_forgeries(request: ReceivedRequest, secret: str) -> None:
    body, headers = request.body, request.headers
    tampered = body.replace(b'"total":5', b'"total":500')
    assert tampered != body
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(tampered, headers, secret)
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(body, headers, generate_secret())
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(body, {**headers, "webhook-id": "txn_another"}, secret)

    signed_at = int(headers["webhook-timestamp"])
    with pytest.raises(WebhookVerificationError, match="too old"):
        verify_webhook(body, headers, secret, now=signed_at + 301)
    with pytest.raises(WebhookVerificationError, match="too far in the future"):
        verify_webhook(body, headers, secret, now=signed_at - 301)
    assert verify_webhook(body, headers, secret, now=signed_at + 300)  # the edge is in
    assert verify_webhook(body, headers, secret, now=signed_at + 3600, tolerance_seconds=3601)

    for name in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        without = {k: v for k, v in headers.items() if k != name}
        with pytest.raises(WebhookVerificationError, match=f"missing {name} header"):
            verify_webhook(body, without, secret)
    with pytest.raises(WebhookVerificationError, match="missing webhook-id, webhook-timestamp"):
        verify_webhook(body, {"content-type": "application/json"}, secret)
    with pytest.raises(WebhookVerificationError, match="integer seconds"):
        verify_webhook(body, {**headers, "webhook-timestamp": "2026-11-23T12:00:00Z"}, secret)
    # The library refuses the same forgeries.
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(tampered, headers)


def test_standardwebhooks_signatures_verify_and_ours_verify_with_standardwebhooks() -> None:
    secret = generate_secret()
    now = int(time.time())
    theirs = standardwebhooks.Webhook(secret).sign(
        MSG_ID, datetime.fromtimestamp(now, tz=UTC), BODY.decode()
    )
    headers = {"Webhook-Id": MSG_ID, "Webhook-Timestamp": str(now), "Webhook-Signature": theirs}
    assert verify_webhook(BODY, headers, secret) == json.loads(BODY)

    ours = signed(secret, at=now)
    assert ours["webhook-signature"] == theirs  # byte for byte
    assert standardwebhooks.Webhook(secret).verify(BODY, ours) == {
        "id": "evt_1",
        "trigger": "signup",
        "payload": {"name": "Zoë"},
    }


def test_any_one_of_several_signatures_is_enough_and_unknown_versions_are_skipped() -> None:
    old, new = generate_secret(), generate_secret()
    headers = signed(old)
    also_new = sign(new, MSG_ID, int(headers["webhook-timestamp"]), BODY)
    both = f"{headers['webhook-signature']} {also_new}"
    for secret in (old, new):
        standardwebhooks.Webhook(secret).verify(BODY, {**headers, "webhook-signature": both})
        # Entries of another version or not base64 are passed over, not fatal.
        noisy = {**headers, "webhook-signature": f"v2,c29tZXRoaW5n v1,!!notbase64 {both}"}
        assert verify_webhook(BODY, noisy, secret).id == "evt_1"
    with pytest.raises(WebhookVerificationError, match="no webhook-signature matches"):
        verify_webhook(BODY, {**headers, "webhook-signature": both}, generate_secret())


def test_a_raw_key_or_an_unpadded_secret_verifies_like_standardwebhooks() -> None:
    key = b"k" * 25  # 25 bytes: its base64 ends with padding
    unpadded = base64.b64encode(key).decode().rstrip("=")
    headers = signed(unpadded)
    assert verify_webhook(BODY, headers, key).id == "evt_1"
    assert verify_webhook(BODY, headers, f"whsec_{unpadded}").id == "evt_1"
    standardwebhooks.Webhook(unpadded).verify(BODY, headers)
    with pytest.raises(ValueError, match="base64"):
        verify_webhook(BODY, headers, "whsec_not base64!")


def test_a_genuine_body_that_is_not_a_json_object_is_refused_clearly() -> None:
    secret = generate_secret()
    for body, reason in ((b"not json", "not JSON"), (b"[1, 2]", "not a JSON object")):
        with pytest.raises(WebhookVerificationError, match=reason):
            verify_webhook(body, signed(secret, body=body), secret)
