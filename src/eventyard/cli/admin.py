"""The commands for what an admin key manages on a running server: triggers, keys and
consumers, each with list, create, show and delete (and a few more).

Like the rest of `manage`, they go through `eventyard_client.Client` and print tables or
`--json`. The exception is `keys create --project`, which mints a key straight into the
database, for the first keys of a project before any server runs. Deletes that cannot be
undone (revoking a key, deleting a consumer) ask first, or take `--yes`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

import click
from eventyard_client import Client

from eventyard.cli.database import DB_OPTION, print_compact_json, settings_from_env, with_store
from eventyard.cli.remote import (
    open_client,
    print_json,
    print_record,
    print_table,
    read_json_object,
    remote_options,
    reported_errors,
    with_client,
    with_short_times,
)
from eventyard.cli.root import main
from eventyard.domain.schema import AttributeType

ATTRIBUTE_TYPES = tuple(t.value for t in AttributeType)

_YES = click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")


def _confirm(yes: bool, question: str) -> None:
    """Ask before something that cannot be undone; without a terminal, insist on --yes."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise click.UsageError(f"{question} Pass --yes to confirm (no terminal to ask on).")
    click.confirm(question, abort=True)


# -- triggers ----------------------------------------------------------------------------


@main.group()
def triggers() -> None:
    """Manage triggers and their payload schemas."""


def _schema_summary(trigger: dict[str, Any]) -> str:
    if trigger.get("json_schema"):
        return "JSON Schema"
    attributes = trigger.get("attributes") or []
    return ", ".join(f"{a['name']}{'*' if a.get('required') else ''}" for a in attributes)


TRIGGER_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("schema", "attributes (* required)"),
    ("description", "description"),
    ("created_at", "created"),
]


@triggers.command("list")
@click.option("--archived", is_flag=True, help="Include archived triggers.")
@remote_options
@with_client
def triggers_list(client: Client, as_json: bool, archived: bool) -> None:
    """List triggers."""
    rows = client.triggers.list(archived=archived)
    if as_json:
        print_json(rows)
        return
    shown = [{**r, "schema": _schema_summary(r)} for r in rows]
    columns = [*TRIGGER_COLUMNS, ("archived", "archived")] if archived else TRIGGER_COLUMNS
    print_table(with_short_times(shown, "created_at"), columns)


