"""The commands that run the server or work on its database directly: serve, worker,
migrate, settings, init and users. (`keys create --project`, which mints a key into the
database for bootstrapping, lives with the other `keys` commands in `admin`.) What they
share for opening the database is in `database`.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from typing import Any

import click
import uvloop

from eventyard import heap
from eventyard.cli.database import (
    DB_OPTION,
    cannot_open,
    print_compact_json,
    redact,
    require_existing_sqlite,
    settings_from_env,
    store_for,
    with_store,
)
from eventyard.cli.root import main
from eventyard.logs import configure_logging
from eventyard.settings import Settings
from eventyard.store import Store


@main.command()
@click.option("--host", default=None, help="Address to listen on (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to listen on (default 8000).")
@click.option(
    "--no-worker", is_flag=True, help="Serve the API only; run `eventyard worker` to deliver."
)
@click.option(
    "--processes",
    default=1,
    type=click.IntRange(1, 256),
    show_default=True,
    help="API processes on the one port (PostgreSQL only); the first runs the worker.",
)
@DB_OPTION
def serve(
    host: str | None, port: int | None, no_worker: bool, processes: int, database_url: str | None
) -> None:
    """Run the HTTP server and the delivery worker (migrating the database first)."""
    settings = settings_from_env(host=host, port=port, database_url=database_url)
    if processes > 1:
        _serve_processes(settings, processes, with_worker=not no_worker)
        return
    store = _open_for_service(settings)
    _serve_one(settings, store, with_worker=not no_worker)


def _serve_one(
    settings: Settings, store: Store, *, with_worker: bool, sock: socket.socket | None = None
) -> None:
    """Serve the API on `store` in this process: on `sock` if given, else on host:port."""
    import uvicorn

    from eventyard.api.app import create_app
    from eventyard.api.protocol import deadline_protocol
    from eventyard.runtime import Runtime

    runtime = Runtime(store, settings, with_worker=with_worker)
    app = create_app(runtime.services, on_startup=runtime.start, on_shutdown=runtime.stop)
    heap.settle()
    _raise_open_file_limit()
    if sock is None:
        click.echo(
            f"eventyard listening on http://{settings.host}:{settings.port} "
            f"({store.backend}: {redact(settings.database_url)})",
            err=True,
        )
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        loop="uvloop" if sys.platform != "win32" else "asyncio",
        # httptools, with deadlines for a request's headers and body and a cap on its head.
        http=deadline_protocol(settings),
        lifespan="on",
        access_log=False,
        log_level=settings.log_level,
        log_config=None,  # uvicorn's own lines through our handler, in our format
        server_header=False,
        # Open event streams never end by themselves: on SIGTERM, finish ordinary requests
        # and then close what is still open, rather than wait for every client to leave.
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run(sockets=None if sock is None else [sock])


def _serve_processes(settings: Settings, processes: int, *, with_worker: bool) -> None:
    """`serve --processes N` (cli/prefork.py): migrate, bind, fork N, supervise."""
    from eventyard.cli.prefork import Supervisor, bind_socket
    from eventyard.store.connect import backend_of

    if backend_of(settings.database_url) == "sqlite":
        raise click.ClickException(
            "--processes needs PostgreSQL: a SQLite database has one writer at a time, so "
            "more processes add lock waits, not throughput, and rate limits would be kept "
            "per process. Run one process on SQLite, or use EVENTYARD_DATABASE_URL="
            "postgresql://..."
        )
    _open_for_service(settings, start=False).close()  # migrate once, before any fork
    try:
        sock = bind_socket(settings.host, settings.port)
    except OSError as exc:
        raise click.ClickException(
            f"cannot listen on {settings.host}:{settings.port}: {exc}"
        ) from None

    def run_child(index: int, sock: socket.socket) -> None:
        store = _open_for_service(settings, migrate=False)
        _serve_one(settings, store, with_worker=with_worker and index == 0, sock=sock)

    click.echo(
        f"eventyard listening on http://{settings.host}:{settings.port} with {processes} "
        f"processes ({redact(settings.database_url)})",
        err=True,
    )
    sys.exit(Supervisor(processes, sock, run_child).run())


@main.command()
@DB_OPTION
def worker(database_url: str | None) -> None:
    """Run the delivery worker alone (alongside `eventyard serve --no-worker`)."""
    from eventyard.runtime import Runtime

    settings = settings_from_env(database_url=database_url)
    store = _open_for_service(settings)
    runtime = Runtime(store, settings, with_worker=True, with_api=False)
    heap.settle()
    click.echo(f"eventyard worker delivering from {redact(settings.database_url)}", err=True)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(runtime.run_worker_forever())


def _raise_open_file_limit() -> None:
    """Lift the soft limit on open files to the hard one: each connection holds a file,
    and a low soft limit (1,024 on many systems) would let a few hundred idle clients stop
    the server accepting new ones."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _open_for_service(settings: Settings, *, migrate: bool = True, start: bool = True) -> Store:
    configure_logging(settings)
    try:
        store = store_for(settings)
        if migrate:
            store.migrate()
        if start:
            store.start()
        return store
    except Exception as exc:
        raise cannot_open(settings, exc) from None


