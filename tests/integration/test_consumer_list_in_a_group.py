"""The consumer list read by ingest is shared by one commit group, yet never stale in it.

A commit group runs many ops in one database transaction. Ingest reads the consumer list
once per transaction; a consumer created by an earlier op of the same transaction must
still get a transaction for every event stored after it.
"""

from __future__ import annotations

from eventyard import ids
from eventyard.clock import SystemClock
from eventyard.domain.models import (
    Consumer,
    ConsumerKind,
    ConsumerState,
    Environment,
    EventDraft,
    Project,
    ProjectMode,
)
from eventyard.store import projects as project_sql
from eventyard.store.connect import connect
from eventyard.store.consumers import insert_consumer
from eventyard.store.event_writes import NewEvent, insert_events
from eventyard.store.transactions import transactions_of_event

ENV = Environment.LIVE


def _event(now: int) -> NewEvent:
    draft = EventDraft("signup", "u1", b"{}", None, None, None, "api")
    return NewEvent(draft, now)


def _consumer(project_id: str, name: str, now: int) -> Consumer:
    return Consumer(
        id=ids.new_id("con"),
        project_id=project_id,
        environment=ENV,
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


def test_a_consumer_created_earlier_in_the_transaction_gets_later_events(
    store_url: str, store: object
) -> None:
    now = SystemClock().now_us()
    project = Project(ids.new_id("prj"), "memo", ProjectMode.OPEN, now)
    db = connect(store_url, writer=True)
    try:
        db.begin()
        project_sql.insert_project(db, project)
        first = _consumer(project.id, "first", now)
        insert_consumer(db, first)
        store_ops = dict(new_triggers=(), idempotency_window_us=1, by="test")
        written = insert_events(db, project.id, ENV, [_event(now)], **store_ops)  # type: ignore[arg-type]
        before = written.results[0].event
        second = _consumer(project.id, "second", now)
        insert_consumer(db, second)
        written = insert_events(db, project.id, ENV, [_event(now)], **store_ops)  # type: ignore[arg-type]
        after = written.results[0].event
        db.commit()
        consumers_of = {
            event.id: {t.consumer_id for t in transactions_of_event(db, event.id)}
            for event in (before, after)
            if event is not None
        }
    finally:
        db.close()
    assert before is not None
    assert after is not None
    assert consumers_of[before.id] == {first.id}
    assert consumers_of[after.id] == {first.id, second.id}
