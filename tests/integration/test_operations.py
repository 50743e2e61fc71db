"""Operations, in-process on both databases: `X-Request-ID` on every answer, the series of
`/metrics` moving with ingest and delivery (a real receiver), its optional token, and
`GET /v1/status` under a frozen clock."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from eventyard import ids
from eventyard.settings import Settings
from eventyard.store import Store, open_store
from eventyard.store.connect import connect
from eventyard.store.status import backlog_sql, first_attempt_lags, first_attempts_sql
from tests.integration.delivery_fixtures import World, open_world, worker_running
from tests.receiver import Receiver, Reply

pytestmark = pytest.mark.anyio

GENERATED = re.compile(r"[0-9a-f]{16}")


@pytest.fixture
async def world(store: Store, settings: Settings) -> AsyncIterator[World]:
    async with open_world(store, settings) as w:
        yield w


# --- X-Request-ID ----------------------------------------------------------------------------


async def test_a_given_request_id_is_echoed_on_success_errors_404_405_and_adapters(
    world: World,
) -> None:
    api = world.api
    rid = {"X-Request-ID": "client-chose-this.id_42"}
    answers = {
        "201": await api.post("/v1/events", {"trigger": "t", "user_id": "u"}, headers=rid),
        "422": await api.post("/v1/events", {"trigger": "t"}, headers=rid),
        "401": await api.client.get("/v1/events", headers=rid),
        "404": await api.client.get("/nowhere/at/all", headers=rid),
        "405": await api.client.delete("/v1/events/batch", headers=rid),
        "adapter 401": await api.client.post("/eventbunker/post", json={}, headers=rid),
        "adapter 404": await api.client.get("/segment/v1/nothing", headers=rid),
        "metrics": await api.client.get("/metrics", headers=rid),
    }
    assert answers["201"].status_code == 201
    assert answers["422"].status_code == 422
    assert answers["401"].status_code == 401
    assert answers["404"].status_code == 404
    assert answers["405"].status_code == 405
    assert answers["adapter 401"].status_code == 401
    assert answers["adapter 404"].status_code == 404
    for what, answer in answers.items():
        assert answer.headers.get("x-request-id") == "client-chose-this.id_42", what


async def test_without_a_sane_request_id_each_answer_gets_a_new_one(world: World) -> None:
    api = world.api
    seen = set()
    for headers in (
        {},
        {"X-Request-ID": "x" * 129},  # too long
        {"X-Request-ID": "has space"},
        {"X-Request-ID": ""},
    ):
        answer = await api.client.get("/v1/events", headers={**api.auth(), **headers})
        assert answer.status_code == 200
        rid = answer.headers["x-request-id"]
        assert GENERATED.fullmatch(rid), rid
        seen.add(rid)
    assert len(seen) == 4
    exactly_128 = "y" * 128
    answer = await api.client.get("/healthz", headers={"X-Request-ID": exactly_128})
    assert answer.headers["x-request-id"] == exactly_128


# --- /metrics --------------------------------------------------------------------------------


def _value(text: str, series: str) -> float:
    """The value of one exact series line (`name{labels}`), or 0 when it is absent."""
    for line in text.splitlines():
        name, _, value = line.rpartition(" ")
        if name == series:
            return float(value)
    return 0.0


async def _scrape(world: World) -> str:
    scraped = await world.api.client.get("/metrics")
    assert scraped.status_code == 200, scraped.text
    assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
    return scraped.text


async def test_metrics_move_with_ingest_commits_and_delivery(world: World) -> None:
    async with Receiver() as receiver:
        hook = await world.hook(receiver.url("/hook"))
        paused = await world.hook(receiver.url("/paused"), name="paused")
        assert (await world.api.post(f"/v1/consumers/{paused['id']}/pause")).status_code == 200
        before = await _scrape(world)
        await world.send(user_id="a")
        batch = await world.api.post(
            "/v1/events/batch",
            {"events": [{"trigger": "signup", "user_id": f"b{i}"} for i in range(7)] + [{}]},
        )
        assert batch.status_code == 200
        assert (await world.api.get("/v1/events/evt_nope")).status_code == 404
        receiver.enqueue(Reply(200), Reply(500))
        assert await world.deliver() == 8
        after = await _scrape(world)

    def moved(series: str) -> float:
        return _value(after, series) - _value(before, series)

    route = 'method="POST",route="/v1/events",status="201"'
    assert moved(f"eventyard_http_requests_total{{{route}}}") == 1
    assert moved('eventyard_http_request_seconds_count{method="POST",route="/v1/events"}') == 1
    by_id = 'eventyard_http_requests_total{method="GET",route="/v1/events/{event_id}",status='
    assert moved(by_id + '"404"}') == 1
    assert _value(after, by_id + '"400"}') == 0
    # A path parameter that does not decode is refused, and counted under its route's template.
    assert (await world.api.get("/v1/events/%FF")).status_code == 400
    assert _value(await _scrape(world), by_id + '"400"}') == 1
    assert moved('eventyard_events_total{source="api",outcome="accepted"}') == 8
    assert moved('eventyard_events_total{source="api",outcome="rejected"}') == 1
    assert moved('eventyard_batch_events_count{source="api"}') == 1
    assert moved('eventyard_batch_events_sum{source="api"}') == 8
    assert moved('eventyard_batch_events_bucket{source="api",le="5"}') == 0
    assert moved('eventyard_batch_events_bucket{source="api",le="10"}') == 1
    assert moved("eventyard_commit_seconds_count") >= 2  # two ingests, the deliveries
    assert moved("eventyard_commit_group_ops_count") == moved("eventyard_commit_seconds_count")
    assert moved('eventyard_webhook_attempts_total{outcome="success"}') == 7
    assert moved('eventyard_webhook_attempts_total{outcome="retry"}') == 1
    # From the database: the paused consumer holds all 8; the live one the retry only.
    assert _value(after, f'eventyard_pending_transactions{{consumer="{paused["id"]}"}}') == 8
    assert _value(after, f'eventyard_pending_transactions{{consumer="{hook["id"]}"}}') == 1
    assert _value(after, f'eventyard_inflight_transactions{{consumer="{hook["id"]}"}}') == 0
    assert _value(after, "process_resident_memory_bytes") > 10_000_000


async def test_an_idle_consumer_has_zero_series_not_none(world: World) -> None:
    """An alert on the backlog or due lag must see 0 for a consumer with nothing open,
    not a missing series."""
    async with Receiver() as receiver:
        idle = await world.hook(receiver.url("/idle"))
        lines = set((await _scrape(world)).splitlines())
    for series in (
        "eventyard_pending_transactions",
        "eventyard_inflight_transactions",
        "eventyard_oldest_pending_seconds",
        "eventyard_delivery_due_lag_seconds",
    ):
        assert any(
            line in lines
            for line in (f'{series}{{consumer="{idle["id"]}"}} {v}' for v in ("0", "0.0"))
        ), series


async def test_the_scrape_parses_as_prometheus_text(world: World) -> None:
    """The official client's parser reads every family; histograms are cumulative."""
    await world.hook("http://127.0.0.1:9/hook")  # a consumer with a backlog: its gauges
    await world.send(user_id="a")
    await world.api.post("/v1/events/batch", {"events": [{"trigger": "t", "user_id": "b"}]})
    families = {f.name: f for f in text_string_to_metric_families(await _scrape(world))}
    kinds = {name: f.type for name, f in families.items()}
    assert kinds == {
        "eventyard_http_requests": "counter",
        "eventyard_http_request_seconds": "histogram",
        "eventyard_access_log_dropped": "counter",
        "eventyard_events": "counter",
        "eventyard_batch_events": "histogram",
        "eventyard_commit_seconds": "histogram",
        "eventyard_commit_group_ops": "histogram",
        "eventyard_webhook_attempts": "counter",
        "eventyard_webhook_attempt_seconds": "histogram",
        "eventyard_oldest_pending_seconds": "gauge",
        "eventyard_pending_transactions": "gauge",
        "eventyard_inflight_transactions": "gauge",
        "eventyard_delivery_due_lag_seconds": "gauge",
        "process_resident_memory_bytes": "gauge",
    }
    for family in families.values():
        if family.type != "histogram":
            continue
        buckets: dict[tuple[tuple[str, str], ...], list[float]] = {}
        for s in family.samples:
            if s.name.endswith("_bucket"):
                key = tuple(sorted((k, v) for k, v in s.labels.items() if k != "le"))
                buckets.setdefault(key, []).append(s.value)
        assert buckets, family.name
        for counts in buckets.values():
            assert counts == sorted(counts), family.name


