"""JSON Schemas of the native API's bodies, for `/openapi.json` and the route declarations."""

from __future__ import annotations

from typing import Any

from eventyard.services.consumers import MAX_LEASE_SECONDS
from eventyard.store.erasures import ERASED_KINDS as _ERASED_KINDS


def ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def problem(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/problem+json": {"schema": ref("Problem")}},
    }


def json_body(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
# A project's retention, as services/projects.py checks it; null keeps events forever.
_RETENTION_DAYS = {"type": ["integer", "null"], "minimum": 1, "maximum": 36_500}
# A trigger id, as domain/slugs.py checks it.
_TRIGGER_ID = {
    "type": "string",
    "pattern": r"^[a-z0-9][a-z0-9_.\-]*$",
    "maxLength": 128,
    "description": "the trigger's id: lowercase letters, digits, '_', '-' and '.', starting "
    "with a letter or digit, up to 128 characters",
}
# A user id or idempotency key: not empty, no control characters, the default length limit.
_IDENTIFIER = {
    "type": "string",
    "minLength": 1,
    "maxLength": 256,
    "pattern": r"^[^\u0000-\u001f\u007f]*$",
}
_EVENT_TIME = {
    "oneOf": [
        {"type": "string", "format": "date-time", "description": "ISO 8601; no zone means UTC"},
        {
            "type": "integer",
            "minimum": 0,
            "maximum": 253402300799999,
            "description": "epoch milliseconds, 1970 to 9999",
        },
    ]
}

COMPONENTS: dict[str, dict[str, Any]] = {
    "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details, with eventyard's `code` and `message`.",
        "required": ["type", "title", "status", "detail", "code", "message"],
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "code": {"type": "string", "description": "stable, machine-readable"},
            "message": {"type": "string"},
            "errors": {"type": "array", "items": ref("FieldError")},
        },
    },
    "FieldError": {
        "type": "object",
        "required": ["path", "message"],
        "properties": {
            "path": {"type": "string", "examples": ["$.payload.amount"]},
            "message": {"type": "string"},
        },
    },
    "EventInput": {
        "type": "object",
        "required": ["trigger", "user_id"],
        "additionalProperties": False,
        "properties": {
            "trigger": _TRIGGER_ID,
            "user_id": {
                "anyOf": [_IDENTIFIER, {"type": "integer"}],
                "description": "your end user's id: a string (up to 256 characters by "
                "default, no control characters) or an integer",
            },
            "payload": {"type": ["object", "null"], "default": {}},
            "timestamp": {"anyOf": [_EVENT_TIME, {"type": "null"}]},
            "idempotency_key": {
                "anyOf": [_IDENTIFIER, {"type": "integer"}, {"type": "null"}],
                "description": "a repeat with the same key and body answers the original",
            },
        },
    },
    "EventFields": {
        "type": "object",
        "description": "An event's other fields, when trigger and user are in the path.",
        "additionalProperties": False,
        "properties": {
            "payload": {"type": ["object", "null"], "default": {}},
            "timestamp": {"anyOf": [_EVENT_TIME, {"type": "null"}]},
            "idempotency_key": {"anyOf": [_IDENTIFIER, {"type": "integer"}, {"type": "null"}]},
        },
    },
    "EventData": {
        "type": "object",
        "description": "The event's payload, when trigger and user are in the path.",
        "additionalProperties": True,
    },
    "Event": {
        "type": "object",
        "required": [
            "id",
            "trigger",
            "user_id",
            "payload",
            "timestamp",
            "received_at",
            "source",
            "environment",
        ],
        "properties": {
            "id": {"type": "string", "examples": ["evt_01JD6Z7X5K9V2M3N4P5Q6R7S8T"]},
            "trigger": {"type": "string"},
            "user_id": {"type": "string"},
            "payload": {"type": "object"},
            "timestamp": _TIME,
            "received_at": _TIME,
            "idempotency_key": {"type": ["string", "null"]},
            "source": {"type": "string"},
            "environment": {"type": "string", "enum": ["live", "test"]},
            "expires_at": _NULLABLE_TIME,
        },
    },
    "EventPage": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": ref("Event")},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
    "BatchInput": {
        "type": "object",
        "required": ["events"],
        "additionalProperties": False,
        "properties": {
            "events": {
                "type": "array",
                "items": ref("EventInput"),
                "maxItems": 1000,
                "description": "at most 1,000 events by default (EVENTYARD_MAX_BATCH_EVENTS)",
            }
        },
    },
    "BatchResult": {
        "type": "object",
        "required": ["results", "accepted", "duplicates", "rejected"],
        "properties": {
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["index", "status"],
                    "properties": {
                        "index": {"type": "integer"},
                        "status": {"type": "string", "enum": ["accepted", "duplicate", "rejected"]},
                        "id": {"type": "string"},
                        "code": {"type": "string"},
                        "errors": {"type": "array", "items": ref("FieldError")},
                    },
                },
            },
            "accepted": {"type": "integer"},
            "duplicates": {"type": "integer"},
            "rejected": {"type": "integer"},
        },
    },
    "Attribute": {
        "type": "object",
        "required": ["name", "type"],
        "properties": {
            "name": {"type": "string"},
            "type": {
                "type": "string",
                "enum": [
                    "string",
                    "number",
                    "integer",
                    "boolean",
                    "enum",
                    "datetime",
                    "email",
                    "array",
                    "object",
                ],
            },
            "required": {"type": "boolean", "default": False},
            "values": {"type": "array", "description": "the allowed values of an enum"},
            "description": {"type": "string"},
        },
    },
    "TriggerInput": {
        "type": "object",
        "required": ["name"],
        "properties": {
            "id": {"type": "string", "description": "a slug; made from the name when absent"},
            "name": {"type": "string", "minLength": 1},
            "description": {"type": "string"},
            "type": {"type": "string", "enum": ["custom"]},
            "platform": {"type": ["string", "null"]},
            "label": {"type": ["string", "null"]},
            "attributes": {"type": "array", "items": ref("Attribute")},
            "additional_attributes": {"type": "boolean", "default": True},
            "json_schema": {"type": "object", "description": "a JSON Schema (2020-12)"},
        },
    },
    "TriggerUpdate": {
        "type": "object",
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "description": {"type": "string"},
            "platform": {"type": ["string", "null"]},
            "label": {"type": ["string", "null"]},
            "attributes": {"type": ["array", "null"], "items": ref("Attribute")},
            "additional_attributes": {"type": "boolean"},
            "json_schema": {"type": ["object", "null"]},
            "archived": {"type": "boolean"},
        },
    },
    "Trigger": {
        "type": "object",
        "required": ["id", "uuid", "name", "type", "archived", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "uuid": {"type": "string", "format": "uuid"},
            "name": {"type": "string"},
            "description": {"type": "string"},
            "type": {"type": "string"},
            "platform": {"type": ["string", "null"]},
            "label": {"type": ["string", "null"]},
            "attributes": {"type": ["array", "null"], "items": ref("Attribute")},
            "additional_attributes": {"type": "boolean"},
            "json_schema": {"type": ["object", "null"]},
            "archived": {"type": "boolean"},
            "archived_at": _NULLABLE_TIME,
            "created_at": _TIME,
            "updated_at": _TIME,
            "cdp_webhook_path": {
                "type": "string",
                "description": "the trigger's inbound CDP webhook, `/cdp/webhooks/<32 hex>`; "
                "POST to it with HTTP Basic auth (see docs/adapters/cdp.md)",
                "examples": ["/cdp/webhooks/d61233f75191444e73a577bbbd4c26eb"],
            },
        },
    },
    "TriggerList": {
        "type": "object",
        "properties": {"data": {"type": "array", "items": ref("Trigger")}},
    },
    "KeyInput": {
        "type": "object",
        "required": ["scopes"],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "scopes": {
                "type": "array",
                "minItems": 1,
                "items": {"type": "string", "enum": ["write", "read", "delete", "admin"]},
            },
            "environment": {
                "type": "string",
                "enum": ["live", "test"],
                "description": "defaults to the calling key's environment",
            },
        },
    },
    "Key": {
        "type": "object",
        "required": ["id", "name", "prefix", "environment", "scopes", "created_at"],
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "prefix": {"type": "string", "examples": ["sk_live_AbCd"]},
            "environment": {"type": "string", "enum": ["live", "test"]},
            "scopes": {"type": "array", "items": {"type": "string"}},
            "created_at": _TIME,
            "last_used_at": _NULLABLE_TIME,
            "revoked": {"type": "boolean"},
            "revoked_at": _NULLABLE_TIME,
        },
    },
    "KeyCreated": {
        "allOf": [
            ref("Key"),
            {
                "type": "object",
                "required": ["key"],
                "properties": {
                    "key": {"type": "string", "description": "the secret, shown this once"}
                },
            },
        ]
    },
    "KeyList": {"type": "object", "properties": {"data": {"type": "array", "items": ref("Key")}}},
    "Project": {
        "type": "object",
        "properties": {
            "id": {"type": "string"},
            "name": {"type": "string"},
            "mode": {"type": "string", "enum": ["open", "strict"]},
            "retention_days": _RETENTION_DAYS,
            "created_at": _TIME,
        },
    },
    "ProjectUpdate": {
        "type": "object",
        "minProperties": 1,
        "additionalProperties": False,
        "properties": {
            "mode": {"type": "string", "enum": ["open", "strict"]},
            "retention_days": _RETENTION_DAYS,
        },
    },
    "Erasure": {
        "type": "object",
        "description": "The receipt of an erasure: every event of the user stored before "
        "`started_at` is gone, with everything that hung off it.",
        "required": ["id", "user_id", "deleted", "started_at", "erased_at"],
        "properties": {
            "id": {"type": "string", "examples": ["ers_01JD2T6V9Q4XK3M8N5P7R2S4W6"]},
            "user_id": {"type": "string"},
            "deleted": ref("ErasureCounts"),
            "started_at": _TIME,
            "erased_at": {**_TIME, "description": "when the erasure finished"},
        },
    },
    "ErasureCounts": {
        "type": "object",
        "description": "Rows removed, by kind.",
        "required": list(_ERASED_KINDS),
        "properties": {kind: {"type": "integer", "minimum": 0} for kind in _ERASED_KINDS},
    },
    "ErasureRecord": {
        "type": "object",
        "description": "What eventyard keeps of an erasure: no user id, nothing of the "
        "erased data.",
        "required": ["id", "environment", "requested_by", "deleted", "started_at", "erased_at"],
        "properties": {
            "id": {"type": "string"},
            "environment": {"type": "string", "enum": ["live", "test"]},
            "requested_by": {"type": "string", "description": "the id of the API key"},
            "deleted": ref("ErasureCounts"),
            "started_at": _TIME,
            "erased_at": {
                **_NULLABLE_TIME,
                "description": "when it finished; null if it is running or stopped half-way",
            },
        },
    },
    "ErasurePage": {
        "type": "object",
        "required": ["data", "next_cursor"],
        "properties": {
            "data": {"type": "array", "items": ref("ErasureRecord")},
            "next_cursor": {"type": ["string", "null"]},
        },
    },
}

