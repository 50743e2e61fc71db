"""What the commands that talk to a running server share: where the server is, which key to
use, how to print answers and how to report failures.

Every such command takes `--url` and `--key` (or `EVENTYARD_URL` / `EVENTYARD_KEY`) and
`--json`. Tables are for people: aligned columns, long cells cut with an ellipsis. `--json`
is for programs: one JSON document, or one JSON object per line for streams. A failure
exits with status 1 and one readable message on stderr (the server's message and each
field error), never a traceback.
"""

from __future__ import annotations

import contextlib
import functools
import json
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import click
from eventyard_client import AuthenticationError, Client, EventyardError, TransportError
from eventyard_client.errors import APIError

F = TypeVar("F", bound=Callable[..., Any])

MAX_CELL = 48


def remote_options(command: F) -> F:
    """Add --url, --key and --json to a command; it receives them as `url`, `key`, `as_json`."""
    command = click.option(
        "--json", "as_json", is_flag=True, help="Print JSON instead of a table."
    )(command)
    command = click.option(
        "--key",
        envvar="EVENTYARD_KEY",
        help="The API key (default: EVENTYARD_KEY).",
        show_envvar=False,
    )(command)
    return click.option(
        "--url",
        envvar="EVENTYARD_URL",
        default="http://127.0.0.1:8000",
        show_default=True,
        help="The server (default: EVENTYARD_URL, else http://127.0.0.1:8000).",
    )(command)


def open_client(url: str, key: str | None, **options: Any) -> Client:
    if not key:
        raise click.UsageError("no API key: pass --key or set EVENTYARD_KEY")
    try:
        return Client(url, key, **options)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@contextlib.contextmanager
def reported_errors(url: str) -> Iterator[None]:
    """Turn the client's exceptions into one clear message and exit status 1."""
    try:
        yield
    except AuthenticationError as exc:
        raise click.ClickException(f"{exc}\nCheck --key / EVENTYARD_KEY.") from None
    except APIError as exc:
        raise click.ClickException(str(exc)) from None
    except TransportError as exc:
        raise click.ClickException(
            f"cannot reach the server at {url}: {exc.__cause__ or exc}\n"
            "Is `eventyard serve` running? Check --url / EVENTYARD_URL."
        ) from None
    except EventyardError as exc:
        raise click.ClickException(str(exc)) from None


def with_client(command: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command taking `client` (and `as_json`) a connected client, closed after it
    runs, with the client's errors reported as messages."""

    @functools.wraps(command)
    def run(url: str, key: str | None, **kwargs: Any) -> Any:
        client = open_client(url, key)
        try:
            with reported_errors(url):
                return command(client=client, **kwargs)
        finally:
            client.close()

    return run


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, indent=2))


def print_json_line(value: Any) -> None:
    click.echo(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def cell(value: Any, width: int = MAX_CELL) -> str:
    if value is None:
        text = ""
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list | tuple):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    else:
        text = str(value)
    text = " ".join(text.split())  # no newlines or tabs inside a row
    return text if len(text) <= width else text[: width - 1] + "…"


def print_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]]) -> None:
    """`columns` are (field, heading) pairs. An empty list prints a dash line, not nothing."""
    if not rows:
        click.echo("(none)")
        return
    table = [[heading.upper() for _, heading in columns]]
    table += [[cell(row.get(field)) for field, _ in columns] for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(columns))]
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def print_record(record: dict[str, Any], fields: Sequence[tuple[str, str]] | None = None) -> None:
    """One object as `label: value` lines."""
    pairs = fields or [(name, name) for name in record]
    width = max(len(label) for _, label in pairs)
    for name, label in pairs:
        value = record.get(name)
        text = cell(value, width=10_000) if not isinstance(value, dict | list) else _pretty(value)
        click.echo(f"{label.ljust(width)}  {text}")


def _pretty(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


def stderr_is_tty() -> bool:
    return sys.stderr.isatty()
