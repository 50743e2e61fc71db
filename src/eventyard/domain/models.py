"""The concepts of DESIGN.md section 2 as frozen dataclasses.

Rows come out of the store as these objects and services hand them to the API, which
serializes them. Nothing here touches a database or the network.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Environment(StrEnum):
    LIVE = "live"
    TEST = "test"


class Scope(StrEnum):
    WRITE = "write"
    READ = "read"
    DELETE = "delete"
    ADMIN = "admin"


class ProjectMode(StrEnum):
    OPEN = "open"  # an event for an unknown trigger creates the trigger
    STRICT = "strict"  # an event for an unknown trigger is refused


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    mode: ProjectMode
    created_at: int
    retention_days: int | None = None  # events older than this (by receipt) are gone; None: kept


@dataclass(frozen=True)
class ApiKey:
    id: str
    project_id: str
    environment: Environment
    name: str
    prefix: str
    scopes: frozenset[Scope]
    created_at: int
    last_used_at: int | None
    revoked_at: int | None

    def allows(self, scope: Scope) -> bool:
        """`admin` includes every other scope."""
        return scope in self.scopes or Scope.ADMIN in self.scopes


@dataclass(frozen=True)
class Principal:
    """Who is calling: a live key, with the project it belongs to."""

    key: ApiKey
    project: Project

    @property
    def project_id(self) -> str:
        return self.project.id

    @property
    def environment(self) -> Environment:
        return self.key.environment


@dataclass(frozen=True)
class Trigger:
    project_id: str
    id: str
    uuid: str
    name: str
    description: str
    type: str
    platform: str | None
    label: str | None
    schema: dict[str, Any] | None  # {"attributes": [...], ...} or {"json_schema": {...}}
    archived_at: int | None
    created_at: int
    updated_at: int
    inbound_token: str  # 32 hex: the CDP webhook URL's hook_id, `/cdp/webhooks/{token}`


@dataclass(frozen=True)
class Event:
    id: str
    project_id: str
    environment: Environment
    trigger: str
    user_id: str
    payload: dict[str, Any]
    timestamp: int
    received_at: int
    idempotency_key: str | None
    source: str
    expires_at: int | None


@dataclass(frozen=True)
class EventDraft:
    """An event that has passed validation and waits to be stored."""

    trigger: str
    user_id: str
    payload_json: bytes
    timestamp: int | None  # None: use the receipt time
    idempotency_key: str | None
    body_hash: str | None  # what an idempotent repeat must match
    source: str
    expires_at: int | None = None
    # With a timestamp: the hash of the same body without it. A repeat that now states the
    # time the server gave the first one (an exported event imported back) is the same event.
    untimed_hash: str | None = None


class ConsumerKind(StrEnum):
    WEBHOOK = "webhook"  # eventyard POSTs each event to a URL
    PULL = "pull"  # a program claims events over the API and reports back


class ConsumerState(StrEnum):
    ENABLED = "enabled"
    PAUSED = "paused"  # transactions are created and wait; nothing is sent
    DISABLED = "disabled"


class DisabledReason(StrEnum):
    OPERATOR = "operator"  # no new transactions
    FAILING = "failing"  # every attempt failed for too long; transactions still queue up
    GONE = "gone"  # the endpoint answered 410; transactions still queue up


class TxState(StrEnum):
    """The states eventyard itself knows; pull consumers may report others."""

    PENDING = "pending"
    PROCESSING = "processing"
    FINISHED = "finished"
    FAILED = "failed"


TERMINAL_STATES = frozenset({TxState.FINISHED.value, TxState.FAILED.value})


@dataclass(frozen=True)
class Consumer:
    id: str
    project_id: str
    environment: Environment
    name: str
    kind: ConsumerKind
    url: str | None
    secret: str | None
    previous_secret: str | None
    previous_secret_expires_at: int | None
    retry_schedule: tuple[int, ...] | None  # None: the server's default
    timeout_ms: int | None
    triggers: tuple[str, ...] | None  # None: every trigger
    state: ConsumerState
    disabled_reason: DisabledReason | None
    failing_since: int | None
    created_at: int
    updated_at: int

    def wants(self, trigger: str) -> bool:
        return self.triggers is None or trigger in self.triggers

    @property
    def receives_transactions(self) -> bool:
        """Whether new events make transactions for it (they wait while it cannot take them)."""
        return self.state is not ConsumerState.DISABLED or (
            self.disabled_reason is not DisabledReason.OPERATOR
        )

    def signing_secrets(self, now: int) -> list[str]:
        """The secrets to sign with now: the current one, and a rotated one still overlapping."""
        out = [self.secret] if self.secret else []
        if (
            self.previous_secret
            and self.previous_secret_expires_at is not None
            and self.previous_secret_expires_at > now
        ):
            out.append(self.previous_secret)
        return out


@dataclass(frozen=True)
class HistoryEntry:
    exit_state: str | None
    enter_state: str
    at: int
    by: str


@dataclass(frozen=True)
class Attempt:
    attempt: int
    at: int
    status_code: int | None
    duration_ms: int
    response_excerpt: str | None
    error: str | None


@dataclass(frozen=True)
class Transaction:
    id: str
    project_id: str
    environment: Environment
    consumer_id: str
    event_id: str
    state: str
    output: Any
    attempts: int
    schedule_index: int
    next_attempt_at: int | None
    lease_expires_at: int | None
    created_at: int
    updated_at: int
    history: tuple[HistoryEntry, ...] = ()
    delivery_attempts: tuple[Attempt, ...] = ()