_HISTORY = {
    "type": "object",
    "properties": {
        "exit_state": {"type": ["string", "null"]},
        "enter_state": {"type": "string"},
        "at": _TIME,
        "by": {"type": "string", "description": "worker, dashboard, or the key id that acted"},
    },
}
_ATTEMPT = {
    "type": "object",
    "properties": {
        "attempt": {"type": "integer"},
        "at": _TIME,
        "status_code": {"type": ["integer", "null"]},
        "duration_ms": {"type": "integer"},
        "response_excerpt": {"type": ["string", "null"]},
        "error": {"type": ["string", "null"]},
    },
}
_CONSUMER_FIELDS: dict[str, Any] = {
    "name": {"type": "string"},
    "url": {"type": ["string", "null"], "description": "webhook consumers: where to POST"},
    "triggers": {
        "type": ["array", "null"],
        "items": {"type": "string"},
        "description": "trigger ids to receive; null for all",
    },
    "retry_schedule": {
        "type": ["array", "null"],
        "items": {"type": "integer"},
        "description": "seconds before each attempt; null for the default",
    },
    "timeout_seconds": {"type": ["number", "null"]},
    "state": {"type": "string", "enum": ["enabled", "paused", "disabled"]},
}
COMPONENTS.update(
    {
        "ConsumerInput": {
            "type": "object",
            "required": ["name", "kind"],
            "properties": {
                "kind": {"type": "string", "enum": ["webhook", "pull"]},
                **_CONSUMER_FIELDS,
            },
        },
        "ConsumerUpdate": {"type": "object", "properties": _CONSUMER_FIELDS},
        "Consumer": {
            "type": "object",
            "required": ["id", "name", "kind", "state"],
            "properties": {
                "id": {"type": "string"},
                "kind": {"type": "string", "enum": ["webhook", "pull"]},
                **_CONSUMER_FIELDS,
                "secret": {
                    "type": ["string", "null"],
                    "description": "whsec_…; only at creation and rotation",
                },
                "disabled_reason": {"type": ["string", "null"]},
                "failing_since": _NULLABLE_TIME,
                "environment": {"type": "string"},
                "created_at": _TIME,
                "updated_at": _TIME,
            },
        },
        "ConsumerList": {
            "type": "object",
            "properties": {"data": {"type": "array", "items": ref("Consumer")}},
        },
        "Transaction": {
            "type": "object",
            "required": ["id", "consumer_id", "event_id", "state", "history"],
            "properties": {
                "id": {"type": "string"},
                "consumer_id": {"type": "string"},
                "event_id": {"type": "string"},
                "state": {"type": "string"},
                "output": {},
                "attempts": {"type": "integer"},
                "next_attempt_at": _NULLABLE_TIME,
                "lease_expires_at": _NULLABLE_TIME,
                "created_at": _TIME,
                "updated_at": _TIME,
                "history": {"type": "array", "items": _HISTORY},
                "delivery_attempts": {"type": "array", "items": _ATTEMPT},
            },
        },
        "TransactionList": {
            "type": "object",
            "properties": {
                "data": {"type": "array", "items": ref("Transaction")},
                "next_after": {"type": ["string", "null"]},
            },
        },
        "TransactionReport": {
            "type": "object",
            "required": ["state"],
            "additionalProperties": False,
            "properties": {
                "state": {
                    "type": "string",
                    "pattern": "^[a-z][a-z0-9_-]{0,63}$",
                    "description": "processing, finished, failed, pending, or your own: "
                    "lowercase letters, digits, '_' and '-', up to 64 characters",
                },
                "output": {"description": "anything JSON, up to 32 KB by default"},
                "lease_seconds": {
                    "type": "integer",
                    "minimum": 1,
                    "maximum": MAX_LEASE_SECONDS,
                    "default": 60,
                },
            },
        },
        "ClaimResult": {
            "type": "object",
            "properties": {
                "data": {
                    "type": "array",
                    "items": {
                        "allOf": [
                            ref("Transaction"),
                            {"type": "object", "properties": {"event": ref("Event")}},
                        ]
                    },
                }
            },
        },
        "EventWithTransactions": {
            "allOf": [
                ref("Event"),
                {
                    "type": "object",
                    "properties": {
                        "transactions": {"type": "array", "items": ref("Transaction")},
                        "processing": {
                            "type": "object",
                            "properties": {
                                "has_transactions": {"type": "boolean"},
                                "total_transactions": {"type": "integer"},
                                "has_future_transactions": {"type": "boolean"},
                                "is_completed": {"type": "boolean"},
                            },
                        },
                    },
                },
            ]
        },
    }
)

