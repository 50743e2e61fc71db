"""A thin, backend-neutral face over one database connection.

Queries are written once, with `?` placeholders, in SQL that SQLite and PostgreSQL both
understand; `Db` rewrites the placeholders for psycopg (`%s`). Rows come back as mappings
on both backends (`sqlite3.Row`, psycopg's `dict_row`), read by column name.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, Protocol

from eventyard.errors import ServiceUnavailable

if TYPE_CHECKING:
    from eventyard.store.commit_notices import CommitNotices


class DatabaseTimeout(ServiceUnavailable):
    """The database did not answer within `Store.deadline_seconds`: it hangs rather than
    refuses (a frozen server, a network that drops packets). A write may still be applied
    once it answers, so the message says so; retrying with the idempotency key is safe."""

    def __init__(self, seconds: float) -> None:
        super().__init__(
            f"The database did not answer within {seconds:g} s (database_timeout_seconds); "
            "the request may or may not have been applied. Retry after a few seconds; "
            "retrying with the same idempotency key is safe.",
            headers={"Retry-After": "5"},
        )


Backend = Literal["sqlite", "postgres"]
Row = Mapping[str, Any]


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def execute(self, sql: Any, params: Any = ..., /) -> Any: ...

    def commit(self) -> None: ...

    def rollback(self) -> None: ...

    def close(self) -> None: ...


@functools.lru_cache(maxsize=512)
def _to_pyformat(sql: str) -> str:
    return sql.replace("%", "%%").replace("?", "%s")


class Db:
    def __init__(self, conn: Any, backend: Backend) -> None:
        self.conn = conn
        self.backend: Backend = backend
        self._postgres = backend == "postgres"
        # Facts read once per database transaction and shared by the ops of a commit group
        # (the consumer list); cleared whenever a transaction begins or ends.
        self.txn_memo: dict[Any, Any] = {}
        # The writer's connection: NOTIFYs gathered and sent for many commits at once
        # (store/commit_notices.py). None elsewhere: an op notifies in its own transaction.
        self.notices: CommitNotices | None = None

    def _sql(self, sql: str) -> str:
        return _to_pyformat(sql) if self._postgres else sql

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cursor: Cursor = self.conn.execute(self._sql(sql), params)
        return cursor

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        cursor = self.conn.cursor()
        try:
            cursor.executemany(self._sql(sql), rows)
        finally:
            cursor.close()

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        row: Row | None = self.execute(sql, params).fetchone()
        return row

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        return list(self.execute(sql, params).fetchall())

    def all_planned_afresh(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """`all`, but on PostgreSQL never as a prepared statement, so it is planned for the
        tables as they are now. A prepared statement may settle on a generic plan made while
        a table was small (and not yet analysed) and keep it as the table grows: a batch
        joined to `transactions` by id went on scanning the whole table — 50 ms a batch of
        100 at 44,000 rows, a tenth of the delivery rate. For statements whose best plan
        depends on table sizes; planning costs well under a millisecond."""
        if not self._postgres:
            return self.all(sql, params)
        return list(self.conn.execute(self._sql(sql), params, prepare=False).fetchall())

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        row = self.execute(sql, params).fetchone()
        if row is None:
            return None
        return next(iter(row.values())) if isinstance(row, dict) else row[0]

    @contextlib.contextmanager
    def pipeline(self) -> Iterator[None]:
        """On PostgreSQL, send the statements of the block without waiting for each answer:
        they go in one round trip, at the block's end or at the first fetch of a result
        (errors are raised there). On SQLite, which has no round trips, statements run as
        usual."""
        if self._postgres:
            with self.conn.pipeline():
                yield
        else:
            yield

    def begin(self) -> None:
        self.txn_memo.clear()
        if not self._postgres:
            self.conn.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        self.txn_memo.clear()
        self.conn.commit() if self._postgres else self.conn.execute("COMMIT")

    def rollback(self) -> None:
        self.txn_memo.clear()
        if self._postgres:
            self.conn.rollback()
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()
