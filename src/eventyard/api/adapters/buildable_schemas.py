"""The `/buildable` bodies and answers as JSON Schemas, for `/openapi.json`.

Registered into the shared components under `Buildable…` names when the adapter loads.
"""

from __future__ import annotations

from typing import Any

from eventyard.api.schemas import COMPONENTS, ref

_TEXT = {"type": "string"}
_MS = {"type": "integer", "description": "epoch milliseconds"}
_MS_OR_NULL = {"type": ["integer", "null"], "description": "epoch milliseconds, or null"}
_HISTORY = {
    "type": "array",
    "items": {
        "type": "object",
        "properties": {
            "enterState": _TEXT,
            "exitState": {**_TEXT, "description": "does-not-exist for the first step"},
            "timestamp": _MS,
            "updatedBy": {**_TEXT, "description": "the id of the key that acted, or worker"},
        },
    },
}


def _object(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": properties,
    }
    if required:
        out["required"] = required
    return out


SCHEMAS: dict[str, dict[str, Any]] = {
    "BuildableError": {
        "type": "object",
        "required": ["status", "message"],
        "properties": {
            "status": {"const": "error"},
            "message": _TEXT,
            "errors": {"type": "array", "items": ref("FieldError")},
        },
    },
    "BuildableEmit": _object(
        {
            "event": {**_TEXT, "description": "the event name (its trigger, slugged)"},
            "payload": {"type": ["object", "null"]},
            "ttl": {"type": "integer", "minimum": 1, "description": "milliseconds to live"},
        },
        ["event"],
    ),
    "BuildableEmitted": {
        "type": "object",
        "properties": {
            "status": {"const": "success"},
            "key": {**_TEXT, "pattern": "^[0-9a-f]{32}$"},
        },
    },
    "BuildableQuery": _object(
        {
            "eventName": _TEXT,
            "txKey": _TEXT,
            "since": {"type": ["integer", "string", "null"]},
            "platform": _TEXT,
            "label": _TEXT,
            "txState": {**_TEXT, "examples": ["does-not-exist", "processing", "finished"]},
            "page": {"type": "integer", "minimum": 1, "default": 1},
            "pageSize": {"type": "integer", "minimum": 1, "maximum": 100, "default": 10},
        }
    ),
    "BuildableEvent": {
        "type": "object",
        "properties": {
            "_id": _TEXT,
            "key": _TEXT,
            "eventName": _TEXT,
            "environment": _TEXT,
            "payload": {"type": "object"},
            "query": {"type": "object"},
            "headers": {"type": "object"},
            "createdAt": _MS,
            "state": _TEXT,
            "history": _HISTORY,
            "ttl": _MS_OR_NULL,
            "v": {"type": "integer"},
            "ownership": {
                "type": "object",
                "properties": {"buildableId": _TEXT, "userId": _TEXT, "clientId": _TEXT},
            },
            "processing": {
                "type": "object",
                "properties": {
                    "hasTransactions": {"type": "boolean"},
                    "totalTransactions": {"type": "integer"},
                    "hasFutureTransactions": {"type": "boolean"},
                    "isCompleted": {"type": "boolean"},
                },
            },
        },
    },
    "BuildablePage": {
        "type": "object",
        "properties": {
            "rows": {"type": "array", "items": ref("BuildableEvent")},
            "total": {"type": "integer"},
            "page": {"type": "integer"},
            "pageSize": {"type": "integer"},
            "totalPages": {"type": "integer"},
        },
    },
    "BuildableUpdate": _object(
        {"key": _TEXT, "eventName": _TEXT, "txKey": _TEXT, "txState": _TEXT},
        ["key", "txKey", "txState"],
    ),
    "BuildableInit": _object({"key": _TEXT, "txKey": _TEXT}, ["key", "txKey"]),
    "BuildableTransact": _object(
        {"key": _TEXT, "txKey": _TEXT, "output": {}, "state": {**_TEXT, "default": "finished"}},
        ["key", "txKey"],
    ),
    "BuildableTransaction": {
        "type": "object",
        "properties": {
            "_id": _TEXT,
            "key": _TEXT,
            "txn": _TEXT,
            "event": {"type": "object", "properties": {"_id": _TEXT, "eventName": _TEXT}},
            "createdAt": _MS,
            "ttl": _MS_OR_NULL,
            "state": _TEXT,
            "history": _HISTORY,
            "startedAt": _MS_OR_NULL,
            "txKey": _TEXT,
            "endedAt": _MS_OR_NULL,
        },
    },
    "BuildableFullName": _object({"eventName": _TEXT, "platform": _TEXT, "label": _TEXT}),
    "BuildableFullNameAnswer": {"type": "object", "properties": {"fullName": _TEXT}},
}
COMPONENTS.update(SCHEMAS)


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": ref("BuildableError")}},
    }


ERRORS: dict[int, dict[str, Any]] = {
    400: _error("The body is not a JSON object, or a field is missing or of the wrong type."),
    401: _error("No key, an unknown key or a revoked key in X-Buildable-Secret."),
    403: _error("The key lacks the scope this route needs."),
    404: _error("No event with this key in the key's environment, or no such trigger."),
    409: _error("The transaction is in a state that does not allow this step."),
    413: _error("The body or the event is larger than the limit."),
    422: _error("The payload does not validate against its trigger's schema."),
}
