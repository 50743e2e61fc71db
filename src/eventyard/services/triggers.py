"""Triggers: create, read, update, archive — and the compiled-schema cache ingest uses.

Ingest asks `resolve` for a trigger by id on every event, so the trigger and its compiled
payload validator are cached per process (see `ttlcache.py`); a schema is compiled once per
version of the trigger, not once per event.
"""

from __future__ import annotations

import secrets
import uuid as uuidlib
from dataclasses import dataclass, replace
from typing import Any

import orjson

from eventyard.clock import Clock
from eventyard.domain.models import Trigger
from eventyard.domain.schema import PayloadValidator, compile_schema, normalize_schema
from eventyard.domain.slugs import slugify, trigger_id_problem
from eventyard.domain.timeparse import type_name
from eventyard.errors import (
    FieldError,
    TriggerExists,
    TriggerNotFound,
    ValidationFailed,
    unknown_fields,
)
from eventyard.services.ttlcache import TtlCache
from eventyard.store import Store
from eventyard.store import triggers as trigger_sql

MAX_NAME = 200
MAX_DESCRIPTION = 2000
MAX_LABEL = 200
TRIGGER_TYPES = ("custom",)


@dataclass(frozen=True)
class ResolvedTrigger:
    trigger: Trigger
    validate: PayloadValidator


def _text(
    body: dict[str, Any], field: str, limit: int, errors: list[FieldError], *, nullable: bool
) -> Any:
    value = body.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        errors.append(FieldError(f"$.{field}", f"must be a string, got {type_name(value)}"))
        return None
    if len(value) > limit:
        errors.append(FieldError(f"$.{field}", f"is {len(value)} characters; the limit is {limit}"))
        return None
    return value if (value or not nullable) else None


_CREATE_FIELDS = {
    "id",
    "name",
    "description",
    "type",
    "platform",
    "label",
    "attributes",
    "json_schema",
    "additional_attributes",
}
_UPDATE_FIELDS = _CREATE_FIELDS - {"id", "type"} | {"archived"}


def new_trigger(project_id: str, trigger_id: str, now: int, name: str | None = None) -> Trigger:
    return Trigger(
        project_id=project_id,
        id=trigger_id,
        uuid=str(uuidlib.uuid4()),
        name=name or trigger_id,
        description="",
        type="custom",
        platform=None,
        label=None,
        schema=None,
        archived_at=None,
        created_at=now,
        updated_at=now,
        inbound_token=secrets.token_hex(16),
    )