def parse_attribute(spec: str) -> dict[str, Any]:
    """`NAME:TYPE[:required]`; an enum's values follow `=`: `plan:enum=free,pro:required`."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not parts[0] or (len(parts) == 3 and parts[2] != "required"):
        raise click.BadParameter(
            f"{spec!r}: write NAME:TYPE or NAME:TYPE:required (an enum as NAME:enum=a,b,c)",
            param_hint="--attribute",
        )
    name, kind = parts[0], parts[1]
    values: list[str] | None = None
    if "=" in kind:
        kind, _, listed = kind.partition("=")
        values = [v for v in listed.split(",") if v]
    if kind not in ATTRIBUTE_TYPES:
        raise click.BadParameter(
            f"{spec!r}: the type must be one of {', '.join(ATTRIBUTE_TYPES)}",
            param_hint="--attribute",
        )
    if (kind == "enum") != (values is not None):
        raise click.BadParameter(
            f"{spec!r}: an enum lists its values, and only an enum: NAME:enum=a,b,c",
            param_hint="--attribute",
        )
    attribute: dict[str, Any] = {"name": name, "type": kind, "required": len(parts) == 3}
    if values is not None:
        attribute["values"] = values
    return attribute


@triggers.command("create")
@click.argument("name")
@click.option(
    "--id", "trigger_id", metavar="ID", help="The trigger's id (default: made from the name)."
)
@click.option("--description", metavar="TEXT", help="What the event means, for people.")
@click.option(
    "--attribute",
    "attributes",
    multiple=True,
    metavar="NAME:TYPE[:required]",
    help="A payload field, repeatable: amount:number:required, email:email, "
    f"plan:enum=free,pro. Types: {', '.join(ATTRIBUTE_TYPES)}.",
)
@click.option(
    "--closed",
    is_flag=True,
    help="With --attribute: refuse payload fields that are not listed.",
)
@click.option(
    "--schema",
    metavar="JSON|@FILE|-",
    help="A JSON Schema (draft 2020-12) for the payload, instead of --attribute.",
)
@remote_options
@with_client
def triggers_create(
    client: Client,
    as_json: bool,
    name: str,
    trigger_id: str | None,
    description: str | None,
    attributes: tuple[str, ...],
    closed: bool,
    schema: str | None,
) -> None:
    """Create a trigger called NAME.

    \b
    eventyard triggers create "Successful payment" \\
        --attribute amount:number:required --attribute plan:enum=free,pro
    eventyard triggers create Signup --schema @signup.schema.json
    """
    if attributes and schema is not None:
        raise click.UsageError("give --attribute or --schema, not both.")
    if closed and not attributes:
        raise click.UsageError("--closed goes with --attribute.")
    fields: dict[str, Any] = {}
    if trigger_id is not None:
        fields["id"] = trigger_id
    if description is not None:
        fields["description"] = description
    if attributes:
        fields["attributes"] = [parse_attribute(a) for a in attributes]
        fields["additional_attributes"] = not closed
    if schema is not None:
        fields["json_schema"] = read_json_object(schema, "--schema")
    trigger = client.triggers.create(name, **fields)
    if as_json:
        print_json(trigger)
        return
    click.echo(f"Created trigger {trigger['id']}.")
    _print_trigger(trigger)


def _print_trigger(trigger: dict[str, Any]) -> None:
    print_record(
        trigger,
        [
            ("id", "id"),
            ("name", "name"),
            ("description", "description"),
            ("attributes", "attributes"),
            ("additional_attributes", "other fields allowed"),
            ("json_schema", "json schema"),
            ("archived", "archived"),
            ("created_at", "created"),
            ("cdp_webhook_path", "CDP webhook path"),
        ],
    )


@triggers.command("show")
@click.argument("trigger_id", metavar="TRIGGER")
@remote_options
@with_client
def triggers_show(client: Client, as_json: bool, trigger_id: str) -> None:
    """Show one trigger and its schema."""
    trigger = client.triggers.get(trigger_id)
    if as_json:
        print_json(trigger)
        return
    _print_trigger(trigger)


@triggers.command("delete")
@click.argument("trigger_id", metavar="TRIGGER")
@remote_options
@with_client
def triggers_delete(client: Client, as_json: bool, trigger_id: str) -> None:
    """Archive a trigger: it and its events stay, new events for it are refused.

    `eventyard triggers restore` undoes it.
    """
    trigger = client.triggers.archive(trigger_id)
    if as_json:
        print_json(trigger)
        return
    click.echo(
        f"Archived trigger {trigger['id']}: it and its events stay, and new events for it "
        f"are refused. Undo with: eventyard triggers restore {trigger['id']}"
    )


@triggers.command("restore")
@click.argument("trigger_id", metavar="TRIGGER")
@remote_options
@with_client
def triggers_restore(client: Client, as_json: bool, trigger_id: str) -> None:
    """Restore an archived trigger, so it takes events again."""
    trigger = client.triggers.update(trigger_id, archived=False)
    if as_json:
        print_json(trigger)
        return
    click.echo(f"Restored trigger {trigger['id']}: it takes events again.")


# -- keys --------------------------------------------------------------------------------


@main.group()
def keys() -> None:
    """Manage API keys.

    Through the API, keys of the environment of the key you use; `keys create --project`
    mints one straight into the database.
    """


KEY_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("prefix", "prefix"),
    ("environment", "env"),
    ("scopes", "scopes"),
    ("created_at", "created"),
    ("last_used_at", "last used"),
    ("revoked", "revoked"),
]


@keys.command("list")
@remote_options
@with_client
def keys_list(client: Client, as_json: bool) -> None:
    """List API keys (never their secrets)."""
    rows = client.keys.list()
    if as_json:
        print_json(rows)
        return
    print_table(with_short_times(rows, "created_at", "last_used_at"), KEY_COLUMNS)


@keys.command("create")
@click.option(
    "--name", metavar="NAME", default="API key", show_default=True, help="What the key is for."
)
@click.option(
    "--scopes",
    metavar="SCOPES",
    required=True,
    help="Comma-separated: write (send events), read, delete (erase users), admin.",
)
@click.option(
    "--project",
    "project_name",
    metavar="PROJECT",
    help="Mint the key straight into the database for this project (no server needed; "
    "for the first keys). Takes --env and --database-url; ignores --url and --key.",
)
@click.option(
    "--env",
    type=click.Choice(["live", "test"]),
    help="With --project: the key's environment. Through the API, a key is minted in the "
    "environment of the key you use.",
)
@DB_OPTION
@remote_options
def keys_create(
    url: str,
    key: str | None,
    as_json: bool,
    name: str,
    scopes: str,
    project_name: str | None,
    env: str | None,
    database_url: str | None,
) -> None:
    """Mint an API key. Its secret is shown this once.

    \b
    eventyard keys create --name backend --scopes write,read
    eventyard keys create --project default --env live --scopes admin
    """
    if project_name is not None:
        if env is None:
            raise click.UsageError("--project needs --env live or --env test.")
        _create_key_in_database(project_name, env, scopes, name, as_json, database_url)
        return
    if env is not None or database_url is not None:
        raise click.UsageError(
            "--env and --database-url go with --project; through the API, the key is minted "
            "in the environment of the key you use."
        )
    client = open_client(url, key)
    try:
        with reported_errors(url):
            created = client.keys.create(name, [s.strip() for s in scopes.split(",")])
    finally:
        client.close()
    if as_json:
        print_json(created)
        return
    scope_list = ", ".join(created["scopes"])
    click.echo(f"Created key {created['id']} ({created['environment']}; scopes: {scope_list}).")
    click.echo(f"  {created['key']}")
    click.echo("This is the only time the key is shown: store it now.")


def _create_key_in_database(
    project_name: str, env: str, scopes: str, name: str, as_json: bool, database_url: str | None
) -> None:
    from eventyard.clock import SystemClock
    from eventyard.domain.models import Environment
    from eventyard.errors import EventyardError
    from eventyard.services.keys import KeyService, parse_scopes
    from eventyard.services.projects import get_project_by_name
    from eventyard.store import Store

    settings = settings_from_env(database_url=database_url)
    try:
        scope_set = parse_scopes(scopes.split(","))
    except EventyardError as exc:
        raise click.ClickException(exc.message) from None

    async def work(store: Store) -> tuple[Any, str]:
        project = await get_project_by_name(store, project_name)
        service = KeyService(store, SystemClock(), settings.cache_seconds)
        return await service.create(project.id, Environment(env), scope_set, name)

    created, secret = with_store(settings, work)
    if as_json:
        print_compact_json({"key": secret, "id": created.id})
        return
    click.echo(f"Created key {created.id} ({created.environment.value}; scopes: {scopes}).")
    click.echo(f"  {secret}")
    click.echo("This is the only time the key is shown.")


@keys.command("show")
@click.argument("key_id", metavar="KEY_ID")
@remote_options
@with_client
def keys_show(client: Client, as_json: bool, key_id: str) -> None:
    """Show one API key (never its secret)."""
    found = client.keys.get(key_id)
    if as_json:
        print_json(found)
        return
    print_record(found, [*KEY_COLUMNS, ("revoked_at", "revoked at")])


@keys.command("delete")
@click.argument("key_id", metavar="KEY_ID")
@_YES
@remote_options
@with_client
def keys_delete(client: Client, as_json: bool, key_id: str, yes: bool) -> None:
    """Revoke an API key: it is refused from the next request on. This cannot be undone."""
    _confirm(yes, f"Revoke key {key_id}? Programs using it will be refused.")
    revoked = client.keys.revoke(key_id)
    if as_json:
        print_json(revoked)
        return
    click.echo(f"Revoked key {revoked['id']} ({revoked.get('name')}).")


# -- consumers ---------------------------------------------------------------------------


@main.group()
def consumers() -> None:
    """Manage webhook and pull consumers."""


CONSUMER_COLUMNS = [
    ("id", "id"),
    ("name", "name"),
    ("kind", "kind"),
    ("url", "url"),
    ("triggers", "triggers"),
    ("state", "state"),
    ("created_at", "created"),
]


def _consumer_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {**r, "triggers": r["triggers"] if r.get("triggers") is not None else "(all)"}
        for r in with_short_times(rows, "created_at")
    ]


@consumers.command("list")
@remote_options
@with_client
def consumers_list(client: Client, as_json: bool) -> None:
    """List consumers."""
    rows = client.consumers.list()
    if as_json:
        print_json(rows)
        return
    print_table(_consumer_rows(rows), CONSUMER_COLUMNS)


@consumers.command("create")
@click.argument("name")
@click.option(
    "--webhook",
    "webhook_url",
    metavar="URL",
    help="A webhook consumer: POST events to this URL. (--url is the eventyard server.)",
)
@click.option("--pull", is_flag=True, help="A pull consumer: your program claims events.")
@click.option(
    "--trigger",
    "trigger_ids",
    metavar="TRIGGER",
    multiple=True,
    help="Only events of this trigger; repeatable (default: every trigger).",
)
@click.option(
    "--retry-schedule",
    metavar="SECONDS,...",
    help="Webhook retries: seconds before each attempt, e.g. 0,10,60 (default: the server's).",
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0, min_open=True),
    metavar="SECONDS",
    help="How long to wait for the webhook's answer (default: 15 s).",
)
@remote_options
@with_client
def consumers_create(
    client: Client,
    as_json: bool,
    name: str,
    webhook_url: str | None,
    pull: bool,
    trigger_ids: tuple[str, ...],
    retry_schedule: str | None,
    timeout: float | None,
) -> None:
    """Create a webhook or pull consumer called NAME.

    A webhook consumer (--webhook URL) gets each event POSTed to it, signed; a pull consumer
    (--pull) is read by your program. The signing secret is shown this once.

    \b
    eventyard consumers create billing --webhook https://billing.example.com/hooks \\
        --trigger successful_payment
    eventyard consumers create mailer --pull
    """
    if bool(webhook_url) == pull:
        raise click.UsageError(
            "give either --webhook URL (a webhook consumer) or --pull (a pull consumer)."
        )
    fields: dict[str, Any] = {}
    if retry_schedule is not None:
        try:
            fields["retry_schedule"] = [int(s) for s in retry_schedule.split(",")]
        except ValueError:
            raise click.BadParameter(
                "write whole seconds separated by commas, e.g. 0,10,60",
                param_hint="--retry-schedule",
            ) from None
    if timeout is not None:
        fields["timeout_seconds"] = timeout
    created = client.consumers.create(
        name,
        "pull" if pull else "webhook",
        url=webhook_url,
        triggers=list(trigger_ids) or None,
        **fields,
    )
    if as_json:
        print_json(created)
        return
    click.echo(f"Created {created['kind']} consumer {created['id']}.")
    _print_consumer(created)
    if created.get("secret"):
        click.echo()
        click.echo("Signing secret (shown this once; store it now):")
        click.echo(f"  {created['secret']}")


def _print_consumer(consumer: dict[str, Any]) -> None:
    shown = _consumer_rows([consumer])[0]
    print_record(
        shown,
        [
            *CONSUMER_COLUMNS,
            ("retry_schedule", "retry schedule"),
            ("timeout_seconds", "timeout (s)"),
            ("disabled_reason", "disabled because"),
            ("environment", "environment"),
        ],
    )


@consumers.command("show")
@click.argument("consumer_id", metavar="CONSUMER")
@remote_options
@with_client
def consumers_show(client: Client, as_json: bool, consumer_id: str) -> None:
    """Show one consumer."""
    consumer = client.consumers.get(consumer_id)
    if as_json:
        print_json(consumer)
        return
    _print_consumer(consumer)


@consumers.command("delete")
@click.argument("consumer_id", metavar="CONSUMER")
@_YES
@remote_options
@with_client
def consumers_delete(client: Client, as_json: bool, consumer_id: str, yes: bool) -> None:
    """Delete a consumer; its open transactions are closed as failed. This cannot be undone."""
    _confirm(yes, f"Delete consumer {consumer_id}? Its open transactions will fail.")
    deleted = client.consumers.delete(consumer_id)
    if as_json:
        print_json(deleted)
        return
    click.echo(f"Deleted consumer {deleted.get('id', consumer_id)}.")


@consumers.command("pause")
@click.argument("consumer_id", metavar="CONSUMER")
@remote_options
@with_client
def consumers_pause(client: Client, as_json: bool, consumer_id: str) -> None:
    """Stop sending to a consumer; its transactions keep queuing."""
    consumer = client.consumers.pause(consumer_id)
    if as_json:
        print_json(consumer)
        return
    click.echo(f"Paused {consumer['id']}: events queue until `eventyard consumers resume`.")


@consumers.command("resume")
@click.argument("consumer_id", metavar="CONSUMER")
@remote_options
@with_client
def consumers_resume(client: Client, as_json: bool, consumer_id: str) -> None:
    """Enable a paused or disabled consumer again: a webhook's backlog is sent, a pull
    consumer's can be claimed."""
    consumer = client.consumers.resume(consumer_id)
    if as_json:
        print_json(consumer)
        return
    if consumer.get("kind") == "pull":
        click.echo(f"Resumed {consumer['id']}: its pending transactions can be claimed again.")
    else:
        click.echo(f"Resumed {consumer['id']}: its backlog is being sent.")


