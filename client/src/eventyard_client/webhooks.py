"""Verifying the webhooks eventyard sends: the Standard Webhooks scheme, in one place.

eventyard signs every webhook the Standard Webhooks way (https://www.standardwebhooks.com).
Three headers travel with the body: `webhook-id` (the transaction id, the same on every
attempt, so a receiver can drop repeats), `webhook-timestamp` (integer Unix seconds, so it
can refuse a captured message replayed later) and `webhook-signature`: `v1,` and the base64
HMAC-SHA256 of `"{id}.{timestamp}.{body}"`, keyed with the consumer's secret. A secret is
`whsec_` and the base64 of random bytes; the key is those bytes. While a rotated secret
overlaps its replacement the header holds one signature per secret, separated by spaces,
and a message is genuine when any of them matches.

`verify_webhook` is what a receiver calls; `sign` and `verify_signature` are the two halves
of the scheme, which the server's own `eventyard.domain.signing` uses too, so the server
that signs and the client that checks cannot disagree. Everything here is pure: no I/O, and
the time comes in as an argument when a test needs it to.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Mapping

from eventyard_client.errors import WebhookVerificationError
from eventyard_client.resource import Resource

SECRET_PREFIX = "whsec_"  # noqa: S105 - a prefix, not a secret
SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def secret_key(secret: str | bytes) -> bytes:
    """The HMAC key of a secret: `whsec_<base64>` (the prefix and the padding are optional,
    as in the `standardwebhooks` library), or the raw key as bytes."""
    if isinstance(secret, bytes):
        key = secret
    else:
        raw = secret.strip().removeprefix(SECRET_PREFIX).rstrip("=")
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


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes | str) -> str:
    """The `v1,<base64 HMAC-SHA256>` signature of one message with one secret: what the
    server puts in `webhook-signature`, and what a test of a receiver can sign with."""
    digest = _digest(secret_key(secret), msg_id, str(timestamp), _bytes(body))
    return f"{SIGNATURE_VERSION},{base64.b64encode(digest).decode('ascii')}"


def verify_signature(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | bytes,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> None:
    """Check a webhook's headers against its body; raise `WebhookVerificationError` unless
    it is genuine and recent. `verify_webhook` without reading the body."""
    found = {name.lower(): value for name, value in headers.items()}
    missing = [name for name in HEADERS if not found.get(name, "").strip()]
    if missing:
        raise WebhookVerificationError(
            f"missing {', '.join(missing)} header{'s' if len(missing) > 1 else ''}: "
            "is this a webhook from eventyard?"
        )
    msg_id = found["webhook-id"].strip()
    timestamp = found["webhook-timestamp"].strip()
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 20):
        raise WebhookVerificationError(
            f"webhook-timestamp is not integer seconds: {timestamp[:40]!r}"
        )
    current = time.time() if now is None else now
    age = current - int(timestamp)
    if age > tolerance_seconds:
        raise WebhookVerificationError(
            f"webhook-timestamp is too old: signed {age:.0f} s ago, more than the "
            f"{tolerance_seconds:g} s allowed (a replayed message, or a clock that is off)"
        )
    if -age > tolerance_seconds:
        raise WebhookVerificationError(
            f"webhook-timestamp is too far in the future: {-age:.0f} s ahead, more than the "
            f"{tolerance_seconds:g} s allowed (a clock that is off)"
        )

    expected = _digest(secret_key(secret), msg_id, timestamp, _bytes(body))
    matched = False
    for entry in found["webhook-signature"].split():
        version, _, encoded = entry.partition(",")
        if version != SIGNATURE_VERSION:
            continue
        try:
            candidate = base64.b64decode(encoded, validate=True)
        except binascii.Error:
            continue
        # Every entry is compared, none skipped after a match, so the time taken says
        # nothing about which one matched.
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookVerificationError(
            "no webhook-signature matches the secret (a wrong secret, or a body changed "
            "after signing: verify the raw bytes received, before any JSON parsing)"
        )


def verify_webhook(
    body: bytes | str,
    headers: Mapping[str, str],
    secret: str | bytes,
    *,
    tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS,
    now: float | None = None,
) -> Resource:
    """Check a webhook from eventyard and return its event.

    `body` is the request body exactly as received (bytes, or text decoded as UTF-8);
    `headers` any mapping of the request's headers (a dict, `httpx.Headers`, Starlette's or
    Django's), whose names are matched case-insensitively; `secret` the consumer's
    `whsec_...` secret. A message signed more than `tolerance_seconds` before or after `now`
    (Unix seconds; the clock when omitted) is refused, so a captured one cannot be replayed.

    Returns the JSON body as a `Resource` (`event.id`, `event.trigger`, `event.payload`).
    Raises `WebhookVerificationError`, saying why, when a header is missing or malformed,
    the timestamp is out of range or no signature matches; `ValueError` for a secret that is
    not `whsec_` and base64. Remember the `webhook-id`s you have processed: delivery is at
    least once, and a repeat carries the same id.
    """
    verify_signature(body, headers, secret, tolerance_seconds=tolerance_seconds, now=now)
    try:
        parsed = json.loads(body, object_hook=Resource)
    except ValueError as exc:
        raise WebhookVerificationError(f"the signed body is not JSON: {exc}") from exc
    if not isinstance(parsed, Resource):
        raise WebhookVerificationError("the signed body is not a JSON object")
    return parsed


def _bytes(body: bytes | str) -> bytes:
    return body.encode() if isinstance(body, str) else body
