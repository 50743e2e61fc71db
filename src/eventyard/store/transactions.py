"""SQL for transactions: one consumer's processing of one event, with its history.

Transactions are created in the same database transaction as their event
(`create_for_events`, called by `insert_events`), so no committed event can lack the
transaction of a consumer that existed when it was stored. Claims are `UPDATE ... WHERE id
IN (SELECT ... LIMIT n)` with `FOR UPDATE SKIP LOCKED` on PostgreSQL, so several workers or
pull clients never claim the same transaction; on SQLite the single writer serializes them.
Every change of state appends a row to `transaction_history`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import orjson

from eventyard import ids
from eventyard.domain.models import (
    Attempt,
    Consumer,
    Environment,
    Event,
    HistoryEntry,
    Transaction,
)
from eventyard.store.db import Db, Row
from eventyard.store.event_rows import EVENT_COLUMNS, event_from_row

_COLUMNS = (
    "id, project_id, environment, consumer_id, event_id, state, output, attempts,"
    " schedule_index, next_attempt_at, lease_expires_at, created_at, updated_at"
)
_T_COLUMNS = ", ".join(f"t.{c.strip()}" for c in _COLUMNS.split(","))
_UNSET = object()
_EVENT_NAMES = [c.strip() for c in EVENT_COLUMNS.split(",")]
_EVENT_ALIASED = ", ".join(f"e.{c} AS e_{c}" for c in _EVENT_NAMES)


def _transaction(
    row: Row, history: Sequence[HistoryEntry] = (), attempts: Sequence[Attempt] = ()
) -> Transaction:
    output = row["output"]
    return Transaction(
        id=row["id"],
        project_id=row["project_id"],
        environment=Environment(row["environment"]),
        consumer_id=row["consumer_id"],
        event_id=row["event_id"],
        state=row["state"],
        output=orjson.loads(output) if output is not None else None,
        attempts=row["attempts"],
        schedule_index=row["schedule_index"],
        next_attempt_at=row["next_attempt_at"],
        lease_expires_at=row["lease_expires_at"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        history=tuple(history),
        delivery_attempts=tuple(attempts),
    )


def add_history(db: Db, entries: Iterable[tuple[str, str | None, str, int, str]]) -> None:
    """Append (transaction id, exit state, enter state, at, by) rows."""
    db.executemany(
        "INSERT INTO transaction_history (transaction_id, exit_state, enter_state, at, actor)"
        " VALUES (?, ?, ?, ?, ?)",
        list(entries),
    )


def create_for_events(
    db: Db,
    project_id: str,
    environment: Environment,
    events: Sequence[tuple[str, str]],
    consumers: Sequence[Consumer],
    now: int,
    by: str,
    default_first_delay_us: int = 0,
    *,
    received: Sequence[int] | None = None,
) -> int:
    """A pending transaction for each (event id, trigger) and matching consumer; their count.

    Each is made at `now`, or at its event's own time in `received` (one per event) when
    given: the events of several requests stored together each keep their request's time.
    A webhook transaction is first due after its schedule's first delay: the consumer's own
    schedule, else the server's (`default_first_delay_us`).
    """
    times = received if received is not None else [now] * len(events)
    rows: list[tuple[Any, ...]] = []
    for consumer in consumers:
        schedule = consumer.retry_schedule
        delay = schedule[0] * 1_000_000 if schedule else default_first_delay_us
        for (event_id, trigger), at in zip(events, times, strict=True):
            if consumer.wants(trigger):
                rows.append(
                    (
                        ids.new_id_at("txn", ids.ms_of(event_id)),
                        project_id,
                        environment.value,
                        consumer.id,
                        event_id,
                        "pending",
                        at + delay,
                        at,
                        at,
                    )
                )
    insert = (
        "INSERT INTO transactions (id, project_id, environment, consumer_id, event_id, state,"
        " next_attempt_at, created_at, updated_at) VALUES "
    )
    if db.backend == "sqlite" and rows:
        db.executemany(insert + "(?, ?, ?, ?, ?, ?, ?, ?, ?)", rows)
        add_history(db, ((r[0], None, "pending", r[7], by) for r in rows))
    if db.backend == "postgres" and rows:
        # The transactions and their history in one statement of fixed text, whatever the
        # number of rows (one array a column): one round trip, parsed and planned once.
        columns = [[row[i] for row in rows] for i in range(9)]
        arrays = ", ".join(f"?::{t}[]" for t in ("text",) * 6 + ("bigint",) * 3)
        db.execute(
            f"WITH made AS ({insert.removesuffix(' VALUES ')} SELECT * FROM unnest({arrays})"
            " RETURNING id, created_at) INSERT INTO transaction_history (transaction_id,"
            " exit_state, enter_state, at, actor) SELECT id, NULL, 'pending', created_at, ?"
            " FROM made",
            [*columns, by],
        )
    return len(rows)


def _details(
    db: Db, txn_ids: Sequence[str]
) -> tuple[dict[str, list[HistoryEntry]], dict[str, list[Attempt]]]:
    history: dict[str, list[HistoryEntry]] = {t: [] for t in txn_ids}
    attempts: dict[str, list[Attempt]] = {t: [] for t in txn_ids}
    if not txn_ids:
        return history, attempts
    marks = ", ".join("?" for _ in txn_ids)
    for r in db.all(
        "SELECT transaction_id, exit_state, enter_state, at, actor FROM transaction_history"
        f" WHERE transaction_id IN ({marks}) ORDER BY id",
        list(txn_ids),
    ):
        history[r["transaction_id"]].append(
            HistoryEntry(r["exit_state"], r["enter_state"], r["at"], r["actor"])
        )
    for r in db.all(
        "SELECT transaction_id, attempt, at, status_code, duration_ms, response_excerpt, error"
        f" FROM delivery_attempts WHERE transaction_id IN ({marks}) ORDER BY id",
        list(txn_ids),
    ):
        attempts[r["transaction_id"]].append(
            Attempt(
                r["attempt"],
                r["at"],
                r["status_code"],
                r["duration_ms"],
                r["response_excerpt"],
                r["error"],
            )
        )
    return history, attempts


def _with_details(db: Db, rows: list[Row]) -> list[Transaction]:
    history, attempts = _details(db, [r["id"] for r in rows])
    return [_transaction(r, history[r["id"]], attempts[r["id"]]) for r in rows]


def get_transaction(
    db: Db, project_id: str, environment: Environment, txn_id: str
) -> Transaction | None:
    row = db.one(
        f"SELECT {_COLUMNS} FROM transactions WHERE id = ? AND project_id = ? AND environment = ?",
        (txn_id, project_id, environment.value),
    )
    return _with_details(db, [row])[0] if row else None


def transactions_of_event(db: Db, event_id: str) -> list[Transaction]:
    rows = db.all(
        f"SELECT {_COLUMNS} FROM transactions WHERE event_id = ? ORDER BY created_at, id",
        (event_id,),
    )
    return _with_details(db, rows)


def transactions_of_events(db: Db, event_ids: Sequence[str]) -> dict[str, list[Transaction]]:
    """The transactions of each of these events (a page of them), oldest first."""
    out: dict[str, list[Transaction]] = {e: [] for e in event_ids}
    if not event_ids:
        return out
    marks = ", ".join("?" for _ in event_ids)
    rows = db.all(
        f"SELECT {_COLUMNS} FROM transactions WHERE event_id IN ({marks}) ORDER BY created_at, id",
        list(event_ids),
    )
    for txn in _with_details(db, rows):
        out[txn.event_id].append(txn)
    return out


def ensure_transaction(
    db: Db, consumer: Consumer, event_id: str, trigger: str, now: int, by: str
) -> Transaction | None:
    """The consumer's transaction for the event, created pending if missing (a consumer
    made after the event); None when the consumer's filter does not take the trigger."""
    txn = transaction_for(db, consumer.id, event_id)
    if txn is None:
        if not consumer.wants(trigger):
            return None
        # Two first uses at once (two processes) may race here: the loser inserts nothing.
        created = db.all(
            "INSERT INTO transactions (id, project_id, environment, consumer_id, event_id, state,"
            " next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?, ?)"
            " ON CONFLICT (consumer_id, event_id) DO NOTHING RETURNING id",
            (
                ids.new_id_at("txn", ids.ms_of(event_id)),
                consumer.project_id,
                consumer.environment.value,
                consumer.id,
                event_id,
                now,
                now,
                now,
            ),
        )
        add_history(db, ((r["id"], None, "pending", now, by) for r in created))
        txn = transaction_for(db, consumer.id, event_id)
    return txn


