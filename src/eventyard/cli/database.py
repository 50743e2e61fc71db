"""What the commands that work on the database directly share: the `--database-url`
option, settings read the way the server reads them, and running one piece of async work on
a store that is opened and closed around it.

They use the same settings as the server (`--database-url` or `EVENTYARD_DATABASE_URL`, else
`./eventyard.db`), so `eventyard init` and a later `eventyard serve` in the same directory
share one database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from eventyard.errors import EventyardError
from eventyard.settings import Settings, SettingsError
from eventyard.store import Store
from eventyard.store.connect import backend_of, sqlite_path

T = TypeVar("T")

DB_OPTION = click.option(
    "--database-url",
    default=None,
    help="sqlite:///FILE or postgresql://user@host:port/db (default: EVENTYARD_DATABASE_URL, "
    "else sqlite:///./eventyard.db).",
)


def settings_from_env(**overrides: Any) -> Settings:
    try:
        return Settings.from_env(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from None


def store_for(settings: Settings, *, read_connections: int | None = None) -> Store:
    """The store the settings describe, not yet migrated nor started: the one place every
    command (serve, worker, migrate, housekeep and the rest) builds it, so each uses the
    same partition span, session URL and prepared-statement choice."""
    return Store(
        settings.database_url,
        read_connections=read_connections or settings.read_connections,
        commit_max_events=settings.commit_max_events,
        session_url=settings.database_session_url or None,
        prepare=settings.database_prepared_statements,
        partition_days=settings.partition_days,
    )


def redact(url: str) -> str:
    """Hide a password in a database URL before printing it."""
    if "://" in url and "@" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}@{host}"
    return url


def cannot_open(settings: Settings, exc: Exception) -> click.ClickException:
    """The error for a database that would not open, with any password left out: it goes
    to a terminal or a journal, once a restart for as long as the database is away."""
    url = settings.database_url
    message = str(exc).replace(url, redact(url))
    return click.ClickException(f"cannot open the database {redact(url)}: {message}")


def require_existing_sqlite(settings: Settings) -> None:
    """Refuse a SQLite path with no database: a command for an existing database (from
    cron, without the server's environment, or with a typo) would otherwise make a new,
    empty one and report success on it."""
    if backend_of(settings.database_url) != "sqlite":
        return
    path = sqlite_path(settings.database_url)
    if path != ":memory:" and not Path(path).is_file():
        raise click.ClickException(
            f"no SQLite database at {path}; give --database-url or set "
            "EVENTYARD_DATABASE_URL to the server's database."
        )


def with_store(settings: Settings, work: Callable[[Store], Coroutine[Any, Any, T]]) -> T:
    try:
        store = store_for(settings, read_connections=1)
        store.migrate()
        store.start()
    except Exception as exc:
        raise cannot_open(settings, exc) from None
    try:
        return asyncio.run(work(store))
    except EventyardError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()


def print_compact_json(value: Any) -> None:
    click.echo(orjson.dumps(value).decode())