class TriggerService:
    def __init__(self, store: Store, clock: Clock, cache_seconds: int) -> None:
        self._store = store
        self._clock = clock
        self._cache: TtlCache[tuple[str, str], ResolvedTrigger] = TtlCache(
            clock, cache_seconds * 1_000_000
        )
        self._compiled: dict[bytes, PayloadValidator] = {}

    # --- ingest's view ---------------------------------------------------------------------

    async def resolve(self, project_id: str, trigger_id: str) -> ResolvedTrigger | None:
        hit = self._cache.get((project_id, trigger_id))
        if hit is not None:
            return hit
        trigger = await self._store.read(
            lambda db: trigger_sql.get_trigger(db, project_id, trigger_id)
        )
        if trigger is None:
            return None
        return self._remember(trigger)

    def _remember(self, trigger: Trigger) -> ResolvedTrigger:
        # Keyed by the schema itself, so an edit recompiles and identical schemas share one.
        version = orjson.dumps(trigger.schema, option=orjson.OPT_SORT_KEYS)
        validate = self._compiled.get(version)
        if validate is None:
            if len(self._compiled) > 10_000:
                self._compiled.clear()
            validate = compile_schema(trigger.schema)
            self._compiled[version] = validate
        resolved = ResolvedTrigger(trigger, validate)
        self._cache.put((trigger.project_id, trigger.id), resolved)
        return resolved

    def forget(self, project_id: str, trigger_id: str) -> None:
        self._cache.discard((project_id, trigger_id))

    # --- management ------------------------------------------------------------------------

    async def create(self, project_id: str, body: dict[str, Any]) -> Trigger:
        errors = unknown_fields(body, _CREATE_FIELDS)
        name = _text(body, "name", MAX_NAME, errors, nullable=False)
        if name is None or not name.strip():
            if not any(e.path == "$.name" for e in errors):
                errors.append(FieldError("$.name", "is required: a descriptive name"))
            name = ""
        raw_id = body.get("id")
        if raw_id is None:
            trigger_id = slugify(name)
            if not trigger_id and name:
                errors.append(
                    FieldError("$.id", "could not be made from the name; give an id explicitly")
                )
        elif not isinstance(raw_id, str):
            errors.append(FieldError("$.id", f"must be a string, got {type_name(raw_id)}"))
            trigger_id = ""
        else:
            trigger_id = raw_id
            problem = trigger_id_problem(trigger_id)
            if problem:
                errors.append(FieldError("$.id", problem))
        trigger_type = body.get("type", "custom")
        if trigger_type not in TRIGGER_TYPES:
            errors.append(FieldError("$.type", f"must be 'custom', got {trigger_type!r}"))
        description = _text(body, "description", MAX_DESCRIPTION, errors, nullable=False) or ""
        platform = _text(body, "platform", MAX_LABEL, errors, nullable=True)
        label = _text(body, "label", MAX_LABEL, errors, nullable=True)
        schema, schema_errors = normalize_schema(
            body.get("attributes"), body.get("json_schema"), body.get("additional_attributes")
        )
        errors.extend(schema_errors)
        if errors:
            raise ValidationFailed("The trigger is not valid.", errors=errors)
        now = self._clock.now_us()
        trigger = replace(
            new_trigger(project_id, trigger_id, now, name.strip()),
            description=description,
            platform=platform,
            label=label,
            schema=schema,
        )
        created = await self._store.write(lambda db: trigger_sql.insert_trigger(db, trigger))
        if not created:
            raise TriggerExists(
                f"This project already has a trigger with the id {trigger_id!r}; "
                "choose another id.",
                errors=[FieldError("$.id", f"{trigger_id!r} is taken")],
            )
        self.forget(project_id, trigger_id)
        return trigger

    async def get(self, project_id: str, trigger_id: str) -> Trigger:
        trigger = await self._store.read(
            lambda db: trigger_sql.get_trigger(db, project_id, trigger_id)
        )
        if trigger is None:
            raise TriggerNotFound(f"No trigger {trigger_id!r} in this project.")
        return trigger

    async def get_by_uuid(self, project_id: str, uuid: str) -> Trigger:
        trigger = await self._store.read(
            lambda db: trigger_sql.get_trigger_by_uuid(db, project_id, uuid)
        )
        if trigger is None:
            raise TriggerNotFound(f"No trigger with the UUID {uuid!r} in this project.")
        return trigger

    async def get_by_inbound_token(self, project_id: str, token: str) -> Trigger | None:
        """The trigger whose inbound webhook (`/cdp/webhooks/{token}`) this is, if any."""
        return await self._store.read(
            lambda db: trigger_sql.get_trigger_by_inbound_token(db, project_id, token)
        )

    async def list(self, project_id: str, *, include_archived: bool = False) -> list[Trigger]:
        return await self._store.read(
            lambda db: trigger_sql.list_triggers(db, project_id, include_archived=include_archived)
        )

    async def update(self, project_id: str, trigger_id: str, body: dict[str, Any]) -> Trigger:
        current = await self.get(project_id, trigger_id)
        errors = unknown_fields(body, _UPDATE_FIELDS)
        changes: dict[str, Any] = {}
        if "name" in body:
            name = _text(body, "name", MAX_NAME, errors, nullable=False)
            if not name or not name.strip():
                errors.append(FieldError("$.name", "must not be empty"))
            else:
                changes["name"] = name.strip()
        if "description" in body:
            changes["description"] = (
                _text(body, "description", MAX_DESCRIPTION, errors, nullable=False) or ""
            )
        for field in ("platform", "label"):
            if field in body:
                changes[field] = _text(body, field, MAX_LABEL, errors, nullable=True)
        if {"attributes", "json_schema", "additional_attributes"} & set(body):
            attributes, additional = body.get("attributes"), body.get("additional_attributes")
            kept = current.schema or {}
            if "json_schema" not in body and "attributes" in kept:
                # A PATCH changes what it names: the attribute list and the
                # additional_attributes flag each keep their value unless given.
                if "attributes" not in body:
                    attributes = kept["attributes"]
                if "additional_attributes" not in body and attributes is not None:
                    additional = kept.get("additional_attributes")
            schema, schema_errors = normalize_schema(
                attributes, body.get("json_schema"), additional
            )
            errors.extend(schema_errors)
            changes["schema"] = schema
        if "archived" in body:
            archived = body["archived"]
            if not isinstance(archived, bool):
                errors.append(
                    FieldError("$.archived", f"must be a boolean, got {type_name(archived)}")
                )
            else:
                keep = current.archived_at or self._clock.now_us()
                changes["archived_at"] = keep if archived else None
        if errors:
            raise ValidationFailed("The trigger update is not valid.", errors=errors)
        updated = replace(current, **changes, updated_at=self._clock.now_us())
        await self._store.write(lambda db: trigger_sql.update_trigger(db, updated))
        self.forget(project_id, trigger_id)
        return updated

    async def archive(self, project_id: str, trigger_id: str) -> Trigger:
        return await self.update(project_id, trigger_id, {"archived": True})
