"""Consumers: create, change, pause, rotate secrets, replay — and pull claims.

A consumer belongs to one project and environment, like the key that made it. Webhook
consumers get a `whsec_` secret at creation (returned then, and at each rotation); a rotated
secret keeps signing alongside the new one for an overlap period, so receivers can switch
without dropping a delivery.
"""

from __future__ import annotations

import functools
from dataclasses import replace
from typing import Any

from eventyard import ids
from eventyard.clock import Clock
from eventyard.delivery.notify import Notifier
from eventyard.delivery.outbound import check_webhook_url, destination_problem
from eventyard.domain import signing
from eventyard.domain.models import (
    Consumer,
    ConsumerKind,
    ConsumerState,
    DisabledReason,
    Event,
    Principal,
    Transaction,
)
from eventyard.domain.retry import schedule_problem
from eventyard.domain.slugs import trigger_id_problem
from eventyard.domain.timeparse import type_name
from eventyard.errors import Conflict, FieldError, NotFound, ValidationFailed, unknown_fields
from eventyard.settings import Settings
from eventyard.store import Store
from eventyard.store import consumers as consumer_sql
from eventyard.store import transactions as txn_sql
from eventyard.store.consumer_health import ConsumerHealth, consumer_health

MAX_NAME = 200
MAX_TIMEOUT_SECONDS = 120
MAX_CLAIM = 1000
MAX_LEASE_SECONDS = 3600
MAX_WAIT_SECONDS = 30
MAX_TRIGGERS = 500

_CREATE_FIELDS = {"name", "kind", "url", "triggers", "retry_schedule", "timeout_seconds", "state"}
_UPDATE_FIELDS = _CREATE_FIELDS - {"kind"}


class ConsumerNotFound(NotFound):
    code = "consumer_not_found"