def transaction_for(db: Db, consumer_id: str, event_id: str) -> Transaction | None:
    row = db.one(
        f"SELECT {_COLUMNS} FROM transactions WHERE consumer_id = ? AND event_id = ?",
        (consumer_id, event_id),
    )
    return _with_details(db, [row])[0] if row else None


def list_transactions(
    db: Db, consumer_id: str, state: str | None, after: str | None, limit: int
) -> list[Transaction]:
    where, params = ["consumer_id = ?"], [consumer_id]
    if state is not None:
        where.append("state = ?")
        params.append(state)
    if after is not None:
        where.append("id < ?")
        params.append(after)
    rows = db.all(
        f"SELECT {_COLUMNS} FROM transactions WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",
        [*params, limit],
    )
    return _with_details(db, rows)


def _events_by_id(db: Db, event_ids: Sequence[str]) -> dict[str, Event]:
    if not event_ids:
        return {}
    marks = ", ".join("?" for _ in event_ids)
    rows = db.all(f"SELECT {EVENT_COLUMNS} FROM events WHERE id IN ({marks})", list(event_ids))
    return {r["id"]: event_from_row(r) for r in rows}


def _claim(
    db: Db,
    consumer_id: str,
    set_sql: str,
    set_params: Sequence[Any],
    where_sql: str,
    where_params: Sequence[Any],
    limit: int,
) -> list[tuple[Transaction, Event]]:
    choose = (
        f"SELECT id FROM transactions WHERE consumer_id = ? AND {where_sql}"
        " ORDER BY next_attempt_at, id LIMIT ?"
    )
    if db.backend == "postgres":
        # Transactions are partitioned by event id (store/partitions.py), and a statement
        # whose partitions are known only as it runs is planned over all of them. So the
        # claim locks its rows first, then updates them by (id, event_id) within their
        # events' span, given as values: that statement is planned over the partitions
        # they are in, and returns the claimed rows joined to their events (the events'
        # columns under an `e_` prefix). At 60 daily ranges a claim of 100 took 8 ms so,
        # 13 ms in one statement (bench/partitions.py).
        chosen = db.all_planned_afresh(
            choose.replace("SELECT id FROM", "SELECT id, event_id FROM", 1)
            + " FOR UPDATE SKIP LOCKED",
            [consumer_id, *where_params, limit],
        )
        if not chosen:
            return []
        low = min(r["event_id"] for r in chosen)
        high = max(r["event_id"] for r in chosen)
        rows = db.all_planned_afresh(
            f"WITH c AS (UPDATE transactions t SET {set_sql}"
            " FROM unnest(?::text[], ?::text[]) AS v(id, event_id)"
            " WHERE t.id = v.id AND t.event_id = v.event_id AND t.event_id BETWEEN ? AND ?"
            f" RETURNING {_T_COLUMNS}) SELECT c.*, {_EVENT_ALIASED} FROM c"
            " JOIN events e ON e.id = c.event_id AND e.id BETWEEN ? AND ?",
            [
                *set_params,
                [r["id"] for r in chosen],
                [r["event_id"] for r in chosen],
                low,
                high,
                low,
                high,
            ],
        )
        events = {
            r["event_id"]: event_from_row({c: r[f"e_{c}"] for c in _EVENT_NAMES}) for r in rows
        }
    else:
        rows = db.all(
            f"UPDATE transactions SET {set_sql} WHERE id IN ({choose}) RETURNING {_COLUMNS}",
            [*set_params, consumer_id, *where_params, limit],
        )
        events = _events_by_id(db, [r["event_id"] for r in rows])
    rows.sort(key=lambda r: (r["next_attempt_at"] or 0, r["id"]))
    return [(_transaction(r), events[r["event_id"]]) for r in rows if r["event_id"] in events]


