"""What the commands that talk to a running server share: where the server is, which key to
use, how to print answers and how to report failures.

Every such command takes `--url` and `--key` (or `EVENTYARD_URL` / `EVENTYARD_KEY`) and
`--json`. Tables are for people: aligned columns, long cells cut with an ellipsis. `--json`
is for programs: one JSON document, or one JSON object per line for streams. A failure
exits with status 1 and one readable message on stderr (the server's message and each
field error), never a traceback.

Times on the command line (`--since`, `--until`, `--timestamp`) are ISO 8601 (`2026-11-23`,
`2026-11-23T10:00:00Z`; without a zone, UTC) or a span back from now: a number and a unit,
`s`, `m`, `h`, `d` or `w` (`30m`, `1h`, `2d`). JSON inputs (`--data`, `--schema`) are JSON
text, `@FILE` to read a file, or `-` to read standard input.
"""

from __future__ import annotations

import contextlib
import functools
import json
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
from eventyard_client import AuthenticationError, Client, EventyardError, TransportError
from eventyard_client._core import loads_strict
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
        metavar="KEY",
        help="The API key (default: EVENTYARD_KEY).",
        show_envvar=False,
    )(command)
    return click.option(
        "--url",
        envvar="EVENTYARD_URL",
        default="http://127.0.0.1:8000",
        metavar="URL",
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


def print_table(
    rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]], *, header: bool = True
) -> None:
    """`columns` are (field, heading) pairs. An empty list prints "(none)", not nothing.
    `header=False` continues an earlier table (a long listing printed page by page)."""
    if not rows:
        if header:
            click.echo("(none)")
        return
    table = [[heading.upper() for _, heading in columns]] if header else []
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


_SPAN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """An aware UTC datetime from ISO 8601 (naive means UTC), epoch milliseconds, or a span
    back from now (`30m`, `1h`, `2d`); ValueError with a readable message otherwise."""
    if value.strip().isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    span = _SPAN.match(value)
    if span:
        seconds = float(span.group(1)) * _UNIT_SECONDS[span.group(2).lower()]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        when = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(
            f"{value!r} is not a time: give ISO 8601 (2026-11-23T10:00:00Z), epoch "
            "milliseconds, or a span back from now (30m, 1h, 2d)"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC)


def iso(when: datetime) -> str:
    return when.isoformat().replace("+00:00", "Z")


class TimeType(click.ParamType[str, Any]):
    """A command-line time (see the module's docstring), given to the command as ISO 8601."""

    name = "TIME"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        try:
            return iso(parse_time(str(value)))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


TIME = TimeType()


def event_filters(command: F) -> F:
    """Add the filters `GET /v1/events` takes: --trigger, --user (as `user_id`), --source,
    --since and --until. Shared by `events list` and `export`, so they read the same."""
    options = [
        click.option("--trigger", metavar="TRIGGER", help="Only events of this trigger."),
        click.option("--user", "user_id", metavar="USER_ID", help="Only events of this user."),
        click.option(
            "--source",
            metavar="SOURCE",
            help="Only events that came in this way (api, a seed adapter, ...).",
        ),
        click.option(
            "--since", type=TIME, help="From this event time on: ISO 8601 or a span (1h, 2d)."
        ),
        click.option("--until", type=TIME, help="Before this event time: ISO 8601 or a span."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def read_json(value: str, what: str) -> Any:
    """JSON text, `@FILE` or `-` (standard input), parsed; a usage error names `what`."""
    if value == "-":
        text, source = sys.stdin.read(), "standard input"
    elif value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise click.BadParameter(
                f"cannot read {path}: {exc.strerror}", param_hint=what
            ) from None
        source = str(path)
    else:
        text, source = value, "the value"
    try:
        return loads_strict(text)
    except ValueError as exc:
        raise click.BadParameter(f"{source} is not JSON: {exc}", param_hint=what) from None


def read_json_object(value: str, what: str) -> dict[str, Any]:
    parsed = read_json(value, what)
    if not isinstance(parsed, dict):
        raise click.BadParameter(
            f"must be a JSON object ({{...}}), not {type(parsed).__name__}", param_hint=what
        )
    return parsed


def with_short_times(rows: Sequence[dict[str, Any]], *fields: str) -> list[dict[str, Any]]:
    """Copies of `rows` with their time `fields` shortened for a table."""
    return [{**row, **{f: short_time(row.get(f)) for f in fields}} for row in rows]


def short_time(value: Any) -> str:
    """`2026-11-23T11:29:09.223556Z` as `2026-11-23 11:29:09`: tables are for reading."""
    if not isinstance(value, str) or "T" not in value:
        return "" if value is None else str(value)
    return value.replace("T", " ").split(".")[0].removesuffix("Z")
