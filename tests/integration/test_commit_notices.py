"""The writer's NOTIFYs on PostgreSQL: one notifying commit every interval at most, and
every commit's notification still sent (store/commit_notices.py). The tests set the
interval to 50 ms, longer than the default, so timings on a busy machine stay clear of it.

PostgreSQL serializes the commits that notify, across all processes, so a process must not
notify in each of its commits; but another process's live stream needs the lowest id of
every commit, late ones above all, so none may be dropped.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import psycopg
import pytest

from eventyard.store.commit_notices import EVENTS_CHANNEL, notify
from eventyard.store.connect import connect
from eventyard.store.db import Db
from eventyard.store.writer import GroupCommitWriter

pytestmark = pytest.mark.postgres


class Heard:
    """The payloads of `eventyard_events` and when each arrived, LISTENed in a thread."""

    def __init__(self, url: str) -> None:
        self.notes: list[tuple[float, str]] = []
        self._conn = psycopg.connect(url, autocommit=True)
        self._conn.execute(f"LISTEN {EVENTS_CHANNEL}")
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for note in self._conn.notifies(timeout=0.1):
                self.notes.append((time.monotonic(), note.payload))

    def payloads(self) -> list[str]:
        return [payload for _, payload in self.notes]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._conn.close()


@pytest.fixture
def heard(pg_url: str) -> Iterator[Heard]:
    listening = Heard(pg_url)
    yield listening
    listening.close()


@pytest.fixture
def writer(pg_url: str) -> Iterator[GroupCommitWriter]:
    started = GroupCommitWriter(lambda: connect(pg_url, writer=True), max_weight=100)
    started.notices.every_seconds = 0.05
    started.start()
    yield started
    started.stop()


def _notifying(payload: str, fail: bool = False) -> Callable[[Db], None]:
    def op(db: Db) -> None:
        notify(db, EVENTS_CHANNEL, payload)
        if fail:
            raise RuntimeError("this op fails: its transaction rolls back")

    return op


def test_commits_in_quick_succession_share_notifications_and_none_is_lost(
    writer: GroupCommitWriter, heard: Heard
) -> None:
    started = time.monotonic()
    for n in range(100):  # one commit each: every op waits for the one before
        writer.submit(_notifying(f"evt_{n:03d}")).result(timeout=10)
    took = time.monotonic() - started
    last_answered = time.monotonic()
    time.sleep(0.5)  # what is still to come arrives
    payloads = heard.payloads()
    # At most one notifying commit every 50 ms (and one sent on its own at the end).
    assert 1 <= len(payloads) <= took / 0.05 + 2, (len(payloads), took)
    assert len(payloads) < 100 or took >= 100 * 0.05
    # Each one carries the lowest payload of the commits it stands for, in order...
    assert payloads[0] == "evt_000"
    assert payloads == sorted(payloads)
    # ...and the commits after the last one sent during the run are notified too, on their
    # own within 50 ms, though no further write came to carry them.
    last_at, last = heard.notes[-1]
    assert last_at >= last_answered - 0.06 or last == "evt_099", heard.notes[-3:]
    assert writer.notices.due_in() is None


def test_a_lone_commit_notifies_at_once_and_one_right_after_it_within_50_ms(
    writer: GroupCommitWriter, heard: Heard
) -> None:
    writer.submit(_notifying("evt_a")).result(timeout=10)
    sent = time.monotonic()
    writer.submit(_notifying("evt_b")).result(timeout=10)
    time.sleep(0.5)  # what is still to come arrives
    assert heard.payloads() == ["evt_a", "evt_b"]
    (a_at, _), (b_at, _) = heard.notes
    assert a_at - sent < 0.05  # not held back: nothing was sent before it
    assert 0.03 <= b_at - a_at < 0.3, b_at - a_at  # held back for the rest of the 50 ms


def test_a_rolled_back_op_notifies_nothing(writer: GroupCommitWriter, heard: Heard) -> None:
    writer.submit(_notifying("evt_a")).result(timeout=10)
    failed = writer.submit(_notifying("evt_0", fail=True))
    with pytest.raises(RuntimeError):
        failed.result(timeout=10)
    writer.submit(_notifying("evt_c")).result(timeout=10)
    time.sleep(0.5)  # what is still to come arrives
    assert heard.payloads() == ["evt_a", "evt_c"]