# How each route's key is sent. Adapters add the header their seed document names.
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    "bearer": {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key: sk_live_... or sk_test_...",
    },
}


def api_key_header(name: str, description: str) -> str:
    """Register an API-key-in-a-header scheme; its name, for `RouteTable.add(security=...)`."""
    scheme = "header_" + name.lower()  # OpenAPI: a component name matches [a-zA-Z0-9._-]+
    SECURITY_SCHEMES[scheme] = {
        "type": "apiKey",
        "in": "header",
        "name": name,
        "description": description,
    }
    return scheme


# The refusals every authenticated route can give.
AUTH_ERRORS: dict[int, dict[str, Any]] = {
    401: problem("No key, an unknown key or a revoked key."),
    403: problem("The key lacks the scope this route needs."),
    429: problem(
        "The key's rate limit is spent (only when EVENTYARD_RATE_LIMIT_PER_SECOND is set); "
        "`Retry-After` says when to try again, `RateLimit` and `RateLimit-Policy` say more."
    ),
}
BODY_ERRORS: dict[int, dict[str, Any]] = {
    400: problem("The body is not JSON, or not valid UTF-8."),
    413: problem("The body is larger than the request limit (512 KB by default)."),
    422: problem("The body does not validate; `errors` says where."),
}

_COUNTS = {"type": "array", "items": {"type": "integer"}, "description": "events per bucket"}
_PER_MINUTE = {
    "type": "array",
    "items": {"type": "number"},
    "description": "each bucket's count divided by its minutes: for `day`, a 15-minute average",
}
COMPONENTS["Stats"] = {
    "type": "object",
    "description": "Events per trigger in clock-aligned buckets (by event time), and delivery "
    "health per consumer, for the key's project and environment.",
    "required": [
        "window",
        "bucket_seconds",
        "start",
        "end",
        "generated_at",
        "buckets",
        "triggers",
        "totals",
        "pending_backlog",
        "oldest_pending_at",
        "failing_deliveries",
        "consumers",
    ],
    "properties": {
        "window": {"type": "string", "enum": ["hour", "day"]},
        "bucket_seconds": {"type": "integer", "description": "60 for hour, 900 for day"},
        "start": {**_TIME, "description": "the first bucket's start"},
        "end": {**_TIME, "description": "the last bucket's end (it is still filling)"},
        "generated_at": _TIME,
        "buckets": {"type": "array", "items": _TIME, "description": "each bucket's start"},
        "triggers": {
            "type": "array",
            "description": "triggers with events in the window, busiest first",
            "items": {
                "type": "object",
                "required": ["trigger", "name", "counts", "events_per_minute", "total"],
                "properties": {
                    "trigger": {"type": "string", "description": "the trigger's id"},
                    "name": {"type": "string"},
                    "counts": _COUNTS,
                    "events_per_minute": _PER_MINUTE,
                    "total": {"type": "integer"},
                },
            },
        },
        "totals": {
            "type": "object",
            "required": ["counts", "events_per_minute", "total"],
            "properties": {
                "counts": _COUNTS,
                "events_per_minute": _PER_MINUTE,
                "total": {"type": "integer", "description": "events in the window"},
            },
        },
        "pending_backlog": {
            "type": "integer",
            "description": "transactions not yet finished or failed, all consumers, now",
        },
        "oldest_pending_at": _NULLABLE_TIME,
        "failing_deliveries": {
            "type": "integer",
            "description": "transactions that in the window had a webhook attempt not answered "
            "2xx (timeouts included) or were set to `failed`; each counted once",
        },
        "consumers": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "consumer": {"type": "string", "description": "the consumer's id"},
                    "name": {"type": "string"},
                    "kind": {"type": "string", "enum": ["webhook", "pull"]},
                    "state": {"type": "string", "enum": ["enabled", "paused", "disabled"]},
                    "pending": {"type": "integer"},
                    "oldest_pending_at": _NULLABLE_TIME,
                    "oldest_pending_age_seconds": {"type": ["integer", "null"]},
                    "attempts": {
                        "type": "integer",
                        "description": "webhook attempts in the window",
                    },
                    "failures": {
                        "type": "integer",
                        "description": "webhook attempts not answered 2xx; for a pull consumer, "
                        "transactions reported failed",
                    },
                    "failing_deliveries": {"type": "integer"},
                    "success_rate": {
                        "type": ["number", "null"],
                        "description": "0..1 over the window's attempts (pull: its finished "
                        "and failed transactions); null when there were none",
                    },
                },
            },
        },
    },
}

