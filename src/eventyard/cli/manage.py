"""The commands that follow and send events through a running server's API: send, tail,
events (list, show) and replay. Triggers, keys and consumers are in `admin`.

Each one is a thin layer over `eventyard_client.Client`: parse the options, make one or a
few calls, print the answer as a table (or `--json`). What they share — the connection
options, error messages, tables, times and JSON inputs — is in `remote`.
"""

from __future__ import annotations

import contextlib
import itertools
from typing import Any

import click
from eventyard_client import Client

from eventyard.cli.remote import (
    TIME,
    cell,
    event_filters,
    print_json,
    print_json_line,
    print_record,
    print_table,
    read_json_object,
    remote_options,
    short_time,
    stderr_is_tty,
    with_client,
    with_short_times,
)
from eventyard.cli.root import main

__all__ = ["events", "replay", "send", "tail"]


# -- send, tail, replay ------------------------------------------------------------------


@main.command()
@click.argument("trigger")
@click.option(
    "--user", "user_id", metavar="USER_ID", required=True, help="The user the event is about."
)
@click.option(
    "--data",
    metavar="JSON|@FILE|-",
    help="The payload: a JSON object, @FILE to read one from a file, or - for stdin.",
)
@click.option(
    "--timestamp",
    type=TIME,
    help="When it happened: ISO 8601 or a span back from now (30m, 2h); default: now.",
)
@click.option(
    "--idempotency-key",
    metavar="KEY",
    help="Sending again with the same key stores the event once (default: a new key).",
)
@remote_options
@with_client
def send(
    client: Client,
    as_json: bool,
    trigger: str,
    user_id: str,
    data: str | None,
    timestamp: str | None,
    idempotency_key: str | None,
) -> None:
    """Send one event for TRIGGER.

    \b
    eventyard send successful_payment --user user123 --data '{"value": 19.99}'
    eventyard send signup --user u1 --data @payload.json --timestamp 2h
    """
    payload = read_json_object(data, "--data") if data is not None else None
    event = client.send(
        trigger, user_id, payload, timestamp=timestamp, idempotency_key=idempotency_key
    )
    if as_json:
        print_json(event)
        return
    click.echo(f"Sent {event['id']}.")
    print_record(
        event,
        [
            ("trigger", "trigger"),
            ("user_id", "user"),
            ("timestamp", "time"),
            ("payload", "payload"),
            ("idempotency_key", "idempotency key"),
        ],
    )


@main.command()
@click.option("--trigger", metavar="TRIGGER", help="Only events of this trigger.")
@click.option("--user", "user_id", metavar="USER_ID", help="Only events of this user.")
@click.option(
    "--since-id",
    metavar="EVENT_ID",
    help="Start just after this event (resume where an earlier tail stopped) instead of now.",
)
@click.option(
    "--max-seconds",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="Stop after this many seconds (default: follow until Ctrl-C).",
)
@remote_options
@with_client
def tail(
    client: Client,
    as_json: bool,
    trigger: str | None,
    user_id: str | None,
    since_id: str | None,
    max_seconds: float | None,
) -> None:
    """Follow new events as they are stored.

    One line per event: time, trigger, user and the start of the payload. With --json,
    each event is one JSON object on its own line (with its transactions). Dropped
    connections and server restarts are followed through without losing or repeating an
    event. Ctrl-C stops.
    """
    if stderr_is_tty():
        click.echo(f"Following events at {client.url} (Ctrl-C to stop)", err=True)
    events = client.events.stream(
        trigger=trigger, user_id=user_id, since_id=since_id, max_seconds=max_seconds
    )
    with contextlib.suppress(KeyboardInterrupt):
        for event in events:
            if as_json:
                print_json_line(event)
            else:
                click.echo(_event_line(event))


def _event_line(event: dict[str, Any]) -> str:
    when = short_time(event.get("timestamp"))
    return (
        f"{when:19}  {cell(event.get('trigger'), 32):24}  {cell(event.get('user_id'), 32):16}  "
        f"{cell(event.get('payload'), 80)}"
    ).rstrip()