def claim_due_webhooks(
    db: Db, consumer_id: str, now: int, lease_until: int, limit: int
) -> list[tuple[Transaction, Event]]:
    """Lease up to `limit` due deliveries; the state stays `pending` until the outcome."""
    return _claim(
        db,
        consumer_id,
        "lease_expires_at = ?",
        [lease_until],
        "state = 'pending' AND next_attempt_at <= ?"
        " AND (lease_expires_at IS NULL OR lease_expires_at <= ?)",
        [now, now],
        limit,
    )


def release_leases(db: Db, leases: Sequence[tuple[str, int]]) -> None:
    """Give back leased deliveries that were not attempted, each (id, its lease): due again
    at once, for any worker. One whose lease has changed since (taken again after it ran
    out) is left alone."""
    db.executemany(
        "UPDATE transactions SET lease_expires_at = NULL"
        " WHERE id = ? AND lease_expires_at = ? AND state = 'pending'",
        list(leases),
    )


def claim_pending(
    db: Db, consumer_id: str, now: int, lease_until: int, limit: int, by: str
) -> list[tuple[Transaction, Event]]:
    """A pull consumer claims up to `limit` pending transactions: they become `processing`."""
    claimed = _claim(
        db,
        consumer_id,
        "state = 'processing', lease_expires_at = ?, updated_at = ?",
        [lease_until, now],
        "state = 'pending'",
        [],
        limit,
    )
    add_history(db, ((t.id, "pending", "processing", now, by) for t, _ in claimed))
    # Answer with each one's history (and attempts), as reading it would show it.
    history, attempts = _details(db, [t.id for t, _ in claimed])
    return [
        (replace(t, history=tuple(history[t.id]), delivery_attempts=tuple(attempts[t.id])), e)
        for t, e in claimed
    ]


