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
from typing import Any, TypeVar

import click
import orjson

from eventyard.errors import EventyardError
from eventyard.settings import Settings, SettingsError
from eventyard.store import Store

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


def with_store(settings: Settings, work: Callable[[Store], Coroutine[Any, Any, T]]) -> T:
    try:
        store = store_for(settings, read_connections=1)
        store.migrate()
        store.start()
    except Exception as exc:
        raise click.ClickException(
            f"cannot open the database {settings.database_url}: {exc}"
        ) from None
    try:
        return asyncio.run(work(store))
    except EventyardError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()


def print_compact_json(value: Any) -> None:
    click.echo(orjson.dumps(value).decode())