async def test_metrics_show_due_lag_and_oldest_age_per_consumer(world: World) -> None:
    made = await world.api.post("/v1/consumers", {"name": "puller", "kind": "pull"})
    puller = made.json()["id"]
    await world.send(user_id="a")
    world.frozen.advance(30)
    await world.send(user_id="b")
    world.frozen.advance(12)
    claimed = await world.api.post(f"/v1/consumers/{puller}/claim", {"limit": 1})
    assert len(claimed.json()["data"]) == 1
    text = await _scrape(world)
    tag = f'{{consumer="{puller}"}}'
    assert _value(text, f"eventyard_pending_transactions{tag}") == 2
    assert _value(text, f"eventyard_inflight_transactions{tag}") == 1
    assert _value(text, f"eventyard_oldest_pending_seconds{tag}") == 42
    # The first was claimed; the second has been due, unclaimed, for 12 s.
    assert _value(text, f"eventyard_delivery_due_lag_seconds{tag}") == 12


async def test_a_metrics_token_guards_the_scrape(store: Store, settings: Settings) -> None:
    async with open_world(store, settings, metrics_token="s3cret-scrape") as world:
        client = world.api.client
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert "EVENTYARD_METRICS_TOKEN" in wrong.json()["message"]
        right = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-scrape"})
        assert right.status_code == 200
        assert "eventyard_http_requests_total" in right.text