@main.command()
@click.argument("consumer_id", metavar="CONSUMER")
@click.option(
    "--since",
    type=TIME,
    required=True,
    help="Replay events from this time on (event time): ISO 8601 or a span (1h, 2d).",
)
@click.option("--only-failed", is_flag=True, help="Only transactions that failed.")
@remote_options
@with_client
def replay(client: Client, as_json: bool, consumer_id: str, since: str, only_failed: bool) -> None:
    """Deliver a consumer's events since a time again.

    Every finished or failed transaction of those events is queued again (with
    --only-failed, only failed ones), and events the consumer never had get a transaction.
    """
    counts = client.consumers.replay(consumer_id, since, only_failed=only_failed)
    if as_json:
        print_json(counts)
        return
    click.echo(
        f"Replaying {consumer_id} since {since}: {counts.get('requeued', 0)} transactions "
        f"queued again, {counts.get('created', 0)} created."
    )


# -- events ------------------------------------------------------------------------------

EVENT_COLUMNS = [
    ("id", "id"),
    ("timestamp", "time"),
    ("trigger", "trigger"),
    ("user_id", "user"),
    ("source", "source"),
    ("payload", "payload"),
]


@main.group()
def events() -> None:
    """List and show events."""


@events.command("list")
@event_filters
@click.option(
    "--consumer", metavar="CONSUMER", help="With --state: by this consumer's transaction state."
)
@click.option(
    "--state",
    metavar="STATE",
    help="With --consumer: pending, processing, finished, failed, a state of your own, "
    "or none (events the consumer has no transaction for).",
)
@click.option(
    "--limit",
    type=click.IntRange(1, 1000),
    metavar="N",
    default=50,
    show_default=True,
    help="Events per page.",
)
@click.option("--cursor", metavar="CURSOR", help="Continue from where a previous page ended.")
@click.option("--all", "all_pages", is_flag=True, help="Every matching event, page after page.")
@remote_options
@with_client
def events_list(
    client: Client,
    as_json: bool,
    limit: int,
    cursor: str | None,
    all_pages: bool,
    **filters: str | None,
) -> None:
    """List events, newest first.

    One page at a time: the command prints how to get the next one. With --all it reads
    every page; with --all --json it prints one JSON object per line.
    """
    if (filters["consumer"] is None) != (filters["state"] is None):
        raise click.UsageError("--consumer and --state go together.")
    query = {name: value for name, value in filters.items() if value is not None}
    if all_pages:
        rows = client.events.iter(limit=limit, cursor=cursor, **query)
        if as_json:
            for event in rows:
                print_json_line(event)
        else:
            # Page by page, so a listing of millions never sits in memory.
            first = True
            while chunk := list(itertools.islice(rows, limit)):
                print_table(with_short_times(chunk, "timestamp"), EVENT_COLUMNS, header=first)
                first = False
            if first:
                print_table([], EVENT_COLUMNS)
        return
    page = client.events.list(limit=limit, cursor=cursor, **query)
    if as_json:
        print_json(page)
        return
    print_table(with_short_times(page["data"], "timestamp"), EVENT_COLUMNS)
    if page.get("next_cursor"):
        click.echo(
            f"More events: add --cursor {page['next_cursor']} (or --all for every page).",
            err=True,
        )


@events.command("show")
@click.argument("event_id", metavar="EVENT_ID")
@remote_options
@with_client
def events_show(client: Client, as_json: bool, event_id: str) -> None:
    """Show one event with its transactions (one per consumer)."""
    event = client.events.get(event_id)
    if as_json:
        print_json(event)
        return
    print_record(
        event,
        [
            ("id", "id"),
            ("trigger", "trigger"),
            ("user_id", "user"),
            ("timestamp", "time"),
            ("received_at", "received"),
            ("source", "source"),
            ("environment", "environment"),
            ("idempotency_key", "idempotency key"),
            ("payload", "payload"),
        ],
    )
    click.echo()
    click.echo("Transactions:")
    transactions = [
        {**txn, "last_attempt": _last_attempt(txn)} for txn in event.get("transactions") or []
    ]
    print_table(
        with_short_times(transactions, "updated_at", "next_attempt_at"),
        [
            ("id", "id"),
            ("consumer_id", "consumer"),
            ("state", "state"),
            ("attempts", "attempts"),
            ("last_attempt", "last attempt"),
            ("next_attempt_at", "next attempt"),
            ("updated_at", "updated"),
            ("output", "output"),
        ],
    )


def _last_attempt(txn: dict[str, Any]) -> str:
    """A webhook transaction's latest attempt, in a few words: `HTTP 500` or its error."""
    attempts = txn.get("delivery_attempts") or []
    if not attempts:
        return ""
    last = attempts[-1]
    if last.get("error"):
        return str(last["error"])
    return f"HTTP {last.get('status_code')}"
