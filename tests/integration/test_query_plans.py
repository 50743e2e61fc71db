"""Every indexed filter of GET /v1/events is answered from its index, newest first, without
reading the whole table or sorting it: checked on the plans of the very statements
`query_events` runs, over a few thousand events (SQLite without statistics, as eventyard
leaves it; PostgreSQL after ANALYZE, as autovacuum leaves it)."""

from __future__ import annotations

import random
import re

import pytest

from eventyard.domain.models import Environment
from eventyard.ids import new_ulid
from eventyard.services.container import Services
from eventyard.store.db import Db, _to_pyformat
from eventyard.store.event_rows import EVENT_COLUMNS
from eventyard.store.events import EventQuery, event_query_sql
from tests.conftest import Api

pytestmark = pytest.mark.anyio

ROWS = 4000
TRIGGERS = [f"trigger_{n}" for n in range(8)]
T0 = 1_780_000_000_000_000
NOW = T0 + ROWS * 60_000_000


async def _seed(api: Api, services: Services) -> None:
    rng = random.Random(3)
    rows = []
    for i in range(ROWS):
        received = T0 + i * 60_000_000
        user = rng.randrange(20) if rng.random() < 0.3 else rng.randrange(20, 1000)
        rows.append(
            (
                "evt_" + new_ulid(received // 1000),
                api.project_id,
                "live",
                TRIGGERS[min(int(rng.expovariate(0.5)), len(TRIGGERS) - 1)],
                f"user_{user}",
                '{"n":1}',
                received - rng.randrange(1_000_000),
                received,
                None,
                "api",
                received + 7 * 86_400_000_000 if i % 50 == 0 else None,
            )
        )

    def insert(db: Db) -> None:
        db.executemany(
            f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", rows
        )

    await services.store.write(insert)
    if services.store.backend == "postgres":
        await services.store.read(lambda db: db.execute("ANALYZE events"))


CASES = {
    "newest": (EventQuery(), "events_by_time"),
    "user": (EventQuery(user_id="user_3"), "events_by_user"),
    "trigger since": (
        EventQuery(trigger="trigger_0", since=NOW - 86_400_000_000),
        "events_by_trigger",
    ),
    "trigger": (EventQuery(trigger="trigger_7"), "events_by_trigger"),
    # The user's events, not the trigger's: a user has few next to a trigger.
    "trigger and user": (EventQuery(trigger="trigger_0", user_id="user_3"), "events_by_user"),
    "trigger and user, rare trigger": (
        EventQuery(trigger="trigger_7", user_id="user_500"),
        "events_by_user",
    ),
    "time window": (EventQuery(since=NOW - 3_600_000_000, until=NOW), "events_by_time"),
    "page 2": (
        EventQuery(trigger="trigger_0", before=(NOW - 86_400_000_000, "evt_Z")),
        "events_by_trigger",
    ),
    "user page 2": (
        EventQuery(user_id="user_3", before=(NOW - 86_400_000_000, "evt_Z")),
        "events_by_user",
    ),
}


def _plan(db: Db, query: EventQuery, project_id: str) -> str:
    sql, params = event_query_sql(
        project_id, Environment.LIVE, EventQuery(**{**query.__dict__, "limit": 51}), NOW, db.backend
    )
    if db.backend == "sqlite":
        return "\n".join(r["detail"] for r in db.all("EXPLAIN QUERY PLAN " + sql, params))
    rows = db.conn.execute("EXPLAIN " + _to_pyformat(sql), params).fetchall()
    return "\n".join(next(iter(r.values())) for r in rows)


@pytest.mark.parametrize("case", list(CASES))
async def test_each_filter_reads_its_index_newest_first(
    api: Api, services: Services, case: str
) -> None:
    await _seed(api, services)
    query, index = CASES[case]
    plan = await services.store.read(lambda db: _plan(db, query, api.project_id))
    assert index in plan, plan
    assert "SCAN events" not in plan, plan  # SQLite's full scan
    # PostgreSQL's, but on an empty partition (a range made ahead), which costs nothing.
    assert not re.search(r"Seq Scan on .*\(cost=(?!0\.00\.\.0\.00 )", plan), plan
    if services.store.backend == "sqlite":
        assert "TEMP B-TREE" not in plan, plan
        # the equality columns and the time range or cursor are all in the index search
        if query.before is not None:
            assert "(timestamp,id)<(?,?)" in plan, plan
        if query.since is not None:
            assert "timestamp>?" in plan, plan
    elif query.user_id is None and query.since is None:
        # (With a user or a window, PostgreSQL may sort the few events the index finds: a
        # user's, a window's — on a partitioned table it often does.)
        assert "Index Scan Backward" in plan, plan
        # No sort node (a partitioned table's Merge Append names its "Sort Key", and sorts
        # nothing: it merges the partitions' index scans).
        assert not re.search(r"\bSort  \(", plan), plan
        if query.before is not None:
            assert 'ROW("timestamp", id) <' in plan, plan
