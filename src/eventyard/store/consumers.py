"""SQL for consumers."""

from __future__ import annotations

from typing import Any

import orjson

from eventyard.domain.models import (
    Consumer,
    ConsumerKind,
    ConsumerState,
    DisabledReason,
    Environment,
)
from eventyard.store.db import Db, Row
from eventyard.store.transactions import add_history

_COLUMNS = (
    "id, project_id, environment, name, kind, url, secret, previous_secret,"
    " previous_secret_expires_at, retry_schedule, timeout_ms, triggers, state, disabled_reason,"
    " failing_since, created_at, updated_at"
)


def _json_tuple(text: str | None) -> tuple[Any, ...] | None:
    return tuple(orjson.loads(text)) if text is not None else None


def _json_text(value: tuple[Any, ...] | None) -> str | None:
    return orjson.dumps(list(value)).decode() if value is not None else None


def consumer_from_row(row: Row) -> Consumer:
    reason = row["disabled_reason"]
    return Consumer(
        id=row["id"],
        project_id=row["project_id"],
        environment=Environment(row["environment"]),
        name=row["name"],
        kind=ConsumerKind(row["kind"]),
        url=row["url"],
        secret=row["secret"],
        previous_secret=row["previous_secret"],
        previous_secret_expires_at=row["previous_secret_expires_at"],
        retry_schedule=_json_tuple(row["retry_schedule"]),
        timeout_ms=row["timeout_ms"],
        triggers=_json_tuple(row["triggers"]),
        state=ConsumerState(row["state"]),
        disabled_reason=DisabledReason(reason) if reason else None,
        failing_since=row["failing_since"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def _values(c: Consumer) -> tuple[Any, ...]:
    return (
        c.name,
        c.url,
        c.secret,
        c.previous_secret,
        c.previous_secret_expires_at,
        _json_text(c.retry_schedule),
        c.timeout_ms,
        _json_text(c.triggers),
        c.state.value,
        c.disabled_reason.value if c.disabled_reason else None,
        c.failing_since,
        c.updated_at,
    )


# Ingest reads the consumer list inside each event's transaction. On PostgreSQL, with several
# processes, a consumer committed while an ingest transaction is between its read and its
# commit would miss that event; so ingest holds this lock shared from the read to its commit
# and every change to the consumer list holds it exclusively. On SQLite the single writer
# already serializes the two.
_CONSUMER_LIST_LOCK = 7_303_755_002


def lock_for_reading_list(db: Db) -> None:
    if db.backend == "postgres":
        db.execute("SELECT pg_advisory_xact_lock_shared(?)", (_CONSUMER_LIST_LOCK,))


def _lock_for_changing_list(db: Db) -> None:
    db.txn_memo.clear()  # a later op in this transaction must read the changed list
    if db.backend == "postgres":
        db.execute("SELECT pg_advisory_xact_lock(?)", (_CONSUMER_LIST_LOCK,))


def insert_consumer(db: Db, c: Consumer) -> None:
    _lock_for_changing_list(db)
    db.execute(
        "INSERT INTO consumers (id, project_id, environment, kind, created_at, name, url, secret,"
        " previous_secret, previous_secret_expires_at, retry_schedule, timeout_ms, triggers,"
        " state, disabled_reason, failing_since, updated_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (c.id, c.project_id, c.environment.value, c.kind.value, c.created_at, *_values(c)),
    )


def update_consumer(db: Db, c: Consumer) -> None:
    _lock_for_changing_list(db)
    db.execute(
        "UPDATE consumers SET name = ?, url = ?, secret = ?, previous_secret = ?,"
        " previous_secret_expires_at = ?, retry_schedule = ?, timeout_ms = ?, triggers = ?,"
        " state = ?, disabled_reason = ?, failing_since = ?, updated_at = ?"
        " WHERE id = ? AND deleted_at IS NULL",
        (*_values(c), c.id),
    )


def get_consumer(
    db: Db, project_id: str, environment: Environment, consumer_id: str
) -> Consumer | None:
    row = db.one(
        f"SELECT {_COLUMNS} FROM consumers WHERE id = ? AND project_id = ? AND environment = ?"
        " AND deleted_at IS NULL",
        (consumer_id, project_id, environment.value),
    )
    return consumer_from_row(row) if row else None


def get_consumer_by_name(
    db: Db, project_id: str, environment: Environment, name: str
) -> Consumer | None:
    row = db.one(
        f"SELECT {_COLUMNS} FROM consumers WHERE name = ? AND project_id = ? AND environment = ?"
        " AND deleted_at IS NULL ORDER BY created_at LIMIT 1",
        (name, project_id, environment.value),
    )
    return consumer_from_row(row) if row else None


def get_or_insert_consumer_by_name(db: Db, c: Consumer) -> Consumer:
    """The live consumer named `c.name` in its project and environment, else `c`, inserted.

    Under the consumer-list lock, so two first uses of one name make a single consumer.
    """
    _lock_for_changing_list(db)
    existing = get_consumer_by_name(db, c.project_id, c.environment, c.name)
    if existing is not None:
        return existing
    insert_consumer(db, c)
    return c


def list_consumers(db: Db, project_id: str, environment: Environment) -> list[Consumer]:
    rows = db.all(
        f"SELECT {_COLUMNS} FROM consumers WHERE project_id = ? AND environment = ?"
        " AND deleted_at IS NULL ORDER BY created_at, id",
        (project_id, environment.value),
    )
    return [consumer_from_row(r) for r in rows]


def consumers_taking_events(db: Db, project_id: str, environment: Environment) -> list[Consumer]:
    """The consumers a new event of this project and environment makes transactions for.

    Read once per database transaction: the ops of one commit group share it. On PostgreSQL
    the shared lock taken with the first read is held to the commit, so no other process can
    change the list meanwhile; a change in this transaction clears the memo.
    """
    key = ("consumers_taking_events", project_id, environment)
    memo: list[Consumer] | None = db.txn_memo.get(key)
    if memo is None:
        lock_for_reading_list(db)
        memo = [c for c in list_consumers(db, project_id, environment) if c.receives_transactions]
        db.txn_memo[key] = memo
    return memo


def webhook_consumers_to_deliver(db: Db) -> list[Consumer]:
    """Every enabled webhook consumer, across projects: the worker's round."""
    rows = db.all(
        f"SELECT {_COLUMNS} FROM consumers WHERE kind = 'webhook' AND state = 'enabled'"
        " AND deleted_at IS NULL ORDER BY id",
    )
    return [consumer_from_row(r) for r in rows]


def delete_consumer(db: Db, consumer_id: str, now: int, by: str) -> None:
    _lock_for_changing_list(db)
    db.execute(
        "UPDATE consumers SET deleted_at = ?, updated_at = ? WHERE id = ?", (now, now, consumer_id)
    )
    # Its open transactions will never be worked on: close them, keeping the record, and
    # log the step in each one's history like any other change of state.
    open_ = db.all(
        "SELECT id, state FROM transactions"
        " WHERE consumer_id = ? AND state NOT IN ('finished', 'failed')",
        (consumer_id,),
    )
    db.execute(
        "UPDATE transactions SET state = 'failed', lease_expires_at = NULL, updated_at = ?"
        " WHERE consumer_id = ? AND state NOT IN ('finished', 'failed')",
        (now, consumer_id),
    )
    add_history(db, ((r["id"], r["state"], "failed", now, by) for r in open_))


def mark_failing(db: Db, consumer_id: str, now: int, disable_after_us: int) -> bool:
    """Record a failed attempt; disable the consumer once it has failed long enough.

    Returns True when this call disabled it.
    """
    db.execute(
        "UPDATE consumers SET failing_since = ? WHERE id = ? AND failing_since IS NULL",
        (now, consumer_id),
    )
    cursor = db.execute(
        "UPDATE consumers SET state = 'disabled', disabled_reason = 'failing', updated_at = ?"
        " WHERE id = ? AND state = 'enabled' AND failing_since <= ?",
        (now, consumer_id, now - disable_after_us),
    )
    return cursor.rowcount == 1


def mark_healthy(db: Db, consumer_id: str) -> None:
    db.execute(
        "UPDATE consumers SET failing_since = NULL WHERE id = ? AND failing_since IS NOT NULL",
        (consumer_id,),
    )


def disable_gone(db: Db, consumer_id: str, now: int) -> None:
    db.execute(
        "UPDATE consumers SET state = 'disabled', disabled_reason = 'gone', updated_at = ?"
        " WHERE id = ? AND state = 'enabled'",
        (now, consumer_id),
    )
