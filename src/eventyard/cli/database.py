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
from eventyard.store import Store, open_store

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


def with_store(settings: Settings, work: Callable[[Store], Coroutine[Any, Any, T]]) -> T:
    try:
        store = open_store(settings.database_url, read_connections=1)
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
