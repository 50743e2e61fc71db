"""Ingest: from a parsed request to events committed on disk.

Every door in — the native API, the CLI, the adapters — ends here. `ingest` takes raw event
items (dicts in the native shape), checks each one (fields, limits, trigger, schema), and
stores the valid ones in one group-committed write. It answers per item, in order: accepted
(with the new event), duplicate (with the original event) or rejected (with field errors),
so a batch stores its valid items even when others fail. Nothing is acknowledged before the
commit that holds it.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from eventyard.clock import Clock
from eventyard.delivery.notify import Notifier
from eventyard.domain.models import EventDraft, Principal, ProjectMode, Trigger
from eventyard.domain.slugs import trigger_id_problem
from eventyard.domain.timeparse import TimeParseError, parse_event_time, type_name
from eventyard.errors import (
    EventyardError,
    FieldError,
    IdempotencyConflict,
    PayloadTooLarge,
    TriggerArchived,
    TriggerNotFound,
    ValidationFailed,
    unknown_fields,
)
from eventyard.metrics import IngestMetrics
from eventyard.services.triggers import TriggerService, new_trigger
from eventyard.settings import Settings
from eventyard.store import Store
from eventyard.store.event_writes import (
    EventWrite,
    NewEvent,
    Outcome,
    Stored,
    store_event_writes,
)

EVENT_FIELDS = {"trigger", "user_id", "payload", "timestamp", "idempotency_key"}
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(slots=True)
class ItemResult:
    """The fate of one item: exactly one of `stored` or `errors` is set."""

    stored: Stored | None = None
    errors: list[FieldError] = field(default_factory=list)
    code: str = "validation_failed"  # for rejected items: what kind of problem
    status: int = 422

    def reject(self, code: str, status: int, *errors: FieldError) -> None:
        self.errors, self.code, self.status = list(errors), code, status


@dataclass(slots=True)
class _Checked:
    index: int
    draft: EventDraft
    payload: dict[str, Any] | None  # parsed already, when the item came in raw


def _identifier(
    value: Any, path: str, max_length: int, errors: list[FieldError], *, what: str
) -> str | None:
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        errors.append(FieldError(path, f"must be a string, got {type_name(value)}"))
        return None
    if not value:
        errors.append(FieldError(path, f"must not be empty; give the {what}"))
        return None
    if len(value) > max_length:
        errors.append(
            FieldError(path, f"is {len(value)} characters long; the limit is {max_length}")
        )
        return None
    if _CONTROL.search(value):
        errors.append(FieldError(path, "must not contain control characters"))
        return None
    return value


def body_hash(trigger: str, user_id: str, payload: Any, timestamp: Any) -> str:
    """What makes two requests 'the same' for an idempotency key."""
    canonical = orjson.dumps([trigger, user_id, payload, timestamp], option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()


class IngestService:
    def __init__(
        self,
        store: Store,
        settings: Settings,
        clock: Clock,
        triggers: TriggerService,
        notifier: Notifier,
        committed: Notifier | None = None,
    ) -> None:
        self._notifier = notifier
        self._committed = committed  # wakes the live feeds (services/live.py) of this process
        self._store = store
        self._settings = settings
        self._clock = clock
        self._triggers = triggers
        self._window_us = settings.idempotency_window_seconds * 1_000_000
        self.metrics = IngestMetrics()  # events by outcome, batch sizes: for /metrics
        self._first_delay_us = settings.default_retry_schedule[0] * 1_000_000

    def check_item(
        self, item: Any, base: str, source: str, header_key: str | None = None
    ) -> tuple[EventDraft | None, list[FieldError], str]:
        """Check one item's own fields (not its trigger's schema); (draft, errors, code)."""
        s = self._settings
        if not isinstance(item, dict):
            return (
                None,
                [FieldError(base, f"must be an object, got {type_name(item)}")],
                ("validation_failed"),
            )
        errors = unknown_fields(item, EVENT_FIELDS, base)
        trigger = item.get("trigger")
        if trigger is None:
            errors.append(FieldError(f"{base}.trigger", "is required: the trigger's id"))
        elif not isinstance(trigger, str):
            errors.append(
                FieldError(f"{base}.trigger", f"must be a string, got {type_name(trigger)}")
            )
        else:
            problem = trigger_id_problem(trigger)
            if problem:
                errors.append(FieldError(f"{base}.trigger", problem))
        user_raw = item.get("user_id")
        if user_raw is None:
            errors.append(FieldError(f"{base}.user_id", "is required: the id of your end user"))
            user_id = None
        else:
            user_id = _identifier(
                user_raw, f"{base}.user_id", s.max_id_length, errors, what="user id"
            )
        payload = item.get("payload", {})
        if payload is None:
            payload = {}
        if not isinstance(payload, dict):
            errors.append(
                FieldError(f"{base}.payload", f"must be an object, got {type_name(payload)}")
            )
        raw_time = item.get("timestamp")
        timestamp = None
        if raw_time is not None:
            try:
                timestamp = parse_event_time(raw_time)
            except TimeParseError as exc:
                errors.append(FieldError(f"{base}.timestamp", str(exc)))
        key = item.get("idempotency_key")
        if key is not None:
            key = _identifier(
                key, f"{base}.idempotency_key", s.max_id_length, errors, what="idempotency key"
            )
            if key is not None and header_key is not None and key != header_key:
                errors.append(
                    FieldError(
                        f"{base}.idempotency_key",
                        "differs from the Idempotency-Key header; send one or make them equal",
                    )
                )
        elif header_key is not None:
            key = _identifier(
                header_key,
                "Idempotency-Key header",
                s.max_id_length,
                errors,
                what="idempotency key",
            )
        if errors:
            return None, errors, "validation_failed"
        assert isinstance(trigger, str)
        assert user_id is not None
        assert isinstance(payload, dict)
        payload_json = orjson.dumps(payload)
        if len(payload_json) > s.max_event_bytes:
            return (
                None,
                [
                    FieldError(
                        f"{base}.payload",
                        f"is {len(payload_json):,} bytes as JSON; the limit is "
                        f"{s.max_event_bytes:,} bytes an event",
                    )
                ],
                "payload_too_large",
            )
        draft = EventDraft(
            trigger=trigger,
            user_id=user_id,
            payload_json=payload_json,
            timestamp=timestamp,
            idempotency_key=key,
            # The parsed time, so `…Z` and `…+00:00` for one instant are the same body.
            body_hash=body_hash(trigger, user_id, payload, timestamp) if key else None,
            source=source,
            untimed_hash=(
                body_hash(trigger, user_id, payload, None)
                if key and timestamp is not None
                else None
            ),
        )
        return draft, [], ""

    async def ingest(
        self,
        principal: Principal,
        items: Sequence[Any],
        *,
        source: str,
        base: str = "$",
        header_key: str | None = None,
        drafts: Sequence[EventDraft | None] | None = None,
    ) -> list[ItemResult]:
        """Check and store `items`; one result per item, in order.

        `base` is the JSON path of the items' container: `$` for a single event, `$.events`
        for a batch (paths become `$.events[3].payload.amount`). Adapters that build their
        drafts themselves pass `drafts` instead of raw items.
        """
        single = base == "$"
        results = [ItemResult() for _ in items]
        checked: list[_Checked] = []
        for index, item in enumerate(items):
            path = base if single else f"{base}[{index}]"
            payload = None
            if drafts is not None and drafts[index] is not None:
                draft = drafts[index]
                assert draft is not None
            else:
                draft, errors, code = self.check_item(item, path, source, header_key)
                if draft is None:
                    status = 413 if code == "payload_too_large" else 422
                    results[index].reject(code, status, *errors)
                    continue
                payload = item.get("payload") or {}
            checked.append(_Checked(index, draft, payload))
        new_triggers = await self._check_triggers(principal, checked, results, base, single)
        to_store = [c for c in checked if not results[c.index].errors]
        if not to_store:
            self._observe(source, results, single)
            return results
        now = self._clock.now_us()
        new_events = [NewEvent(c.draft, now, c.payload) for c in to_store]
        project_id = principal.project_id
        written = await self._store.write_merged(
            store_event_writes,
            EventWrite(
                project_id,
                principal.environment,
                new_events,
                new_triggers,
                self._window_us,
                principal.key.id,
                self._first_delay_us,
            ),
            weight=len(new_events),
        )
        if written.transactions_created:
            self._notifier.pulse()
        if self._committed is not None:
            self._committed.pulse()
        stored = written.results
        for trigger in new_triggers:
            self._triggers.forget(project_id, trigger.id)
        for c, outcome in zip(to_store, stored, strict=True):
            if outcome.outcome is Outcome.CONFLICT:
                path = base if single else f"{base}[{c.index}]"
                results[c.index].reject(
                    "idempotency_key_reused",
                    409,
                    FieldError(
                        f"{path}.idempotency_key",
                        f"was already used for event {outcome.original_id} with a different "
                        "body; use a new key for a different event",
                    ),
                )
            results[c.index].stored = outcome
        self._observe(source, results, single)
        return results

    def _observe(self, source: str, results: list[ItemResult], single: bool) -> None:
        """Count each item's outcome, and a batch's size, for /metrics."""
        outcomes = []
        for r in results:
            if r.errors:
                outcomes.append("rejected")
            elif r.stored is not None and r.stored.outcome is Outcome.DUPLICATE:
                outcomes.append("duplicate")
            else:
                outcomes.append("accepted")
        self.metrics.observe(source, outcomes, None if single else len(results))

    async def _check_triggers(
        self,
        principal: Principal,
        checked: list[_Checked],
        results: list[ItemResult],
        base: str,
        single: bool,
    ) -> list[Trigger]:
        """Resolve each item's trigger and validate its payload; return triggers to create."""
        project = principal.project
        new_triggers: dict[str, Trigger] = {}
        for c in checked:
            path = base if single else f"{base}[{c.index}]"
            resolved = await self._triggers.resolve(project.id, c.draft.trigger)
            if resolved is None:
                if project.mode is ProjectMode.STRICT:
                    results[c.index].reject(
                        "trigger_not_found",
                        404,
                        FieldError(
                            f"{path}.trigger",
                            f"no trigger {c.draft.trigger!r} exists in this project, which is "
                            "strict: create the trigger first",
                        ),
                    )
                elif c.draft.trigger not in new_triggers:
                    new_triggers[c.draft.trigger] = new_trigger(
                        project.id, c.draft.trigger, self._clock.now_us()
                    )
                continue
            if resolved.trigger.archived_at is not None:
                results[c.index].reject(
                    "trigger_archived",
                    409,
                    FieldError(
                        f"{path}.trigger",
                        f"the trigger {c.draft.trigger!r} is archived; restore it to accept "
                        'events again (PATCH /v1/triggers/{id} {"archived": false}, or '
                        "`eventyard triggers restore`)",
                    ),
                )
                continue
            payload = c.payload if c.payload is not None else orjson.loads(c.draft.payload_json)
            problems = resolved.validate(payload, f"{path}.payload")
            if problems:
                results[c.index].reject("validation_failed", 422, *problems)
        return list(new_triggers.values())


_REJECTIONS: dict[str, tuple[type[EventyardError], str]] = {
    "payload_too_large": (PayloadTooLarge, "The event is larger than the limit."),
    "trigger_not_found": (TriggerNotFound, "The trigger does not exist in this strict project."),
    "trigger_archived": (TriggerArchived, "The trigger is archived."),
    "idempotency_key_reused": (
        IdempotencyConflict,
        "The idempotency key was already used with a different body.",
    ),
}


def single_result_error(result: ItemResult) -> EventyardError:
    """The error a single-event request answers with, for a rejected item."""
    cls, message = _REJECTIONS.get(result.code, (ValidationFailed, "The event is not valid."))
    extra: dict[str, Any] = {}
    if result.stored is not None and result.stored.original_id:
        extra["original_event_id"] = result.stored.original_id
    first = result.errors[0]
    return cls(f"{message} {first.path} {first.message}", errors=result.errors, extra=extra)