@main.command()
def settings() -> None:
    """Print every setting, its environment variable and its default, as Markdown."""
    from eventyard.settings import settings_markdown

    click.echo(settings_markdown(), nl=False)


@main.command()
@DB_OPTION
def migrate(database_url: str | None) -> None:
    """Apply pending database migrations and exit."""
    settings = settings_from_env(database_url=database_url)
    store = store_for(settings)
    try:
        applied = store.migrate()
    except Exception as exc:
        raise click.ClickException(f"migration failed: {exc}") from None
    if applied:
        for m in applied:
            click.echo(f"applied {m.version:04d}_{m.name}")
    else:
        click.echo("the database is up to date")


@main.command()
@click.option("--project", "project_name", default="default", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@DB_OPTION
def init(project_name: str, as_json: bool, database_url: str | None) -> None:
    """Create a project and an admin key for each environment."""
    from eventyard.clock import SystemClock
    from eventyard.services.projects import init_project

    name = project_name.strip()
    if not name:
        raise click.ClickException("the project name must not be empty")
    settings = settings_from_env(database_url=database_url)
    result = with_store(settings, lambda store: init_project(store, SystemClock(), name))
    if as_json:
        print_compact_json(
            {
                "project": {"id": result.project.id, "name": result.project.name},
                "keys": {env.value: secret for env, secret in result.keys.items()},
            }
        )
        return
    click.echo(f"Created project {result.project.name!r} ({result.project.id}).")
    click.echo("Admin keys (shown once; store them now):")
    for env, secret in result.keys.items():
        click.echo(f"  {env.value:4}  {secret}")


@main.group()
def users() -> None:
    """Manage the people who sign in to the dashboard."""


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.ClickException("no password on standard input")
        return password
    value: str = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    return value


_PASSWORD_STDIN = click.option(
    "--password-stdin", is_flag=True, help="Read the password from the first line of stdin."
)


def _with_accounts(database_url: str | None, password_stdin: bool, action: str, email: str) -> Any:
    """Run `AccountService.<action>(email, password)` with the password asked for once."""
    from eventyard.clock import SystemClock
    from eventyard.services.accounts import AccountService

    settings = settings_from_env(database_url=database_url)
    password = _read_password(password_stdin)

    async def work(store: Store) -> Any:
        service = AccountService(store, SystemClock(), settings.session_hours)
        return await getattr(service, action)(email, password)

    return with_store(settings, work)


@users.command("create")
@click.argument("email")
@_PASSWORD_STDIN
@DB_OPTION
def users_create(email: str, password_stdin: bool, database_url: str | None) -> None:
    """Create a dashboard user who can sign in at /dashboard (every project)."""
    user = _with_accounts(database_url, password_stdin, "create_user", email)
    click.echo(f"Created dashboard user {user.email}; sign in at /dashboard.")


@users.command("set-password")
@click.argument("email")
@_PASSWORD_STDIN
@DB_OPTION
def users_set_password(email: str, password_stdin: bool, database_url: str | None) -> None:
    """Set a dashboard user's password; their open sessions are signed out."""
    user = _with_accounts(database_url, password_stdin, "set_password", email)
    click.echo(f"Set the password of {user.email}; their sessions are signed out.")


@main.command()
@DB_OPTION
def housekeep(database_url: str | None) -> None:
    """Run one housekeeping pass now and print its report as JSON: events past their TTL or
    their project's retention removed, and on PostgreSQL partitions made and dropped (for
    cron, with EVENTYARD_HOUSEKEEPING_SECONDS=0 on the servers)."""
    from eventyard.clock import SystemClock
    from eventyard.services.housekeeping import Housekeeper

    settings = settings_from_env(database_url=database_url)
    require_existing_sqlite(settings)
    report = with_store(
        settings, lambda store: Housekeeper(store, settings, SystemClock()).run_pass()
    )
    print_compact_json(report.as_json())
