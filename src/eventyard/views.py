"""Domain objects as the JSON eventyard shows: API answers and webhook bodies alike."""

from __future__ import annotations

from typing import Any

from eventyard.clock import format_us
from eventyard.domain.models import (
    ApiKey,
    Attempt,
    Consumer,
    Event,
    HistoryEntry,
    Project,
    Transaction,
    Trigger,
)
from eventyard.services.transactions import summarize


def time_or_none(value: int | None) -> str | None:
    return format_us(value) if value is not None else None


def event_json(event: Event) -> dict[str, Any]:
    return {
        "id": event.id,
        "trigger": event.trigger,
        "user_id": event.user_id,
        "payload": event.payload,
        "timestamp": format_us(event.timestamp),
        "received_at": format_us(event.received_at),
        "idempotency_key": event.idempotency_key,
        "source": event.source,
        "environment": event.environment.value,
        "expires_at": time_or_none(event.expires_at),
    }


def trigger_json(trigger: Trigger) -> dict[str, Any]:
    schema = trigger.schema or {}
    return {
        "id": trigger.id,
        "uuid": trigger.uuid,
        "name": trigger.name,
        "description": trigger.description,
        "type": trigger.type,
        "platform": trigger.platform,
        "label": trigger.label,
        "attributes": schema.get("attributes"),
        "additional_attributes": schema.get("additional_attributes", True),
        "json_schema": schema.get("json_schema"),
        "archived": trigger.archived_at is not None,
        "archived_at": time_or_none(trigger.archived_at),
        "created_at": format_us(trigger.created_at),
        "updated_at": format_us(trigger.updated_at),
        "cdp_webhook_path": f"/cdp/webhooks/{trigger.inbound_token}",
    }


def key_json(key: ApiKey) -> dict[str, Any]:
    return {
        "id": key.id,
        "name": key.name,
        "prefix": key.prefix,
        "environment": key.environment.value,
        "scopes": sorted(s.value for s in key.scopes),
        "created_at": format_us(key.created_at),
        "last_used_at": time_or_none(key.last_used_at),
        "revoked": key.revoked_at is not None,
        "revoked_at": time_or_none(key.revoked_at),
    }


def project_json(project: Project) -> dict[str, Any]:
    return {
        "id": project.id,
        "name": project.name,
        "mode": project.mode.value,
        "retention_days": project.retention_days,
        "created_at": format_us(project.created_at),
    }


def consumer_ref(consumer: Consumer) -> dict[str, Any]:
    """Which consumer a figure is about, in `GET /v1/stats` and `GET /v1/status`."""
    return {
        "consumer": consumer.id,
        "name": consumer.name,
        "kind": consumer.kind.value,
        "state": consumer.state.value,
    }


def consumer_json(consumer: Consumer, *, with_secret: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": consumer.id,
        "name": consumer.name,
        "kind": consumer.kind.value,
        "url": consumer.url,
        "triggers": list(consumer.triggers) if consumer.triggers is not None else None,
        "retry_schedule": (
            list(consumer.retry_schedule) if consumer.retry_schedule is not None else None
        ),
        "timeout_seconds": consumer.timeout_ms / 1000 if consumer.timeout_ms is not None else None,
        "state": consumer.state.value,
        "disabled_reason": consumer.disabled_reason.value if consumer.disabled_reason else None,
        "failing_since": time_or_none(consumer.failing_since),
        "environment": consumer.environment.value,
        "created_at": format_us(consumer.created_at),
        "updated_at": format_us(consumer.updated_at),
    }
    if with_secret:
        out["secret"] = consumer.secret
        out["previous_secret_expires_at"] = time_or_none(consumer.previous_secret_expires_at)
    return out


def history_json(entry: HistoryEntry) -> dict[str, Any]:
    return {
        "exit_state": entry.exit_state,
        "enter_state": entry.enter_state,
        "at": format_us(entry.at),
        "by": entry.by,
    }


def attempt_json(attempt: Attempt) -> dict[str, Any]:
    return {
        "attempt": attempt.attempt,
        "at": format_us(attempt.at),
        "status_code": attempt.status_code,
        "duration_ms": attempt.duration_ms,
        "response_excerpt": attempt.response_excerpt,
        "error": attempt.error,
    }


def transaction_json(txn: Transaction) -> dict[str, Any]:
    return {
        "id": txn.id,
        "consumer_id": txn.consumer_id,
        "event_id": txn.event_id,
        "state": txn.state,
        "output": txn.output,
        "attempts": txn.attempts,
        "next_attempt_at": time_or_none(txn.next_attempt_at) if txn.state == "pending" else None,
        "lease_expires_at": time_or_none(txn.lease_expires_at),
        "created_at": format_us(txn.created_at),
        "updated_at": format_us(txn.updated_at),
        "history": [history_json(h) for h in txn.history],
        "delivery_attempts": [attempt_json(a) for a in txn.delivery_attempts],
    }


def event_detail_json(event: Event, transactions: list[Transaction]) -> dict[str, Any]:
    """An event as `GET /v1/events/{id}` shows it: with its transactions and their summary."""
    summary = summarize(transactions)
    return {
        **event_json(event),
        "transactions": [transaction_json(t) for t in transactions],
        "processing": {
            "has_transactions": summary.has_transactions,
            "total_transactions": summary.total,
            "has_future_transactions": summary.has_future_transactions,
            "is_completed": summary.is_completed,
        },
    }
