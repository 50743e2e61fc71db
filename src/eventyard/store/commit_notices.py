"""The NOTIFYs a process's commits send to other processes, at most one notifying commit
every `every_seconds`.

PostgreSQL takes one cluster-wide lock for the notification queue when a transaction that
notified commits, and holds it until the commit's WAL record is flushed: commits that notify
are serialized, fsync and all, across every process. So the ingest ops of the writer do not
notify each in its own commit; they `add` to this (the channel and the payload; a channel
keeps its lowest payload, which for event ids is the oldest). The writer then sends what its
commits have gathered in one of them at most every `every_seconds` (`before_commit`), and
when no commit comes by then, in a transaction of its own (`due_in` tells it when). What an
op adds counts only once its transaction has committed (`committed`; `rolled_back` forgets
it), and what was sent is forgotten only when the commit that sent it has committed.

So every commit's notification goes out at most `every_seconds` after it commits (at once
when the process has sent none in the last `every_seconds`), or with the commit of the write
group that started before then, whichever is later: a slow group (an erasure batch, a large
batch of events) holds the notices it carries until it commits. Each carries the lowest
payload of the commits it stands for. Only the writer's thread touches this. (Sending them
on a connection of their own would lift that bound, at one more connection a process.)
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eventyard.store.db import Db

TRANSACTIONS_CHANNEL = "eventyard_transactions"  # new transactions: wake the workers
EVENTS_CHANNEL = "eventyard_events"  # payload: the lowest event id a commit stored
# A process's notifying commits: one this often at most. 50 ms put a worker in its own
# process 25 ms (p50) behind ingest at 1,000 events/s on PostgreSQL; 10 ms, 6 ms (issue 7's
# bound is 20 ms), while a process still sends at most 100 notifying commits a second.
NOTIFY_EVERY_S = 0.01
RETRY_S = 1.0  # after a failed attempt to send on its own


class CommitNotices:
    def __init__(self, every_seconds: float = NOTIFY_EVERY_S) -> None:
        self.every_seconds = every_seconds
        self._staged: dict[str, str] = {}  # added in the transaction in hand
        self._pending: dict[str, str] = {}  # committed, not yet sent
        self._sending = False  # the transaction in hand sends them
        self._next_at = 0.0  # time.monotonic() from which the next may be sent
        self.sent = 0  # notifying commits so far

    def add(self, channel: str, payload: str = "") -> None:
        """Notify `channel` (with the lowest `payload` added) once this transaction commits."""
        _keep_lowest(self._staged, channel, payload)

    def before_commit(self, db: Db) -> None:
        """Send what is due in the transaction about to commit."""
        if not (self._staged or self._pending) or time.monotonic() < self._next_at:
            return
        due = dict(self._pending)
        for channel, payload in self._staged.items():
            _keep_lowest(due, channel, payload)
        for channel, payload in sorted(due.items()):
            db.execute("SELECT pg_notify(?, ?)", [channel, payload])
        self._sending = True

    def committed(self) -> None:
        if self._sending:
            self._pending.clear()
            self._next_at = time.monotonic() + self.every_seconds
            self.sent += 1
        else:
            for channel, payload in self._staged.items():
                _keep_lowest(self._pending, channel, payload)
        self._staged.clear()
        self._sending = False

    def rolled_back(self) -> None:
        self._staged.clear()
        self._sending = False

    def failed_to_send(self) -> None:
        """A transaction of its own could not send them (the database is away): later."""
        self.rolled_back()
        self._next_at = time.monotonic() + RETRY_S

    def hurry(self) -> None:
        """Make the unsent ones due now (the writer stops)."""
        self._next_at = 0.0

    def due_in(self) -> float | None:
        """Seconds until the committed but unsent ones are due; None when there are none."""
        if not self._pending:
            return None
        return max(0.0, self._next_at - time.monotonic())


def notify(db: Db, channel: str, payload: str = "") -> None:
    """NOTIFY at this transaction's commit: gathered with other commits' on the writer's
    connection, at once on any other."""
    if db.notices is not None:
        db.notices.add(channel, payload)
    else:
        db.execute("SELECT pg_notify(?, ?)", [channel, payload])


def _keep_lowest(into: dict[str, str], channel: str, payload: str) -> None:
    held = into.get(channel)
    if held is None or payload < held:
        into[channel] = payload
