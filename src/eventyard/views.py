"""Domain objects as the JSON the native API returns."""

from __future__ import annotations

from typing import Any

from eventyard.clock import format_us
from eventyard.domain.models import ApiKey, Event, Project, Trigger


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
        "created_at": format_us(project.created_at),
    }
