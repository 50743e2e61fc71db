"""Webhook signatures, the Standard Webhooks way (https://www.standardwebhooks.com).

Every webhook carries three headers: `webhook-id` (the message id, stable across retries, so
the receiver can drop duplicates), `webhook-timestamp` (integer Unix seconds, so it can refuse
replays of old messages) and `webhook-signature`: `v1,` followed by the base64 HMAC-SHA256 of
`"{id}.{timestamp}.{body}"`, keyed with the consumer's secret. A secret is `whsec_` plus the
base64 of random bytes; the key is those decoded bytes. While a rotated secret overlaps its
replacement the header holds one signature per secret, separated by spaces, and a receiver
accepts the message when any of them matches its own secret. The scheme is byte-for-byte the
one the `standardwebhooks` library implements, so receivers can verify with it.

The scheme itself (how a secret becomes a key, what is signed, how a signature is checked)
lives once, in the client's `eventyard_client.webhooks`, which receivers use through
`verify_webhook`: `sign` and `verify` here delegate to it, so what the server signs and what
the client accepts cannot drift apart. This module keeps the server's side: making secrets
and the full set of headers a delivery carries. Pure functions: no I/O, and time comes in as
an argument.
"""

from __future__ import annotations

import base64
import secrets as _secrets
from collections.abc import Mapping, Sequence

from eventyard_client import webhooks as _scheme
from eventyard_client.errors import WebhookVerificationError

from eventyard import __version__

SECRET_PREFIX = _scheme.SECRET_PREFIX
SIGNATURE_VERSION = _scheme.SIGNATURE_VERSION
SECRET_BYTES = 32
DEFAULT_TOLERANCE_SECONDS = _scheme.DEFAULT_TOLERANCE_SECONDS
USER_AGENT = f"eventyard-webhooks/{__version__}"


class SignatureError(ValueError):
    """A webhook whose headers are missing, malformed, out of the time window or unsigned."""


def generate_secret() -> str:
    """A new signing secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64 HMAC-SHA256>` signature of one message with one secret."""
    return _scheme.sign(secret, msg_id, timestamp, body)


def signature_header(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value: one signature per secret, separated by spaces."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign a webhook")
    return " ".join(sign(secret, msg_id, timestamp, body) for secret in secrets)


def webhook_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """Every header a webhook request carries, signed with each of `secrets`."""
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature_header(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


def verify(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    *,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a received webhook; raise `SignatureError` unless it is genuine and recent.

    `headers` are matched case-insensitively. `now` is Unix seconds (the current time when
    omitted). A timestamp more than `tolerance_seconds` away from `now`, in either direction,
    is refused, so a captured message cannot be replayed later.
    """
    try:
        _scheme.verify_signature(
            body, headers, secret, tolerance_seconds=tolerance_seconds, now=now
        )
    except WebhookVerificationError as exc:
        raise SignatureError(str(exc)) from exc
