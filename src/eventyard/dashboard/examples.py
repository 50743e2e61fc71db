"""Ready-to-paste curl commands for sending a trigger's events, natively and per adapter.

Each example is built from the trigger itself (its id, name, uuid and inbound webhook token)
and a sample payload made from its attributes, so what the trigger page shows is what the
server accepts for that trigger.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import Any

import orjson

from eventyard.domain.models import Trigger
from eventyard.domain.schema import compile_schema

_SAMPLES: dict[str, Any] = {
    "string": "text",
    "number": 19.99,
    "integer": 1,
    "boolean": True,
    "datetime": "2026-01-01T12:00:00Z",
    "email": "jane@example.com",
    "array": ["a", "b"],
    "object": {"key": "value"},
}


@dataclass(frozen=True)
class Example:
    title: str
    note: str
    command: str
    stored: dict[str, Any] | None = None  # the payload the server stores, if not the sample


def sample_payload(trigger: Trigger) -> dict[str, Any]:
    attributes = (trigger.schema or {}).get("attributes")
    if not attributes:
        return {"value": 19.99}
    payload: dict[str, Any] = {}
    for attr in attributes:
        if attr.get("type") == "enum" and attr.get("values"):
            payload[attr["name"]] = attr["values"][0]
        else:
            payload[attr["name"]] = _SAMPLES.get(attr.get("type", "string"), "text")
    return payload


def _json(value: Any) -> str:
    return shlex.quote(orjson.dumps(value).decode())


@dataclass(frozen=True)
class Examples:
    shown: list[Example]
    left_out: list[str]  # why an adapter's example is not shown for this trigger


def examples(trigger: Trigger, origin: str, environment: str) -> Examples:
    """The examples whose stored payload this trigger's schema accepts, and why any is not.

    Some adapters keep an identifying field in the payload (Bunce's `email`, the CDP hook's
    `customer_id`); a trigger whose schema refuses that field cannot take their events.
    """
    validate = compile_schema(trigger.schema)
    shown: list[Example] = []
    left_out: list[str] = []
    for example in _all_examples(trigger, origin, environment):
        stored = example.stored if example.stored is not None else sample_payload(trigger)
        problems = validate(stored, "$.payload")
        if problems:
            left_out.append(
                f"{example.title}: the payload it stores would be refused "
                f"({problems[0].path} {problems[0].message})"
            )
        else:
            shown.append(example)
    return Examples(shown, left_out)


def _all_examples(trigger: Trigger, origin: str, environment: str) -> list[Example]:
    key = f"sk_{environment}_YOUR_KEY"
    payload = sample_payload(trigger)
    user = "user123"
    auth = f"-H 'Authorization: Bearer {key}'"
    json_type = "-H 'Content-Type: application/json'"
    out = [
        Example(
            "eventyard API",
            "The native route; add an idempotency_key to make retries safe.",
            f"curl -X POST {origin}/v1/events {auth} {json_type} \\\n  -d "
            + _json({"trigger": trigger.id, "user_id": user, "payload": payload}),
        ),
        Example(
            "eventyard API, trigger and user in the path",
            "The user id is percent-encoded in the path.",
            f"curl -X POST {origin}/v1/triggers/{trigger.id}/users/{user}/events"
            f" {auth} {json_type} \\\n  -d {_json({'payload': payload})}",
        ),
        Example(
            "Reward-compatible",
            "The Reward plugin's custom-trigger request, with its base URL changed.",
            f"curl -X POST {origin}/reward/v1/triggers/{trigger.id}/users/{user}/events"
            f" {auth} {json_type} \\\n  -d {_json(payload)}",
        ),
        Example(
            "Bunce-compatible",
            "Bunce names the trigger by its UUID; the payload's email is the user.",
            f"curl -X POST {origin}/bunce/v1/events/trigger -H 'X-Authorization: {key}'"
            f" {json_type} \\\n  -d "
            + _json(
                {"event_id": trigger.uuid, "payload": {"email": "jane@example.com", **payload}}
            ),
            stored={"email": "jane@example.com", **payload},
        ),
        Example(
            "EventBunker-compatible",
            "The event name maps to this trigger's id.",
            f"curl -X POST {origin}/eventbunker/post -H 'x-eventbunker-write-key: {key}'"
            f" {json_type} \\\n  -d "
            + _json({"event_name": trigger.id, "customer_identifier": user, **payload}),
        ),
        Example(
            "Segment-compatible",
            "A Segment track call; the event name is this trigger's ID.",
            f"curl -X POST {origin}/segment/v1/track -u '{key}:' {json_type} \\\n  -d "
            + _json({"userId": user, "event": trigger.id, "properties": payload}),
            # Segment's whole message is the payload (docs/adapters/segment.md).
            stored={"type": "track", "userId": user, "event": trigger.id, "properties": payload},
        ),
        Example(
            "CDP inbound webhook",
            "This trigger's own webhook URL; the key goes in HTTP Basic auth.",
            f"curl -X POST {origin}/cdp/webhooks/{trigger.inbound_token}"
            f" -u '{key}:' {json_type} \\\n  -d "
            + _json(
                {
                    "event_name": trigger.id,
                    "external_event_id": f"{trigger.id}-0001",  # the idempotency key
                    "customer_id": user,
                    **payload,
                }
            ),
            stored={"customer_id": user, **payload},
        ),
    ]
    return out