@dataclass(frozen=True)
class AttemptRecord:
    """One webhook attempt to store, and its consequence: `finished`, `failed`, or
    `pending` again at `next_attempt_at`."""

    txn: Transaction
    now: int
    status_code: int | None
    duration_ms: int
    response_excerpt: str | None
    error: str | None
    outcome: str
    next_attempt_at: int | None


def record_attempts(db: Db, records: Sequence[AttemptRecord]) -> list[bool]:
    """Store attempts and their consequences, a few statements for all of them; for each,
    whether it was recorded.

    One that is no longer pending (an operator acted on it while the attempt was in flight)
    changes nothing and gets False. SQLite's writer holds the database, so reading which are
    still pending and then changing them is safe there; PostgreSQL does it all in one
    statement, whose UPDATE checks each row's state under the row's lock.
    """
    if not records:
        return []
    if db.backend == "postgres":
        return _record_attempts_postgres(db, records)
    ids = [r.txn.id for r in records]
    marks = ", ".join("?" for _ in ids)
    pending = {
        row["id"]
        for row in db.all(
            f"SELECT id FROM transactions WHERE id IN ({marks}) AND state = 'pending'", ids
        )
    }
    kept = [r for r in records if r.txn.id in pending]
    again = [
        (r.txn.attempts + 1, r.next_attempt_at, r.now, r.txn.id)
        for r in kept
        if r.outcome == "pending"
    ]
    ended = [
        (r.txn.attempts + 1, r.outcome, r.now, r.txn.id) for r in kept if r.outcome != "pending"
    ]
    if again:
        db.executemany(
            "UPDATE transactions SET attempts = ?, schedule_index = schedule_index + 1,"
            " next_attempt_at = ?, lease_expires_at = NULL, updated_at = ?"
            " WHERE id = ? AND state = 'pending'",
            again,
        )
    if ended:
        db.executemany(
            "UPDATE transactions SET attempts = ?, state = ?, next_attempt_at = NULL,"
            " lease_expires_at = NULL, updated_at = ? WHERE id = ? AND state = 'pending'",
            ended,
        )
    if kept:
        db.executemany(
            "INSERT INTO delivery_attempts (transaction_id, attempt, at, status_code,"
            " duration_ms, response_excerpt, error) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.txn.id,
                    r.txn.attempts + 1,
                    r.now,
                    r.status_code,
                    r.duration_ms,
                    r.response_excerpt,
                    r.error,
                )
                for r in kept
            ],
        )
    add_history(
        db,
        ((r.txn.id, "pending", r.outcome, r.now, "worker") for r in kept if r.outcome != "pending"),
    )
    return [r.txn.id in pending for r in records]


