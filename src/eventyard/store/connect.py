"""Opening connections for each backend, with the settings durability depends on.

SQLite runs in WAL mode with `synchronous=FULL`, so a commit is on disk before it returns;
PostgreSQL keeps its default `synchronous_commit=on`, which the writer connection asserts.

A database that is down or unreachable must not hang a request: PostgreSQL connections give
up after `CONNECT_TIMEOUT_S` (unless the URL sets its own `connect_timeout`), and
`UNAVAILABLE` names the errors that mean "the database cannot be used right now" — the API
answers them 503 with `Retry-After`, the worker backs off.

Each PostgreSQL connection names its role in `application_name` (`eventyard-write`,
`eventyard-read`, `eventyard-listen`, ...), unless the URL sets its own, so an operator can
count a process's connections by role in `pg_stat_activity` (docs/deploy.md lists them).
`prepare=False` turns psycopg's server-side prepared statements off, for a pooler in
transaction mode that cannot keep them (PgBouncer before 1.21). `connect_session` opens the
autocommit connections that need a session of their own: LISTEN and advisory locks.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.rows import dict_row

from eventyard.store.db import Backend, DatabaseTimeout, Db

CONNECT_TIMEOUT_S = 5
# Down, unreachable, restarting, out of disk or read-only, or hanging past the deadline:
# errors a retry later may not get.
UNAVAILABLE: tuple[type[Exception], ...] = (
    sqlite3.OperationalError,
    psycopg.OperationalError,
    DatabaseTimeout,
)


def backend_of(url: str) -> Backend:
    if url.startswith("sqlite:"):
        return "sqlite"
    if url.startswith(("postgresql://", "postgres://")):
        return "postgres"
    raise ValueError(f"unsupported database URL {url!r}: use sqlite:///FILE or postgresql://")


def sqlite_path(url: str) -> str:
    """`sqlite:///./eventyard.db` → `./eventyard.db`; `sqlite:////abs/x.db` → `/abs/x.db`."""
    rest = url[len("sqlite:") :]
    if rest.startswith("///"):
        rest = rest[3:]
    elif rest.startswith("//"):
        rest = rest[2:]
    path = unquote(urlsplit("file:" + rest).path) if "?" in rest else rest
    if not path:
        raise ValueError(f"no file in database URL {url!r}")
    return path


PREPARE_THRESHOLD = 5  # psycopg's default: a statement run this often is prepared


def connect(url: str, *, writer: bool, role: str | None = None, prepare: bool = True) -> Db:
    backend = backend_of(url)
    if backend == "sqlite":
        return Db(_connect_sqlite(sqlite_path(url), writer=writer), "sqlite")
    conn = psycopg.connect(
        _named(url, role or ("eventyard-write" if writer else "eventyard-read")),
        row_factory=dict_row,
        autocommit=not writer,
        prepare_threshold=PREPARE_THRESHOLD if prepare else None,
    )
    if writer:
        conn.execute("SET synchronous_commit = on")
        conn.commit()
    return Db(conn, "postgres")


def connect_session(url: str, role: str) -> psycopg.Connection[tuple[Any, ...]]:
    """An autocommit PostgreSQL connection for what needs a session (LISTEN, a session
    advisory lock): behind PgBouncer, `url` must reach PostgreSQL directly or through a
    pool in session mode (EVENTYARD_DATABASE_SESSION_URL)."""
    return psycopg.connect(_named(url, role), autocommit=True)


def _named(url: str, role: str) -> str:
    """The URL with a connect timeout and `application_name`, unless it sets them itself."""
    url = with_connect_timeout(url)
    if "application_name=" in url:
        return url
    return make_conninfo(url, application_name=role)


def with_connect_timeout(url: str) -> str:
    """A PostgreSQL URL with `connect_timeout=CONNECT_TIMEOUT_S`, unless it sets one."""
    if "connect_timeout=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}connect_timeout={CONNECT_TIMEOUT_S}"


def _connect_sqlite(path: str, *, writer: bool) -> sqlite3.Connection:
    if path != ":memory:":
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=10.0)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA busy_timeout = 10000")
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("PRAGMA foreign_keys = ON")
    # Deleted content is overwritten, not left in free pages (and so in backups): an
    # erasure or expiry removes the payload from the file, whatever SQLite's build default.
    conn.execute("PRAGMA secure_delete = ON")
    if not writer:
        conn.execute("PRAGMA query_only = ON")
    return conn