# --- GET /v1/status --------------------------------------------------------------------------


async def test_status_reports_backlog_oldest_and_lags_per_consumer(world: World) -> None:
    async with Receiver() as receiver:
        hook = await world.hook(receiver.url("/hook"))
        paused = await world.hook(receiver.url("/paused"), name="paused")
        assert (await world.api.post(f"/v1/consumers/{paused['id']}/pause")).status_code == 200
        first = await world.send(user_id="a")
        world.frozen.advance(2)
        await world.send(user_id="b")
        world.frozen.advance(3)  # the worker comes 5 s after the first event, 3 s after the second
        assert await world.deliver() == 2
        world.frozen.advance(10)
        got = await world.api.get("/v1/status")
    assert got.status_code == 200, got.text
    status = got.json()
    assert status["ingest_to_queryable_ms"] == 0
    assert "commit" in status["ingest_to_queryable"]
    by_name = {c["name"]: c for c in status["consumers"]}
    live = by_name["hook"]
    assert live["consumer"] == hook["id"]
    assert (live["pending"], live["in_flight"], live["oldest_pending"]) == (0, 0, None)
    assert live["first_attempt_lag"] == {"attempts": 2, "p50_ms": 3000.0, "p99_ms": 5000.0}
    assert live["due_lag_ms"] == 0
    waiting = by_name["paused"]
    assert waiting["state"] == "paused"
    assert (waiting["pending"], waiting["in_flight"]) == (2, 0)
    assert waiting["oldest_pending"]["event"] == first
    assert waiting["oldest_pending"]["age_ms"] == 15_000
    assert waiting["due_lag_ms"] == 15_000  # due since its creation, and nobody sends it
    assert waiting["first_attempt_lag"] is None


async def test_status_says_whether_a_delivery_worker_runs(world: World) -> None:
    assert (await world.api.get("/v1/status")).json()["worker_running"] is False
    async with worker_running(world):
        for _ in range(100):  # the worker takes its presence lock as it starts
            if (await world.api.get("/v1/status")).json()["worker_running"]:
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("a running worker was not seen")
    assert (await world.api.get("/v1/status")).json()["worker_running"] is False


async def test_status_sees_only_the_keys_project_and_environment(world: World) -> None:
    made = await world.api.post("/v1/consumers", {"name": "puller", "kind": "pull"})
    assert made.status_code == 201
    await world.send(user_id="a")
    mine = (await world.api.get("/v1/status")).json()["consumers"]
    assert [(c["name"], c["pending"]) for c in mine] == [("puller", 1)]
    live = await world.api.get("/v1/status", key=world.api.live_key)
    assert live.json()["consumers"] == []
    bad = await world.api.client.get("/v1/status?x=1", headers=world.api.auth())
    assert bad.status_code == 400