# One statement of fixed text for a whole batch (one array a column): the transactions still
# pending (found by id and event id, within the events' span) are updated — the UPDATE
# re-checks each row's state under its lock — and only those get their attempt and, when it
# ended them, their history row. One round trip.
_RECORD_POSTGRES = (
    "WITH v AS (SELECT * FROM unnest(?::text[], ?::bigint[], ?::text[], ?::bigint[],"
    " ?::bigint[], ?::bigint[], ?::bigint[], ?::text[], ?::text[], ?::text[])"
    " AS v(id, attempt, outcome, next_at, at, status_code, duration_ms, excerpt, error,"
    " event_id)),"
    " done AS (UPDATE transactions t SET attempts = v.attempt,"
    " state = CASE WHEN v.outcome = 'pending' THEN t.state ELSE v.outcome END,"
    " schedule_index = t.schedule_index + CASE WHEN v.outcome = 'pending' THEN 1 ELSE 0 END,"
    " next_attempt_at = CASE WHEN v.outcome = 'pending' THEN v.next_at END,"
    " lease_expires_at = NULL, updated_at = v.at"
    " FROM v WHERE t.id = v.id AND t.event_id = v.event_id AND t.event_id BETWEEN ? AND ?"
    " AND t.state = 'pending' RETURNING t.id),"
    " attempts AS (INSERT INTO delivery_attempts (transaction_id, attempt, at, status_code,"
    " duration_ms, response_excerpt, error) SELECT v.id, v.attempt, v.at, v.status_code,"
    " v.duration_ms, v.excerpt, v.error FROM v JOIN done ON done.id = v.id),"
    " history AS (INSERT INTO transaction_history (transaction_id, exit_state, enter_state,"
    " at, actor) SELECT v.id, 'pending', v.outcome, v.at, 'worker' FROM v"
    " JOIN done ON done.id = v.id WHERE v.outcome <> 'pending')"
    " SELECT id FROM done"
)


def _record_attempts_postgres(db: Db, records: Sequence[AttemptRecord]) -> list[bool]:
    event_ids = [r.txn.event_id for r in records]
    columns = [
        [r.txn.id for r in records],
        [r.txn.attempts + 1 for r in records],
        [r.outcome for r in records],
        [r.next_attempt_at for r in records],
        [r.now for r in records],
        [r.status_code for r in records],
        [r.duration_ms for r in records],
        [r.response_excerpt for r in records],
        [r.error for r in records],
        event_ids,
    ]
    # The events' span, as values: the statement is planned over the partitions of these
    # transactions only (store/partitions.py).
    span = [min(event_ids), max(event_ids)]
    done = {row["id"] for row in db.all_planned_afresh(_RECORD_POSTGRES, [*columns, *span])}
    return [r.txn.id in done for r in records]


def record_attempt(
    db: Db,
    txn: Transaction,
    *,
    now: int,
    status_code: int | None,
    duration_ms: int,
    response_excerpt: str | None,
    error: str | None,
    outcome: str,
    next_attempt_at: int | None,
) -> bool:
    """Store one attempt (see `record_attempts`); False when it was no longer pending."""
    record = AttemptRecord(
        txn, now, status_code, duration_ms, response_excerpt, error, outcome, next_attempt_at
    )
    return record_attempts(db, [record])[0]


def set_state(
    db: Db,
    txn: Transaction,
    state: str,
    *,
    now: int,
    by: str,
    output: Any = _UNSET,
    lease_until: int | None = None,
) -> bool:
    """Move a transaction to `state` (recording output, if given) and log the step.

    Only from the state `txn` was read in: returns False (and changes nothing) when another
    report, a lease expiry or an operator changed it meanwhile.
    """
    sets = ["state = ?", "updated_at = ?", "lease_expires_at = ?"]
    params: list[Any] = [state, now, lease_until]
    if state == "pending":
        sets.append("next_attempt_at = ?")
        params.append(now)
    if output is not _UNSET:
        sets.append("output = ?")
        params.append(orjson.dumps(output).decode() if output is not None else None)
    # By event id too: on PostgreSQL that names the one partition to look in.
    cursor = db.execute(
        f"UPDATE transactions SET {', '.join(sets)} WHERE id = ? AND event_id = ? AND state = ?",
        [*params, txn.id, txn.event_id, txn.state],
    )
    if cursor.rowcount != 1:
        return False
    if state != txn.state:
        add_history(db, [(txn.id, txn.state, state, now, by)])
    return True


