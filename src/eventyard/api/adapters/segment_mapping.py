"""Segment Tracking API messages as native event items: pure translation, no I/O.

A Segment message (`track`, `identify`, `page`, `screen`, `group`, `alias`) becomes one
native item `{trigger, user_id, payload, timestamp, idempotency_key}`:

* trigger: `track` → the slug of `event` (`Order Completed` → `order_completed`); every
  other call → its type (`identify`, `page`, ...);
* user: `userId`, else `anon:` + `anonymousId`;
* payload: the message as sent, less the transport fields (`writeKey`, `sentAt`);
* timestamp: Segment's clock-skew rule, `receivedAt - (sentAt - originalTimestamp)`;
* idempotency key: `messageId`.

`MessageError` says why a message cannot become an event; the routes turn it into a 400
(single calls) or drop the message (batches), as Segment does.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from eventyard.domain.slugs import trigger_id_for_name
from eventyard.domain.timeparse import MAX_US, MIN_US, TimeParseError, parse_event_time, type_name
from eventyard.errors import EventyardError, FieldError, PayloadTooLarge, ValidationFailed

CALL_TYPES = ("track", "identify", "page", "screen", "group", "alias")
KB = 1024
EVENT_LIMIT = 32 * KB  # one message, as JSON
REQUEST_LIMIT = 32 * KB  # a single-call request body
BATCH_LIMIT = 500 * KB  # a batch (or import) request body
BATCH_EVENTS_LIMIT = 2500
ANONYMOUS_PREFIX = "anon:"
TRANSPORT_FIELDS = frozenset({"writeKey", "sentAt"})
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class InvalidMessage(ValidationFailed):
    """A message refused with one of Segment's own codes (`no_user_anon_id`, ...)."""

    def __init__(self, segment_code: str, message: str, errors: list[FieldError]) -> None:
        super().__init__(message, errors=errors)
        self.segment_code = segment_code


@dataclass
class MessageError(Exception):
    """Why one message cannot become an event."""

    code: str
    path: str
    message: str

    def as_error(self) -> EventyardError:
        detail = f"{self.path} {self.message}"
        if self.code == "payload_too_large":
            return PayloadTooLarge(f"The event is too large: {detail}.")
        return InvalidMessage(
            self.code,
            f"The message is not valid: {detail}.",
            [FieldError(self.path, self.message)],
        )


def trigger_for(call: str, message: dict[str, Any], path: str) -> str:
    """The trigger id of a message: `track` → slug of `event`, others → the call type."""
    if call != "track":
        return call
    name = message.get("event")
    if not isinstance(name, str) or not name.strip():
        raise MessageError(
            "missing_event",
            f"{path}.event",
            "is required for a track call: the name of the event, e.g. 'Order Completed'",
        )
    return trigger_id_for_name(name) or "event_" + hashlib.sha256(name.encode()).hexdigest()[:10]


def _id_text(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str) and value:
        return value
    return None


def user_for(message: dict[str, Any], path: str) -> str:
    """`userId`, else `anon:<anonymousId>`: anonymous ids never collide with user ids."""
    user = _id_text(message.get("userId"))
    if user is not None:
        return user
    anonymous = _id_text(message.get("anonymousId"))
    if anonymous is not None:
        return ANONYMOUS_PREFIX + anonymous
    raise MessageError(
        "no_user_anon_id",
        path,
        "needs a userId or an anonymousId (a non-empty string)",
    )


def _time(value: Any, path: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_event_time(value)
    except TimeParseError as exc:
        raise MessageError("invalid_timestamp", path, str(exc)) from None


def event_time(
    message: dict[str, Any], path: str, received_at_us: int, batch_sent_at: Any = None
) -> int | None:
    """The event time, in microseconds; None means "now" (the server's receipt time).

    As Segment does: `originalTimestamp` (or, from server libraries, `timestamp`) is the
    client's clock when the call was made, `sentAt` the client's clock when it was sent, so
    `receivedAt - (sentAt - originalTimestamp)` is the event time on the server's clock.
    Without `sentAt` the client's time is taken as it is.
    """
    field = "originalTimestamp" if message.get("originalTimestamp") is not None else "timestamp"
    original = _time(message.get(field), f"{path}.{field}")
    if original is None:
        return None
    sent_raw = message.get("sentAt")
    sent_path = f"{path}.sentAt"
    if sent_raw is None:
        sent_raw, sent_path = batch_sent_at, "$.sentAt"
    sent = _time(sent_raw, sent_path)
    if sent is None:
        return original
    corrected = received_at_us - (sent - original)
    if not MIN_US <= corrected <= MAX_US:
        raise MessageError(
            "invalid_timestamp",
            f"{path}.{field}",
            "with sentAt gives an event time outside 1970-01-01 to 9999-12-31",
        )
    return corrected


def format_time(us: int) -> str:
    return (_EPOCH + timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def _required(call: str, message: dict[str, Any], path: str) -> None:
    needs = {"group": "groupId", "alias": "previousId"}.get(call)
    if needs is not None and _id_text(message.get(needs)) is None:
        article = "an" if call[0] in "aeiou" else "a"
        raise MessageError(
            "missing_" + needs, f"{path}.{needs}", f"is required for {article} {call} call"
        )
    if call == "alias" and _id_text(message.get("userId")) is None:
        raise MessageError("missing_userId", f"{path}.userId", "is required for an alias call")


def _with_batch_defaults(message: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """A batch's top-level `context` and `integrations` apply to each message (its own win)."""
    out = dict(message)
    for name, value in defaults.items():
        if not isinstance(value, dict):
            continue
        own = out.get(name)
        out[name] = {**value, **own} if isinstance(own, dict) else (own or value)
    return out


def to_item(
    message: Any,
    call: str | None,
    path: str,
    received_at_us: int,
    *,
    batch_sent_at: Any = None,
    defaults: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One Segment message as a native item; `call` is None in a batch (read from `type`)."""
    if not isinstance(message, dict):
        raise MessageError("invalid_message", path, f"must be an object, got {type_name(message)}")
    if call is None:
        kind = message.get("type")
        if kind not in CALL_TYPES:
            raise MessageError(
                "invalid_type",
                f"{path}.type",
                f"must be one of {', '.join(CALL_TYPES)}; got {kind!r}",
            )
        call = str(kind)
    size = len(orjson.dumps(message))
    if size > EVENT_LIMIT:
        raise MessageError(
            "payload_too_large",
            path,
            f"is {size:,} bytes as JSON; the limit is 32 KB ({EVENT_LIMIT:,} bytes) an event",
        )
    _required(call, message, path)
    trigger = trigger_for(call, message, path)
    user = user_for(message, path)
    when = event_time(message, path, received_at_us, batch_sent_at)
    if defaults:
        message = _with_batch_defaults(message, defaults)
    payload = {k: v for k, v in message.items() if k not in TRANSPORT_FIELDS}
    payload["type"] = call
    item: dict[str, Any] = {"trigger": trigger, "user_id": user, "payload": payload}
    if when is not None:
        item["timestamp"] = format_time(when)
    message_id = _id_text(message.get("messageId"))
    if message_id is not None:
        item["idempotency_key"] = message_id
    return item
