"""Concurrent ingest requests merged into one set-based write answer as if run one by one.

The writer hands the ingest requests of one commit group to `store_event_writes` together;
these tests call it with several requests at once, on both backends, and check each
request's answer: claims, repeats of a key inside the group and across groups, conflicts,
a key whose window has passed, and the consumers' transactions per request.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

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
from eventyard.services.ingest import body_hash
from eventyard.store import projects as project_sql
from eventyard.store.connect import connect
from eventyard.store.consumers import insert_consumer
from eventyard.store.db import Db
from eventyard.store.event_writes import EventWrite, NewEvent, Outcome, store_event_writes
from eventyard.store.transactions import transactions_of_event
from eventyard.store.writer import GroupCommitWriter

ENV = Environment.LIVE
WINDOW = 3_600_000_000


def _draft(user: str, key: str | None, amount: int = 1, trigger: str = "paid") -> EventDraft:
    payload = {"amount": amount}
    return EventDraft(
        trigger,
        user,
        f'{{"amount":{amount}}}'.encode(),
        None,
        key,
        body_hash(trigger, user, payload, None) if key else None,
        "api",
    )


def _write(project: Project, *drafts: EventDraft, at: int, window: int = WINDOW) -> EventWrite:
    return EventWrite(project.id, ENV, [NewEvent(d, at) for d in drafts], (), window, "key_test")


@pytest.fixture
def db(store_url: str, store: object) -> Iterator[Db]:
    db = connect(store_url, writer=True)
    yield db
    db.close()


@pytest.fixture
def project(db: Db) -> Project:
    project = Project(ids.new_id("prj"), "merged", ProjectMode.OPEN, SystemClock().now_us())
    db.begin()
    project_sql.insert_project(db, project)
    db.commit()
    return project


def _pull_consumer(project: Project, triggers: tuple[str, ...] | None) -> Consumer:
    now = SystemClock().now_us()
    return Consumer(
        id=ids.new_id("con"),
        project_id=project.id,
        environment=ENV,
        name=f"c-{ids.new_id('x')}",
        kind=ConsumerKind.PULL,
        url=None,
        secret=None,
        previous_secret=None,
        previous_secret_expires_at=None,
        retry_schedule=None,
        timeout_ms=None,
        triggers=triggers,
        state=ConsumerState.ENABLED,
        disabled_reason=None,
        failing_since=None,
        created_at=now,
        updated_at=now,
    )


def _commit(db: Db, writes: list[EventWrite]) -> list[list[tuple[Outcome, str | None]]]:
    db.begin()
    written = store_event_writes(db, writes)
    db.commit()
    return [[(s.outcome, s.event.id if s.event else None) for s in w.results] for w in written]


def test_requests_in_one_group_claim_repeat_and_conflict_in_order(db: Db, project: Project) -> None:
    now = SystemClock().now_us()
    first = _write(project, _draft("u1", "k1"), _draft("u2", None), at=now)
    repeat = _write(project, _draft("u1", "k1"), at=now + 5)
    reused = _write(project, _draft("u1", "k1", amount=2), at=now + 6)
    same_request = _write(project, _draft("u3", "k3"), _draft("u3", "k3"), at=now + 7)
    results = _commit(db, [first, repeat, reused, same_request])

    (k1, accepted_k1), (plain, _) = results[0]
    assert (k1, plain) == (Outcome.ACCEPTED, Outcome.ACCEPTED)
    assert results[1] == [(Outcome.DUPLICATE, accepted_k1)]
    assert results[2] == [(Outcome.CONFLICT, accepted_k1)]
    (k3, accepted_k3), k3_again = results[3]
    assert k3 is Outcome.ACCEPTED
    assert k3_again == (Outcome.DUPLICATE, accepted_k3)
    stored = db.scalar("SELECT COUNT(*) AS n FROM events WHERE project_id = ?", (project.id,))
    assert stored == 3


def test_a_key_held_by_an_earlier_commit_is_a_duplicate_of_the_stored_event(
    db: Db, project: Project
) -> None:
    now = SystemClock().now_us()
    [[(_, original)]] = _commit(db, [_write(project, _draft("u1", "k1"), at=now)])
    again = _commit(
        db,
        [
            _write(project, _draft("u1", "k1"), at=now + 10),
            _write(project, _draft("u1", "k1", amount=9), at=now + 11),
            _write(project, _draft("u1", "k2"), at=now + 12),
        ],
    )
    assert again[0] == [(Outcome.DUPLICATE, original)]
    assert again[1] == [(Outcome.CONFLICT, original)]
    assert again[2][0][0] is Outcome.ACCEPTED


def test_a_key_past_its_window_is_claimed_again_even_within_one_group(
    db: Db, project: Project
) -> None:
    now = SystemClock().now_us()
    window = 100  # µs: the second request arrives after the first's window has closed
    results = _commit(
        db,
        [
            _write(project, _draft("u1", "k1"), at=now, window=window),
            _write(project, _draft("u1", "k1", amount=2), at=now + 500, window=window),
            _write(project, _draft("u1", "k1", amount=3), at=now + 550, window=window),
        ],
    )
    assert results[0][0][0] is Outcome.ACCEPTED
    assert results[1][0][0] is Outcome.ACCEPTED  # a new event under the freed key
    assert results[2] == [(Outcome.CONFLICT, results[1][0][1])]  # within the second's window
    owner = db.scalar(
        "SELECT event_id FROM idempotency_keys WHERE project_id = ? AND key = 'k1'",
        (project.id,),
    )
    assert owner == results[1][0][1]


def test_each_request_counts_the_transactions_its_own_events_made(db: Db, project: Project) -> None:
    db.begin()
    insert_consumer(db, _pull_consumer(project, None))
    only_paid = _pull_consumer(project, ("paid",))
    insert_consumer(db, only_paid)
    db.commit()
    now = SystemClock().now_us()
    db.begin()
    written = store_event_writes(
        db,
        [
            _write(project, _draft("u1", None), _draft("u2", None), at=now),
            _write(project, _draft("u3", None, trigger="signup"), at=now + 1),
            _write(project, _draft("u1", "k1"), at=now + 2),
            _write(project, _draft("u1", "k1"), at=now + 3),  # a duplicate makes none
        ],
    )
    db.commit()
    assert [w.transactions_created for w in written] == [4, 1, 2, 0]
    signup = written[1].results[0].event
    assert signup is not None
    assert len(transactions_of_event(db, signup.id)) == 1


def test_the_writer_merges_neighbouring_ops_and_keeps_order_and_isolation(
    store_url: str, store: object
) -> None:
    """Consecutive merged ops run as one call; a plain op between them splits the run; a
    failing argument fails only its own op."""
    calls: list[list[int]] = []
    order: list[str] = []
    release = threading.Event()

    def merged(db: Db, args: list[int]) -> list[int]:
        calls.append(list(args))
        order.extend(f"m{a}" for a in args)
        if 13 in args:
            raise ValueError("unlucky")
        return [a * 10 for a in args]

    def plain(db: Db) -> str:
        order.append("plain")
        return "p"

    def hold(db: Db) -> None:
        release.wait(10)

    writer = GroupCommitWriter(lambda: connect(store_url, writer=True), max_weight=100)
    writer.start()

    async def scenario() -> list[object]:
        blocker = writer.submit(hold)  # the rest queue up behind it, into one group
        await asyncio.sleep(0.05)
        tasks = [
            asyncio.ensure_future(writer.write_merged(merged, 1)),
            asyncio.ensure_future(writer.write_merged(merged, 2)),
            asyncio.ensure_future(writer.write(plain)),
            asyncio.ensure_future(writer.write_merged(merged, 3)),
            asyncio.ensure_future(writer.write_merged(merged, 13)),
        ]
        await asyncio.sleep(0.05)
        release.set()
        out = await asyncio.gather(*tasks, return_exceptions=True)
        blocker.result(5)
        return out

    try:
        out = asyncio.run(scenario())
    finally:
        writer.stop()
    assert out[:4] == [10, 20, "p", 30]
    assert isinstance(out[4], ValueError)
    # First as one group: [1, 2], plain, [3, 13] (which fails, so every op runs again alone).
    assert calls[:2] == [[1, 2], [3, 13]]
    assert order[:5] == ["m1", "m2", "plain", "m3", "m13"]
    assert sorted(map(tuple, calls[2:])) == [(1,), (2,), (3,), (13,)]


def test_transactions_keep_each_requests_own_time(db: Db, project: Project) -> None:
    """Requests stored together still date their transactions by their own receipt."""
    db.begin()
    insert_consumer(db, _pull_consumer(project, None))
    db.commit()
    now = SystemClock().now_us()
    db.begin()
    written = store_event_writes(
        db,
        [
            _write(project, _draft("u1", None), at=now),
            _write(project, _draft("u2", None), at=now + 250_000),  # queued behind the first
        ],
    )
    db.commit()
    for w in written:
        event = w.results[0].event
        assert event is not None
        [txn] = transactions_of_event(db, event.id)
        assert txn.created_at == event.received_at
        assert txn.next_attempt_at == event.received_at
        assert [h.at for h in txn.history] == [event.received_at]


@pytest.mark.postgres
def test_two_processes_reclaiming_an_expired_key_do_not_both_take_it(
    store_url: str, store: object, db: Db, project: Project
) -> None:
    """The second to reclaim a key past its window finds the first's claim, not a free key."""
    if not store_url.startswith("postgresql"):
        pytest.skip("one writer per SQLite database: no other process can race it")
    now = SystemClock().now_us()
    db.begin()
    store_event_writes(db, [_write(project, _draft("u0", "kx"), at=now, window=10)])
    db.commit()

    other = connect(store_url, writer=True)
    read_owner, paused = threading.Event(), threading.Event()
    plain_one = other.one

    def one_then_wait(sql: str, params: Sequence[Any] = ()) -> Any:
        row = plain_one(sql, params)
        if "FROM idempotency_keys" in sql:  # it has read the expired owner: hold it there
            read_owner.set()
            paused.wait(10)
        return row

    other.one = one_then_wait  # type: ignore[method-assign]
    theirs: list[Any] = []

    def second_process() -> None:
        other.begin()
        theirs.extend(
            store_event_writes(other, [_write(project, _draft("u2", "kx", 2), at=now + 1000)])
        )
        other.commit()

    thread = threading.Thread(target=second_process)
    thread.start()
    try:
        assert read_owner.wait(10)
        db.begin()
        [mine] = store_event_writes(db, [_write(project, _draft("u1", "kx", 1), at=now + 1000)])
        db.commit()
        paused.set()
        thread.join(10)
    finally:
        paused.set()
        other.close()
    first, second = mine.results[0], theirs[0].results[0]
    assert first.outcome is Outcome.ACCEPTED
    assert first.event is not None
    assert (second.outcome, second.original_id) == (Outcome.CONFLICT, first.event.id)
    owner = db.scalar(
        "SELECT event_id FROM idempotency_keys WHERE project_id = ? AND key = 'kx'", (project.id,)
    )
    assert owner == first.event.id