def retry(db: Db, txn: Transaction, now: int, by: str) -> None:
    """Back to `pending`, due now, with a fresh retry schedule."""
    db.execute(
        "UPDATE transactions SET state = 'pending', schedule_index = 0, next_attempt_at = ?,"
        " lease_expires_at = NULL, updated_at = ? WHERE id = ? AND event_id = ?",
        (now, now, txn.id, txn.event_id),
    )
    add_history(db, [(txn.id, txn.state, "pending", now, by)])


def replay(
    db: Db, consumer: Consumer, since: int, only_failed: bool, now: int, by: str
) -> dict[str, int]:
    """Queue a consumer's events (event time ≥ since) again; create missing transactions.
    Only finished and failed transactions are queued again: one in a state of the consumer's
    own (`shipping`) is work still under way, like `pending` and `processing`."""
    rows = db.all(
        f"SELECT {_COLUMNS} FROM transactions WHERE consumer_id = ? AND event_id IN"
        " (SELECT id FROM events WHERE project_id = ? AND environment = ? AND timestamp >= ?)"
        " AND state IN ('finished', 'failed')",
        (consumer.id, consumer.project_id, consumer.environment.value, since),
    )
    requeued = 0
    for row in rows:
        txn = _transaction(row)
        if only_failed and txn.state != "failed":
            continue
        retry(db, txn, now, by)
        requeued += 1
    created = 0
    if not only_failed:
        missing = db.all(
            f"SELECT {EVENT_COLUMNS} FROM events e WHERE project_id = ? AND environment = ?"
            " AND timestamp >= ? AND NOT EXISTS (SELECT 1 FROM transactions t"
            " WHERE t.consumer_id = ? AND t.event_id = e.id)",
            (consumer.project_id, consumer.environment.value, since, consumer.id),
        )
        created = create_for_events(
            db,
            consumer.project_id,
            consumer.environment,
            [(r["id"], r["trigger_id"]) for r in missing],
            [consumer],
            now,
            by,
        )
    return {"requeued": requeued, "created": created}


def release_expired_leases(db: Db, now: int) -> int:
    """Claims whose lease ran out go back to `pending` (pull consumers' `processing` ones)."""
    rows = db.all(
        "UPDATE transactions SET state = 'pending', lease_expires_at = NULL, next_attempt_at = ?,"
        " updated_at = ? WHERE state = 'processing' AND lease_expires_at <= ? RETURNING id",
        (now, now, now),
    )
    add_history(db, ((r["id"], "processing", "pending", now, "worker") for r in rows))
    return len(rows)


def release_all_webhook_leases(db: Db) -> int:
    """Give back every leased webhook delivery (due again at once): for a worker that knows
    no other worker is alive, so every lease left belongs to one that died."""
    # By consumer and state, so the index on (consumer_id, state, ...) skips finished rows.
    cursor = db.execute(
        "UPDATE transactions SET lease_expires_at = NULL"
        " WHERE consumer_id IN (SELECT id FROM consumers WHERE kind = 'webhook')"
        " AND state = 'pending' AND lease_expires_at IS NOT NULL"
    )
    return cursor.rowcount


def next_due_at(db: Db, consumer_ids: Sequence[str]) -> int | None:
    """When the next of these consumers' deliveries can be claimed.

    A leased delivery (an attempt in flight) is claimable only once its lease runs out, not
    at its past `next_attempt_at`: counting that would have the worker wake at once, again
    and again, for as long as the attempt lasts.
    """
    if not consumer_ids:
        return None
    marks = ", ".join("?" for _ in consumer_ids)
    value = db.scalar(
        "SELECT MIN(CASE WHEN lease_expires_at > next_attempt_at THEN lease_expires_at"
        " ELSE next_attempt_at END) AS due FROM transactions WHERE state = 'pending'"
        f" AND consumer_id IN ({marks})",
        list(consumer_ids),
    )
    return int(value) if value is not None else None
