"""An erasure's batches on SQLite: each reads its own events in the user's index, never all of
the user's events, so a heavy user (`anonymous`, a server-side id) costs each write of the
erasure what a light one does; and the batches, each going on from where the last ended,
miss no event even when many share one event time.

The work is counted in SQLite virtual-machine instructions (hundreds of them), which does
not depend on how busy the machine is.
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing

import pytest

from eventyard import ids
from eventyard.domain.models import Environment
from eventyard.store import Store
from eventyard.store.connect import connect
from eventyard.store.erasures import Position, erase_user_batch
from tests.integration.test_retention_deletes import steps

PROJECT = "prj_erasure_batches"


def add_user_events(url: str, user: str, n: int, same_time: int = 1) -> None:
    """`n` events of `user`, received a millisecond apart; `same_time` of them in a row share
    one event time."""
    now_ms = int(time.time() * 1000)
    with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
        conn.executemany(
            "INSERT INTO events (id, project_id, environment, trigger_id, user_id, payload,"
            " timestamp, received_at, source) VALUES (?, ?, 'test', 'signup', ?, '{}', ?, ?,"
            " 'v1')",
            [
                (ids.new_id_at("evt", now_ms - i), PROJECT, user, i // same_time, now_ms * 1000)
                for i in range(n)
            ],
        )
        conn.commit()


def events_of(url: str, user: str) -> int:
    with closing(connect(url, writer=False)) as db:
        n = db.scalar("SELECT COUNT(*) AS n FROM events WHERE user_id = ?", (user,))
    return int(n)


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_a_batch_costs_the_same_for_a_user_with_20_times_the_events(
    store: Store, store_url: str
) -> None:
    add_user_events(store_url, "light", 500)
    add_user_events(store_url, "heavy", 10_000)
    cost = {}
    with closing(connect(store_url, writer=True)) as db:
        for user in ("light", "heavy"):
            db.begin()
            cost[user] = steps(
                db, lambda db, u=user: erase_user_batch(db, PROJECT, Environment.TEST, u, 100)
            )
            db.rollback()  # only measured
    assert cost["heavy"] < 2 * cost["light"], cost
    assert events_of(store_url, "heavy") == 10_000


@pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)
def test_batches_from_where_the_last_ended_erase_every_event_despite_equal_times(
    store: Store, store_url: str
) -> None:
    add_user_events(store_url, "victim", 1_050, same_time=250)  # ties across every batch
    add_user_events(store_url, "keeper", 30)
    after: Position | None = None
    erased, batches = 0, 0
    with closing(connect(store_url, writer=True)) as db:
        while True:
            db.begin()
            counts, after = erase_user_batch(db, PROJECT, Environment.TEST, "victim", 100, after)
            db.commit()
            erased += counts["events"]
            batches += 1
            if counts["events"] < 100:
                break
    assert (erased, batches) == (1_050, 11)
    assert events_of(store_url, "victim") == 0
    assert events_of(store_url, "keeper") == 30
