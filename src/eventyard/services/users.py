"""Erasing an end user: every event of theirs in the caller's project and environment."""

from __future__ import annotations

from dataclasses import dataclass

from eventyard.clock import Clock
from eventyard.domain.models import Principal
from eventyard.store import Store
from eventyard.store.events import delete_user_events


@dataclass(frozen=True)
class Erasure:
    user_id: str
    events: int
    erased_at: int


async def erase_user(store: Store, clock: Clock, principal: Principal, user_id: str) -> Erasure:
    project_id, env = principal.project_id, principal.environment
    count = await store.write(lambda db: delete_user_events(db, project_id, env, user_id))
    return Erasure(user_id=user_id, events=count, erased_at=clock.now_us())