def test_the_backlog_query_reads_open_transactions_only_on_sqlite(tmp_path: Path) -> None:
    """Without statistics (as eventyard leaves SQLite), the grouping's order must not lead
    the planner through every transaction ever made (`transactions_due`)."""
    store = open_store(f"sqlite:///{tmp_path}/plan.db")
    try:
        db = connect(store.url, writer=False)
        for one_project in (False, True):
            sql = backlog_sql(db, one_project=one_project)
            params = [1, 1, 1, "prj", "live"][: 5 if one_project else 3]
            plan = " ".join(str(row[3]) for row in db.all("EXPLAIN QUERY PLAN " + sql, params))
            assert "transactions_open" in plan, plan
            assert "transactions_due" not in plan, plan
        db.close()
    finally:
        store.close()


def test_the_first_attempt_query_starts_from_the_consumers_transactions_on_sqlite(
    tmp_path: Path,
) -> None:
    """The lag sample walks one consumer's transactions ((consumer_id, event_id)) and reads
    their attempts by transaction id, never the window's attempts of every project."""
    store = open_store(f"sqlite:///{tmp_path}/plan.db")
    try:
        db = connect(store.url, writer=False)
        sql = first_attempts_sql(db)
        rows = db.all("EXPLAIN QUERY PLAN " + sql, ["con_x", "evt_0", "txn_0", 1, 1])
        plan = [str(row[3]) for row in rows]
        assert plan[0].startswith("SEARCH t USING INDEX sqlite_autoindex_transactions"), plan
        assert "(consumer_id=? AND event_id>?)" in plan[0], plan
        assert plan[1] == "SEARCH a USING INDEX delivery_attempts_txn (transaction_id=?)", plan
        db.close()
    finally:
        store.close()


def _rows_read(node: dict[str, Any], prefix: str) -> int:
    """Rows a plan's scans of `prefix…` tables returned or threw away, over all loops."""
    own = 0
    if str(node.get("Relation Name", "")).startswith(prefix):
        loops = int(node.get("Actual Loops", 1))
        kept = int(node["Actual Rows"]) + int(node.get("Rows Removed by Filter", 0))
        own = (kept + int(node.get("Rows Removed by Index Recheck", 0))) * loops
    return own + sum(_rows_read(child, prefix) for child in node.get("Plans", []))


@pytest.mark.postgres
def test_the_lag_sample_reads_none_of_another_projects_attempts_on_postgres(
    pg_url: str,
) -> None:
    """A small project on a busy server: its status reads its own transactions and their
    attempts, not the other project's 2,999 first attempts of the same minute."""
    store = open_store(pg_url)
    db = connect(store.url, writer=True)
    try:
        now_ms = time.time_ns() // 1_000_000
        events, txns, attempts = [], [], []
        for i in range(3003):
            ms = now_ms - 60_000 + i
            project = "prj_mine" if i % 1000 == 0 else "prj_busy"
            event, txn = ids.new_id_at("evt", ms), ids.new_id_at("txn", ms)
            events.append((event, project, "live", "t", "u", "{}", ms * 1000, ms * 1000, "api"))
            txns.append((txn, project, "live", f"con_{project}", event, "finished", 1,
                         ms * 1000, ms * 1000 + 2_000_000))  # fmt: skip
            attempts.append((txn, 1, ms * 1000 + 2_000_000, 200, 5))
        db.begin()
        with db.conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO events (id, project_id, environment, trigger_id, user_id,"
                " payload, timestamp, received_at, source)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                events,
            )
            cur.executemany(
                "INSERT INTO transactions (id, project_id, environment, consumer_id, event_id,"
                " state, attempts, created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                txns,
            )
            cur.executemany(
                "INSERT INTO delivery_attempts (transaction_id, attempt, at, status_code,"
                " duration_ms) VALUES (%s, %s, %s, %s, %s)",
                attempts,
            )
        db.commit()
        db.conn.execute("ANALYZE")
        db.commit()
        since = (now_ms - 15 * 60_000) * 1000
        hour_ago = now_ms - 60 * 60_000
        lags = first_attempt_lags(db, ["con_prj_mine"], since, hour_ago)
        assert lags == {"con_prj_mine": [2_000_000] * 4}
        sql = first_attempts_sql(db).replace("?", "%s")
        floors = (ids.lowest_id_at("evt", hour_ago), ids.lowest_id_at("txn", hour_ago))
        params = ("con_prj_mine", *floors, since, since)
        explained = db.conn.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params).fetchone()
        db.rollback()
        assert explained is not None
        plan = next(iter(explained.values()))[0]["Plan"]
        assert _rows_read(plan, "transactions") <= 4, plan
        assert _rows_read(plan, "delivery_attempts") <= 4, plan
    finally:
        db.close()
        store.close()
