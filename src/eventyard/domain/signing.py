"""Webhook signatures, the Standard Webhooks way (https://www.standardwebhooks.com).

Every webhook carries three headers: `webhook-id` (the message id, stable across retries, so
the receiver can drop duplicates), `webhook-timestamp` (integer Unix seconds, so it can refuse
replays of old messages) and `webhook-signature`: `v1,` followed by the base64 HMAC-SHA256 of
`"{id}.{timestamp}.{body}"`, keyed with the consumer's secret. A secret is `whsec_` plus the
base64 of random bytes; the key is those decoded bytes. While a rotated secret overlaps its
replacement the header holds one signature per secret, separated by spaces, and a receiver
accepts the message when any of them matches its own secret. The scheme is byte-for-byte the
one the `standardwebhooks` library implements, so receivers can verify with it; `verify` is
our own side of the same check. Pure functions: no I/O, and time comes in as an argument.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as _secrets
import time
from collections.abc import Mapping, Sequence

from eventyard import __version__

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SIGNATURE_VERSION = "v1"
SECRET_BYTES = 32
DEFAULT_TOLERANCE_SECONDS = 300
USER_AGENT = f"eventyard-webhooks/{__version__}"


class SignatureError(ValueError):
    """A webhook whose headers are missing, malformed, out of the time window or unsigned."""


def generate_secret() -> str:
    """A new signing secret: `whsec_` and the base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(_secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def _secret_key(secret: str) -> bytes:
    # Decoded like standardwebhooks does: the prefix is optional and padding may be missing.
    raw = secret.removeprefix(SECRET_PREFIX).rstrip("=")
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError("a webhook secret must be 'whsec_' followed by base64") from exc
    if not key:
        raise ValueError("a webhook secret may not be empty")
    return key


def _digest(key: bytes, msg_id: str, timestamp: str, body: bytes) -> bytes:
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return hmac.new(key, signed, hashlib.sha256).digest()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The `v1,<base64 HMAC-SHA256>` signature of one message with one secret."""
    digest = _digest(_secret_key(secret), msg_id, str(timestamp), body)
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


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
    lowered = {name.lower(): value for name, value in headers.items()}
    msg_id = lowered.get("webhook-id")
    timestamp = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not (msg_id and timestamp and signatures):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise SignatureError(f"webhook-timestamp is not integer seconds: {timestamp!r}")
    current = time.time() if now is None else now
    if int(timestamp) < current - tolerance_seconds:
        raise SignatureError("webhook-timestamp is too old")
    if int(timestamp) > current + tolerance_seconds:
        raise SignatureError("webhook-timestamp is too far in the future")

    expected = _digest(_secret_key(secret), msg_id, timestamp, body)
    matched = False
    for entry in signatures.split(" "):
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        # Check every entry rather than stopping at the first match, so timing says nothing
        # about which one matched.
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError("no webhook-signature matches the secret")
