"""Buildable's objects, made from eventyard's: pure translation, no I/O.

An event `key` is the event id's ULID as 32 lowercase hex digits (128 bits both ways), so
it needs no storage. What Buildable keeps with an event beside its payload (the event name
as sent, the emit request's query string and headers, the ttl) travels inside the native
payload under the reserved key `_buildable`; the Buildable payload is the rest.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from eventyard.domain.models import TERMINAL_STATES, Event, HistoryEntry, Transaction
from eventyard.domain.slugs import TRIGGER_ID_MAX, trigger_id_for_name
from eventyard.services.transactions import summarize

RESERVED = "_buildable"  # the payload key holding the adapter's metadata
UNNAMED = "unnamed"  # the trigger of an event emitted with an empty name
DOES_NOT_EXIST = "does-not-exist"  # Buildable's state of an event a txKey has not taken up
_HEX = re.compile(r"^[0-9a-f]{32}$")
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32, as ULIDs (ids.py) use
_ULID = re.compile(r"^[0-7][0-9A-HJKMNP-TV-Z]{25}$")

# Request headers never kept with an event: credentials, cookies, and hop-by-hop noise.
_DROPPED_HEADERS = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-buildable-secret",
        "x-api-key",
        "x-authorization",
        "connection",
        "content-length",
    }
)
# Any header or query parameter whose name holds one of these is treated as a credential.
_SECRET_NAME = re.compile(r"secret|token|key|auth|pass|session|signature|cookie|credential")


def event_key(event_id: str) -> str:
    """`evt_01J…` → the ULID's 128 bits as 32 lowercase hex digits."""
    ulid = event_id.partition("_")[2]
    if not _ULID.fullmatch(ulid):
        raise ValueError(f"{event_id!r} is not a prefixed ULID")
    value = 0
    for char in ulid:
        value = value * 32 + _ALPHABET.index(char)
    return f"{value:032x}"


def event_id_from_key(key: str) -> str | None:
    """32 lowercase hex digits → `evt_…`; None for anything else."""
    if not _HEX.fullmatch(key):
        return None
    value = int(key, 16)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "evt_" + "".join(reversed(chars))


def full_name(event_name: str, platform: str = "", label: str = "") -> str:
    """`platform.label.eventName`, each part slugged, empty parts left out."""
    parts = [trigger_id_for_name(p) for p in (platform, label, event_name) if p and p.strip()]
    return ".".join(p for p in parts if p)[:TRIGGER_ID_MAX].rstrip("_.-")


def trigger_of(event_name: str) -> str:
    """The trigger an emitted event name lands on."""
    return full_name(event_name) or UNNAMED


def _is_secret(name: str, value: str, secret: str) -> bool:
    return bool(_SECRET_NAME.search(name.lower())) or (len(secret) >= 8 and secret in value)


def kept_headers(headers: Mapping[str, str], secret: str) -> dict[str, str]:
    """The emit request's headers as kept with the event: no credential, ever."""
    return {
        name: value
        for name, value in headers.items()
        if name.lower() not in _DROPPED_HEADERS and not _is_secret(name, value, secret)
    }


def kept_query(query: Iterable[tuple[str, str]], secret: str) -> dict[str, str]:
    """The emit request's query string (last value of a repeated name), minus credentials."""
    return {name: value for name, value in query if not _is_secret(name, value, secret)}


def split_payload(event: Event) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the Buildable payload, the adapter's metadata) of a stored event."""
    payload = dict(event.payload)
    meta = payload.pop(RESERVED, None)
    return payload, meta if isinstance(meta, dict) else {}


def event_name(event: Event) -> str:
    name = split_payload(event)[1].get("eventName")
    return name if isinstance(name, str) else event.trigger


def ms(us: int | None) -> int | None:
    return us // 1000 if us is not None else None


def history_json(entries: Sequence[HistoryEntry]) -> list[dict[str, Any]]:
    return [
        {
            "enterState": h.enter_state,
            "exitState": h.exit_state if h.exit_state is not None else DOES_NOT_EXIST,
            "timestamp": h.at // 1000,
            "updatedBy": h.by,
        }
        for h in entries
    ]


def overall_state(transactions: Sequence[Transaction]) -> str:
    """An event's state across its consumers, when no txKey picks one."""
    states = {t.state for t in transactions}
    if not states:
        return DOES_NOT_EXIST
    if states <= TERMINAL_STATES:
        return "failed" if "failed" in states else "finished"
    return "processing" if "processing" in states else "pending"


def event_object(
    event: Event,
    transactions: Sequence[Transaction],
    consumer_id: str | None,
) -> dict[str, Any]:
    """The documented event row. With a txKey's consumer, `state` and `history` are its
    transaction's; without, the overall state and no history."""
    payload, meta = split_payload(event)
    if consumer_id is not None:
        mine = next((t for t in transactions if t.consumer_id == consumer_id), None)
        state = mine.state if mine is not None else DOES_NOT_EXIST
        history = history_json(mine.history) if mine is not None else []
    else:
        state, history = overall_state(transactions), []
    summary = summarize(list(transactions))
    return {
        "_id": event.id,
        "key": event_key(event.id),
        "eventName": event_name(event),
        "environment": event.environment.value,
        "payload": payload,
        "query": meta.get("query", {}),
        "headers": meta.get("headers", {}),
        "createdAt": event.timestamp // 1000,
        "state": state,
        "history": history,
        "ttl": ms(event.expires_at),
        "v": 0,
        "ownership": {
            "buildableId": event.project_id,
            "userId": event.user_id,
            "clientId": meta.get("clientId", ""),
        },
        "processing": {
            "hasTransactions": summary.has_transactions,
            "totalTransactions": summary.total,
            "hasFutureTransactions": summary.has_future_transactions,
            "isCompleted": summary.is_completed,
        },
    }


def _first_entered(txn: Transaction, states: Iterable[str]) -> int | None:
    wanted = set(states)
    return next((h.at // 1000 for h in txn.history if h.enter_state in wanted), None)


def transaction_object(txn: Transaction, event: Event, tx_key: str) -> dict[str, Any]:
    """The documented transaction object of /init and /transact."""
    ended = None
    if txn.state in TERMINAL_STATES:
        ended = next(
            (h.at // 1000 for h in reversed(txn.history) if h.enter_state in TERMINAL_STATES),
            txn.updated_at // 1000,
        )
    return {
        "_id": txn.id,
        "key": event_key(event.id),
        "txn": event_key(txn.id),
        "event": {"_id": event.id, "eventName": event_name(event)},
        "createdAt": txn.created_at // 1000,
        "ttl": ms(event.expires_at),
        "state": txn.state,
        "history": history_json(txn.history),
        "startedAt": _first_entered(txn, ("processing", *TERMINAL_STATES)),
        "txKey": tx_key,
        "endedAt": ended,
    }