# -- the project -------------------------------------------------------------------------


@main.group()
def project() -> None:
    """Show or change the key's project: its mode and how long it keeps events."""


PROJECT_FIELDS = [
    ("id", "id"),
    ("name", "name"),
    ("mode", "mode"),
    ("retention_days", "retention (days)"),
    ("created_at", "created"),
]


def _print_project(project: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(project)
        return
    shown = {**project, "retention_days": project.get("retention_days") or "forever"}
    print_record(shown, PROJECT_FIELDS)


@project.command("show")
@remote_options
@with_client
def project_show(client: Client, as_json: bool) -> None:
    """Show the project: id, name, mode and retention."""
    _print_project(client.project.get(), as_json)


def _retention_days(value: str) -> int | None:
    if value.strip().lower() == "forever":
        return None
    try:
        return int(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a whole number of days or 'forever'") from None


@project.command("set")
@click.option(
    "--mode", type=click.Choice(["open", "strict"]), help="open: unknown triggers are created."
)
@click.option(
    "--retention-days",
    metavar="DAYS|forever",
    help="Keep events this many days after receipt (1 to 36500), or 'forever'. Older ones "
    "disappear from reads at once and from disk at the next housekeeping pass.",
)
@remote_options
@with_client
def project_set(
    client: Client, as_json: bool, mode: str | None, retention_days: str | None
) -> None:
    """Change the project's mode or retention (an admin key)."""
    fields: dict[str, Any] = {}
    if mode is not None:
        fields["mode"] = mode
    if retention_days is not None:
        fields["retention_days"] = _retention_days(retention_days)
    if not fields:
        raise click.UsageError("nothing to change: give --mode or --retention-days")
    _print_project(client.project.update(**fields), as_json)
