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