class ConsumerService:
    def __init__(self, store: Store, settings: Settings, clock: Clock, notifier: Notifier) -> None:
        self._store = store
        self._settings = settings
        self._clock = clock
        self._notifier = notifier

    # --- reading ---------------------------------------------------------------------------

    async def get(self, principal: Principal, consumer_id: str) -> Consumer:
        project_id, env = principal.project_id, principal.environment
        consumer = await self._store.read(
            lambda db: consumer_sql.get_consumer(db, project_id, env, consumer_id)
        )
        if consumer is None:
            raise ConsumerNotFound(f"No consumer {consumer_id!r} in this project and environment.")
        return consumer

    async def list_consumers(self, principal: Principal) -> list[Consumer]:
        project_id, env = principal.project_id, principal.environment
        return await self._store.read(lambda db: consumer_sql.list_consumers(db, project_id, env))

    async def health(self, principal: Principal, since: int) -> dict[str, ConsumerHealth]:
        """Per consumer id: backlog now, and delivery outcomes since `since`."""
        project_id, env = principal.project_id, principal.environment
        return await self._store.read(lambda db: consumer_health(db, project_id, env, since))

    async def get_by_name(self, principal: Principal, name: str) -> Consumer | None:
        project_id, env = principal.project_id, principal.environment
        return await self._store.read(
            lambda db: consumer_sql.get_consumer_by_name(db, project_id, env, name)
        )

    async def pull_consumer_named(self, principal: Principal, name: str) -> Consumer:
        """The consumer with this name; a pull consumer of every trigger, made on first use."""
        existing = await self.get_by_name(principal, name)
        if existing is not None:
            return existing
        now = self._clock.now_us()
        new = Consumer(
            id=ids.new_id("con"),
            project_id=principal.project_id,
            environment=principal.environment,
            name=name,
            kind=ConsumerKind.PULL,
            url=None,
            secret=None,
            previous_secret=None,
            previous_secret_expires_at=None,
            retry_schedule=None,
            timeout_ms=None,
            triggers=None,
            state=ConsumerState.ENABLED,
            disabled_reason=None,
            failing_since=None,
            created_at=now,
            updated_at=now,
        )
        return await self._store.write(
            lambda db: consumer_sql.get_or_insert_consumer_by_name(db, new)
        )

    # --- creating and changing -------------------------------------------------------------

    def _check(
        self, body: dict[str, Any], kind: ConsumerKind, errors: list[FieldError]
    ) -> dict[str, Any]:
        """Validate the changeable fields present in `body`; return them normalized."""
        out: dict[str, Any] = {}
        if "name" in body:
            name = body["name"]
            if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
                errors.append(
                    FieldError("$.name", f"must be a string of 1 to {MAX_NAME} characters")
                )
            else:
                out["name"] = name.strip()
        if "url" in body:
            url = body["url"]
            if kind is ConsumerKind.PULL:
                if url is not None:
                    errors.append(FieldError("$.url", "a pull consumer has no url"))
            elif not isinstance(url, str):
                errors.append(FieldError("$.url", f"must be a string, got {type_name(url)}"))
            else:
                problem = check_webhook_url(url)
                if problem:
                    errors.append(FieldError("$.url", problem))
                else:
                    out["url"] = url
        if "triggers" in body:
            triggers = body["triggers"]
            if triggers is None:
                out["triggers"] = None
            elif not isinstance(triggers, list) or not triggers or len(triggers) > MAX_TRIGGERS:
                errors.append(
                    FieldError(
                        "$.triggers",
                        f"must be null (every trigger) or an array of 1 to {MAX_TRIGGERS} "
                        "trigger ids",
                    )
                )
            else:
                for i, t in enumerate(triggers):
                    problem = trigger_id_problem(t) if isinstance(t, str) else "must be a string"
                    if problem:
                        errors.append(FieldError(f"$.triggers[{i}]", problem))
                out["triggers"] = tuple(dict.fromkeys(t for t in triggers if isinstance(t, str)))
        if "retry_schedule" in body:
            schedule = body["retry_schedule"]
            if schedule is None:
                out["retry_schedule"] = None
            elif kind is ConsumerKind.PULL:
                errors.append(FieldError("$.retry_schedule", "only webhook consumers retry"))
            else:
                problem = schedule_problem(schedule)
                if problem:
                    errors.append(FieldError("$.retry_schedule", problem))
                else:
                    out["retry_schedule"] = tuple(schedule)
        if "timeout_seconds" in body:
            timeout = body["timeout_seconds"]
            if timeout is None:
                out["timeout_ms"] = None
            elif (
                isinstance(timeout, bool)
                or not isinstance(timeout, int | float)
                or not 0 < timeout <= MAX_TIMEOUT_SECONDS
            ):
                errors.append(
                    FieldError(
                        "$.timeout_seconds",
                        f"must be a number of seconds above 0 and at most {MAX_TIMEOUT_SECONDS}",
                    )
                )
            else:
                out["timeout_ms"] = int(timeout * 1000)
        if "state" in body:
            try:
                out["state"] = ConsumerState(body["state"])
            except ValueError:
                errors.append(FieldError("$.state", "must be 'enabled', 'paused' or 'disabled'"))
        return out

    async def _check_destination(self, fields: dict[str, Any], errors: list[FieldError]) -> None:
        """Refuse a URL the sender would refuse (a private address, or a name resolving to
        one), unless private destinations are allowed: the same guard, at the door."""
        url = fields.get("url")
        if not url:
            return
        allow = self._settings.webhook_allow_private
        problem = await destination_problem(url, allow_private=allow)
        if problem is not None:
            errors.append(FieldError("$.url", problem))

    async def create(self, principal: Principal, body: dict[str, Any]) -> Consumer:
        errors = unknown_fields(body, _CREATE_FIELDS)
        try:
            kind = ConsumerKind(str(body.get("kind")))
        except ValueError:
            errors.append(FieldError("$.kind", "is required: 'webhook' or 'pull'"))
            kind = ConsumerKind.PULL
        if "name" not in body:
            errors.append(FieldError("$.name", "is required"))
        if kind is ConsumerKind.WEBHOOK and body.get("url") is None:
            errors.append(FieldError("$.url", "is required for a webhook consumer"))
        fields = self._check(body, kind, errors)
        await self._check_destination(fields, errors)
        if errors:
            raise ValidationFailed("The consumer is not valid.", errors=errors)
        now = self._clock.now_us()
        state = fields.get("state", ConsumerState.ENABLED)
        consumer = Consumer(
            id=ids.new_id("con"),
            project_id=principal.project_id,
            environment=principal.environment,
            name=fields["name"],
            kind=kind,
            url=fields.get("url"),
            secret=signing.generate_secret() if kind is ConsumerKind.WEBHOOK else None,
            previous_secret=None,
            previous_secret_expires_at=None,
            retry_schedule=fields.get("retry_schedule"),
            timeout_ms=fields.get("timeout_ms"),
            triggers=fields.get("triggers"),
            state=state,
            disabled_reason=DisabledReason.OPERATOR if state is ConsumerState.DISABLED else None,
            failing_since=None,
            created_at=now,
            updated_at=now,
        )
        await self._store.write(lambda db: consumer_sql.insert_consumer(db, consumer))
        return consumer

    async def _save(self, consumer: Consumer) -> Consumer:
        await self._store.write(lambda db: consumer_sql.update_consumer(db, consumer))
        if consumer.state is ConsumerState.ENABLED:
            self._notifier.pulse()  # a resumed consumer may have work waiting
        return consumer

    async def update(
        self, principal: Principal, consumer_id: str, body: dict[str, Any]
    ) -> Consumer:
        current = await self.get(principal, consumer_id)
        errors = unknown_fields(body, _UPDATE_FIELDS)
        fields = self._check(body, current.kind, errors)
        await self._check_destination(fields, errors)
        if errors:
            raise ValidationFailed("The consumer update is not valid.", errors=errors)
        if "state" in fields:
            fields.update(self._state_change(current, fields["state"]))
        changed = replace(current, **fields, updated_at=self._clock.now_us())
        return await self._save(changed)

    @staticmethod
    def _state_change(current: Consumer, state: ConsumerState) -> dict[str, Any]:
        if state is ConsumerState.DISABLED:
            return {"state": state, "disabled_reason": DisabledReason.OPERATOR}
        # Enabling forgets why it was disabled and how long it had been failing.
        return {"state": state, "disabled_reason": None, "failing_since": None}

    async def set_state(
        self, principal: Principal, consumer_id: str, state: ConsumerState
    ) -> Consumer:
        current = await self.get(principal, consumer_id)
        changed = replace(
            current, **self._state_change(current, state), updated_at=self._clock.now_us()
        )
        return await self._save(changed)

    async def delete(self, principal: Principal, consumer_id: str) -> Consumer:
        consumer = await self.get(principal, consumer_id)
        now, by = self._clock.now_us(), principal.key.id
        await self._store.write(lambda db: consumer_sql.delete_consumer(db, consumer.id, now, by))
        return consumer

    async def rotate_secret(
        self, principal: Principal, consumer_id: str, overlap_seconds: int | None
    ) -> Consumer:
        current = await self.get(principal, consumer_id)
        if current.kind is not ConsumerKind.WEBHOOK:
            raise Conflict("Only webhook consumers have a signing secret.")
        now = self._clock.now_us()
        overlap = (
            self._settings.secret_overlap_seconds if overlap_seconds is None else (overlap_seconds)
        )
        changed = replace(
            current,
            secret=signing.generate_secret(),
            previous_secret=current.secret if overlap > 0 else None,
            previous_secret_expires_at=now + overlap * 1_000_000 if overlap > 0 else None,
            updated_at=now,
        )
        return await self._save(changed)

    async def replay(
        self, principal: Principal, consumer_id: str, since: int, only_failed: bool, by: str
    ) -> dict[str, int]:
        consumer = await self.get(principal, consumer_id)
        now = self._clock.now_us()
        counts = await self._store.write(
            lambda db: txn_sql.replay(db, consumer, since, only_failed, now, by)
        )
        self._notifier.pulse()
        return counts

    # --- pull consumers --------------------------------------------------------------------

    async def claim(
        self,
        principal: Principal,
        consumer_id: str,
        *,
        limit: int,
        lease_seconds: int,
        wait_seconds: float,
    ) -> list[tuple[Transaction, Event]]:
        """Claim up to `limit` pending transactions; wait up to `wait_seconds` for one."""
        consumer = await self.get(principal, consumer_id)
        if consumer.kind is not ConsumerKind.PULL:
            raise Conflict(
                "Only pull consumers claim transactions; eventyard delivers to webhook "
                "consumers itself."
            )
        if consumer.state is not ConsumerState.ENABLED:
            return []
        by = principal.key.id
        deadline = self._clock.now_us() + int(wait_seconds * 1_000_000)
        while True:
            now = self._clock.now_us()
            claimed = await self._store.write(
                functools.partial(
                    txn_sql.claim_pending,
                    consumer_id=consumer.id,
                    now=now,
                    lease_until=now + lease_seconds * 1_000_000,
                    limit=limit,
                    by=by,
                )
            )
            remaining = (deadline - self._clock.now_us()) / 1_000_000
            if claimed or remaining <= 0:
                return claimed
            # Wake on new work here or (via LISTEN) elsewhere; recheck at least each second.
            await self._notifier.wait(min(remaining, 1.0))
