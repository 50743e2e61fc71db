"""Opening connections for each backend, with the settings durability depends on.

SQLite runs in WAL mode with `synchronous=FULL`, so a commit is on disk before it returns;
PostgreSQL keeps its default `synchronous_commit=on`, which the writer connection asserts.

A database that is down or unreachable must not hang a request: PostgreSQL connections give
up after `CONNECT_TIMEOUT_S` (unless the URL sets its own `connect_timeout`), and
`UNAVAILABLE` names the errors that mean "the database cannot be used right now" — the API
answers them 503 with `Retry-After`, the worker backs off.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import unquote, urlsplit

import psycopg
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


def connect(url: str, *, writer: bool) -> Db:
    backend = backend_of(url)
    if backend == "sqlite":
        return Db(_connect_sqlite(sqlite_path(url), writer=writer), "sqlite")
    conn = psycopg.connect(with_connect_timeout(url), row_factory=dict_row, autocommit=not writer)
    if writer:
        conn.execute("SET synchronous_commit = on")
        conn.commit()
    return Db(conn, "postgres")


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
    if not writer:
        conn.execute("PRAGMA query_only = ON")
    return conn
