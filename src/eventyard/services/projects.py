"""Projects: creating one with its first keys, and its settings."""

from __future__ import annotations

from dataclasses import dataclass

from eventyard import ids
from eventyard.clock import Clock
from eventyard.domain.models import Environment, Project, ProjectMode, Scope
from eventyard.domain.retention import MAX_RETENTION_DAYS, MIN_RETENTION_DAYS
from eventyard.errors import FieldError, ProjectExists, ProjectNotFound, ValidationFailed
from eventyard.services.keys import hash_secret, new_key
from eventyard.store import Store
from eventyard.store import keys as key_sql
from eventyard.store import projects as project_sql
from eventyard.store.db import Db


@dataclass(frozen=True)
class InitResult:
    project: Project
    keys: dict[Environment, str]  # environment → secret, shown once


async def init_project(store: Store, clock: Clock, name: str) -> InitResult:
    """Create a project and one admin key per environment, in one transaction."""
    now = clock.now_us()
    project = Project(id=ids.new_id("prj"), name=name, mode=ProjectMode.OPEN, created_at=now)
    minted = {
        env: new_key(project.id, env, frozenset({Scope.ADMIN}), f"{env.value} admin key", now)
        for env in Environment
    }

    def op(db: Db) -> bool:
        if not project_sql.insert_project(db, project):
            return False
        for key, secret in minted.values():
            key_sql.insert_key(db, key, hash_secret(secret))
        return True

    if not await store.write(op):
        raise ProjectExists(
            f"A project named {name!r} already exists; choose another name with --project."
        )
    return InitResult(project, {env: secret for env, (_, secret) in minted.items()})


async def get_project_by_name(store: Store, name: str) -> Project:
    project = await store.read(lambda db: project_sql.get_project_by_name(db, name))
    if project is None:
        raise ProjectNotFound(f"No project named {name!r}; create it with 'eventyard init'.")
    return project


class Keep:
    """As a setting's new value in `update_project`: leave it as it is."""


KEEP = Keep()


def check_retention_days(value: object, path: str = "$.retention_days") -> int | None:
    """A retention as given (whole days, or null for keeping events forever), checked."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not MIN_RETENTION_DAYS <= value <= MAX_RETENTION_DAYS
        or value != int(value)
    ):
        raise ValidationFailed(
            "The project update is not valid.",
            errors=[
                FieldError(
                    path,
                    f"must be a whole number of days from {MIN_RETENTION_DAYS} to "
                    f"{MAX_RETENTION_DAYS}, or null to keep events forever; got {value!r}",
                )
            ],
        )
    return int(value)


async def update_project(
    store: Store,
    project_id: str,
    *,
    mode: ProjectMode | Keep = KEEP,
    retention_days: int | Keep | None = KEEP,
) -> Project:
    """Change the project's mode and/or retention (checked with `check_retention_days`) in
    one write. A shorter retention hides the older events at once; housekeeping removes them."""
    if not isinstance(retention_days, Keep):
        retention_days = check_retention_days(retention_days)

    def op(db: Db) -> Project | None:
        if not isinstance(mode, Keep):
            project_sql.set_project_mode(db, project_id, mode)
        if not isinstance(retention_days, Keep):
            project_sql.set_project_retention(db, project_id, retention_days)
        return project_sql.get_project(db, project_id)

    project = await store.write(op)
    if project is None:
        raise ProjectNotFound(f"No project {project_id!r}.")
    return project


async def list_projects(store: Store) -> list[Project]:
    return await store.read(project_sql.list_projects)


async def get_project(store: Store, project_id: str) -> Project:
    project = await store.read(lambda db: project_sql.get_project(db, project_id))
    if project is None:
        raise ProjectNotFound(f"There is no project {project_id!r}.")
    return project
