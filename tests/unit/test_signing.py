"""Signatures interoperate with the `standardwebhooks` library, in both directions."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks

from eventyard import __version__
from eventyard.domain.signing import (
    SignatureError,
    generate_secret,
    sign,
    signature_header,
    verify,
    webhook_headers,
)

BODY = b'{"id":"evt_1","trigger":"signup","payload":{"name":"Zo\xc3\xab"}}'
MSG_ID = "txn_01J0000000000000000000000"


@pytest.fixture
def secret() -> str:
    return generate_secret()


def test_generated_secrets_are_whsec_base64_of_enough_random_bytes() -> None:
    first, second = generate_secret(), generate_secret()
    assert first != second
    assert first.startswith("whsec_")
    key = base64.b64decode(first.removeprefix("whsec_"), validate=True)
    assert 24 <= len(key) <= 64


def test_headers_we_make_verify_with_standardwebhooks(secret: str) -> None:
    now = int(time.time())
    headers = webhook_headers([secret], MSG_ID, now, BODY)

    assert standardwebhooks.Webhook(secret).verify(BODY, headers) == {
        "id": "evt_1",
        "trigger": "signup",
        "payload": {"name": "Zoë"},
    }
    assert headers["webhook-id"] == MSG_ID
    assert headers["webhook-timestamp"] == str(now)
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == f"eventyard-webhooks/{__version__}"


def test_sign_matches_standardwebhooks_byte_for_byte(secret: str) -> None:
    timestamp = 1_767_225_600
    theirs = standardwebhooks.Webhook(secret).sign(
        MSG_ID, datetime.fromtimestamp(timestamp, tz=UTC), BODY.decode()
    )
    assert sign(secret, MSG_ID, timestamp, BODY) == theirs


def test_standardwebhooks_signatures_pass_our_verify(secret: str) -> None:
    now = int(time.time())
    signature = standardwebhooks.Webhook(secret).sign(
        MSG_ID, datetime.fromtimestamp(now, tz=UTC), BODY.decode()
    )
    headers = {"Webhook-Id": MSG_ID, "Webhook-Timestamp": str(now), "Webhook-Signature": signature}
    verify(secret, BODY, headers)  # no exception: genuine


def test_a_tampered_body_fails(secret: str) -> None:
    headers = webhook_headers([secret], MSG_ID, int(time.time()), BODY)
    tampered = BODY.replace(b"signup", b"signin")
    with pytest.raises(SignatureError, match="no webhook-signature matches"):
        verify(secret, tampered, headers)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError):
        standardwebhooks.Webhook(secret).verify(tampered, headers)


def test_a_wrong_secret_fails(secret: str) -> None:
    headers = webhook_headers([secret], MSG_ID, int(time.time()), BODY)
    with pytest.raises(SignatureError):
        verify(generate_secret(), BODY, headers)


def test_a_changed_message_id_fails(secret: str) -> None:
    headers = webhook_headers([secret], MSG_ID, int(time.time()), BODY)
    with pytest.raises(SignatureError):
        verify(secret, BODY, {**headers, "webhook-id": "txn_other"})


@pytest.mark.parametrize("age", [301, -301])
def test_a_timestamp_outside_the_window_fails(secret: str, age: int) -> None:
    now = 1_767_225_600
    headers = webhook_headers([secret], MSG_ID, now - age, BODY)
    with pytest.raises(SignatureError, match="too"):
        verify(secret, BODY, headers, now=now)
    verify(secret, BODY, headers, now=now - age)  # the same headers were fine back then


def test_an_old_timestamp_fails_with_standardwebhooks_too(secret: str) -> None:
    headers = webhook_headers([secret], MSG_ID, int(time.time()) - 600, BODY)
    with pytest.raises(standardwebhooks.webhooks.WebhookVerificationError, match="too old"):
        standardwebhooks.Webhook(secret).verify(BODY, headers)


def test_tolerance_is_adjustable(secret: str) -> None:
    now = 1_767_225_600
    headers = webhook_headers([secret], MSG_ID, now - 60, BODY)
    verify(secret, BODY, headers, now=now, tolerance_seconds=60)
    with pytest.raises(SignatureError):
        verify(secret, BODY, headers, now=now, tolerance_seconds=59)


def test_during_rotation_either_secret_verifies(secret: str) -> None:
    new_secret = generate_secret()
    headers = webhook_headers([secret, new_secret], MSG_ID, int(time.time()), BODY)

    assert len(headers["webhook-signature"].split(" ")) == 2
    for each in (secret, new_secret):
        verify(each, BODY, headers)
        standardwebhooks.Webhook(each).verify(BODY, headers)
    with pytest.raises(SignatureError):
        verify(generate_secret(), BODY, headers)


def test_signature_header_needs_a_secret() -> None:
    with pytest.raises(ValueError, match="at least one secret"):
        signature_header([], MSG_ID, 1, BODY)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook-signature": ""}, "missing"),
        ({"webhook-timestamp": "soon"}, "integer seconds"),
        ({"webhook-signature": "v2,abc v1 garbage v1,!!!"}, "no webhook-signature matches"),
    ],
)
def test_malformed_headers_fail_cleanly(secret: str, change: dict[str, str], message: str) -> None:
    headers = webhook_headers([secret], MSG_ID, int(time.time()), BODY)
    with pytest.raises(SignatureError, match=message):
        verify(secret, BODY, {**headers, **change})


def test_secrets_without_prefix_or_padding_are_accepted_like_standardwebhooks() -> None:
    raw = base64.b64encode(b"k" * 25).decode()  # 25 bytes: base64 ends with padding
    unpadded = raw.rstrip("=")
    assert unpadded != raw
    now = int(time.time())
    headers = webhook_headers([unpadded], MSG_ID, now, BODY)
    verify("whsec_" + raw, BODY, headers)
    standardwebhooks.Webhook(unpadded).verify(BODY, headers)


def test_a_secret_that_is_not_base64_is_refused() -> None:
    with pytest.raises(ValueError, match="base64"):
        sign("whsec_not base64!", MSG_ID, 1, BODY)