_LAG = {
    "type": ["object", "null"],
    "description": "p50 and p99 of the time from each transaction's creation (the event's "
    "commit) to the end of its first webhook attempt, over the first attempts of the last "
    "`lag_window_seconds` (the newest 5,000 at most) to transactions of events received in "
    "the last hour; null for a pull consumer, or when there were none",
    "required": ["attempts", "p50_ms", "p99_ms"],
    "properties": {
        "attempts": {"type": "integer", "description": "first attempts measured"},
        "p50_ms": {"type": "number"},
        "p99_ms": {"type": "number"},
    },
}
COMPONENTS["Status"] = {
    "type": "object",
    "description": "How far behind each consumer of the key's project and environment is, now.",
    "required": [
        "generated_at",
        "ingest_to_queryable_ms",
        "ingest_to_queryable",
        "lag_window_seconds",
        "worker_running",
        "consumers",
    ],
    "properties": {
        "generated_at": _TIME,
        "ingest_to_queryable_ms": {
            "type": "integer",
            "const": 0,
            "description": "always 0: a 2xx is sent after the commit, and reads see it at once",
        },
        "ingest_to_queryable": {"type": "string", "description": "why it is 0"},
        "lag_window_seconds": {"type": "integer"},
        "worker_running": {
            "type": "boolean",
            "description": "whether a delivery worker (in any process) runs on this database",
        },
        "consumers": {
            "type": "array",
            "description": "every consumer, by name",
            "items": {
                "type": "object",
                "required": [
                    "consumer",
                    "name",
                    "kind",
                    "state",
                    "pending",
                    "in_flight",
                    "oldest_pending",
                    "due_lag_ms",
                    "first_attempt_lag",
                ],
                "properties": {
                    "consumer": {"type": "string", "description": "the consumer's id"},
                    "name": {"type": "string"},
                    "kind": {"type": "string", "enum": ["webhook", "pull"]},
                    "state": {"type": "string", "enum": ["enabled", "paused", "disabled"]},
                    "pending": {
                        "type": "integer",
                        "description": "transactions not yet finished or failed",
                    },
                    "in_flight": {
                        "type": "integer",
                        "description": "of those, held now: a webhook attempt under lease, or "
                        "claimed by a pull consumer (`processing`)",
                    },
                    "oldest_pending": {
                        "type": ["object", "null"],
                        "required": ["transaction", "event", "state", "created_at", "age_ms"],
                        "properties": {
                            "transaction": {"type": "string"},
                            "event": {"type": "string"},
                            "state": {"type": "string"},
                            "created_at": _TIME,
                            "age_ms": {"type": "integer"},
                        },
                    },
                    "due_lag_ms": {
                        "type": "integer",
                        "description": "how long the longest-waiting delivery that is due and "
                        "not held has waited; 0 while the worker keeps up",
                    },
                    "first_attempt_lag": _LAG,
                },
            },
        },
    },
}
