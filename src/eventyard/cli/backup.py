"""`eventyard backup FILE`: a consistent copy of the database, taken while the server runs.

On SQLite it uses the online backup API (`sqlite3.Connection.backup`): the copy is one
snapshot of the database as of the moment the copy's read began (WAL mode lets writers go on
meanwhile), so every event acknowledged before the command started is in it. The copy is
written to a temporary name beside FILE, checked (`PRAGMA integrity_check`), flushed to disk
and then renamed, so FILE is either absent or a whole backup — never half of one.

On PostgreSQL the copy is `pg_dump --format=custom`, one transaction-consistent snapshot,
when `pg_dump` is on PATH (the same temporary-name-then-rename dance); otherwise the command
says how to run `pg_dump` and `pg_restore` yourself. Restoring is always the database's own
tool: copy the SQLite file into place with the server stopped, or `pg_restore` into an empty
database.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import click
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eventyard.cli.database import DB_OPTION, settings_from_env
from eventyard.cli.root import main
from eventyard.store.connect import backend_of, sqlite_path


@main.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@DB_OPTION
def backup(file: Path, force: bool, database_url: str | None) -> None:
    """Write a consistent copy of the database to FILE, while the server runs.

    SQLite: a database file (restore by copying it into place with the server stopped).
    PostgreSQL: a pg_dump custom-format archive (restore with pg_restore), if pg_dump is on
    PATH.
    """
    settings = settings_from_env(database_url=database_url)
    url = settings.database_url
    if file.exists() and not force:
        raise click.ClickException(f"{file} exists; give --force to replace it.")
    if not file.parent.is_dir():
        raise click.ClickException(f"no directory {file.parent} to write {file.name} in.")
    started = time.monotonic()
    if backend_of(url) == "sqlite":
        events = _backup_sqlite(sqlite_path(url), file)
        what = f"{events:,} events"
    else:
        _backup_postgres(url, file)
        what = "a pg_dump archive (restore with pg_restore)"
    size = file.stat().st_size
    click.echo(f"wrote {file}: {size:,} bytes, {what}, in {time.monotonic() - started:.2f} s")


def _temporary(file: Path) -> Path:
    return file.with_name(f".{file.name}.{os.getpid()}.partial")


def _finish(partial: Path, file: Path) -> None:
    """Flush `partial` to disk, rename it to `file`, and flush the directory entry."""
    with partial.open("rb") as f:
        os.fsync(f.fileno())
    partial.replace(file)
    directory = os.open(file.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _backup_sqlite(path: str, file: Path) -> int:
    if not Path(path).is_file():
        raise click.ClickException(f"no SQLite database at {path}")
    _refuse_own_files(Path(path), file)
    partial = _temporary(file)
    try:
        source = sqlite3.connect(path, timeout=10.0)
        target = sqlite3.connect(partial)
        try:
            # One step, so one read transaction: in WAL mode writers go on meanwhile. (In
            # steps, each write by the server would restart the copy from the beginning.)
            source.backup(target)
            # The copy is a plain database file: no -wal beside it to lose in a copy.
            target.execute("PRAGMA journal_mode = DELETE")
            check = target.execute("PRAGMA integrity_check").fetchone()[0]
            if check != "ok":
                raise click.ClickException(f"the copy failed its integrity check: {check}")
            events = int(target.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        finally:
            target.close()
            source.close()
        _finish(partial, file)
    except sqlite3.Error as exc:
        raise click.ClickException(f"backup of {path} failed: {exc}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
    return events


def _refuse_own_files(database: Path, file: Path) -> None:
    """FILE must not be the database or its -wal/-shm: renaming a copy over the file a
    server is writing to leaves the server on a deleted file, and a later checkpoint
    corrupts the one on disk. Refused even with --force."""
    own = [database, Path(f"{database}-wal"), Path(f"{database}-shm"), Path(f"{database}-journal")]
    target = file.resolve()
    for path in own:
        same = path.resolve() == target or (
            path.exists() and file.exists() and os.path.samefile(path, file)
        )
        if same:
            raise click.ClickException(
                f"{file} is the database being backed up ({path.name}); "
                "write the backup to another file."
            )


def pg_dump_commands(url: str, file: Path | str = "eventyard.dump") -> str:
    safe = make_conninfo("", **{k: v for k, v in conninfo_to_dict(url).items() if k != "password"})
    return (
        f"  pg_dump --format=custom --file='{file}' '{safe}'\n"
        f"  createdb NEW_DB && pg_restore --dbname=NEW_DB --no-owner '{file}'"
    )


def _backup_postgres(url: str, file: Path) -> None:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise click.ClickException(
            "pg_dump is not on PATH. Back up PostgreSQL with its own tools "
            "(see docs/deploy.md, 'Backup and restore'):\n" + pg_dump_commands(url, file)
        )
    params = conninfo_to_dict(url)
    env = dict(os.environ)
    # The password goes to pg_dump in its environment, not on a command line others can see.
    password = params.pop("password", None)
    if password is not None:
        env["PGPASSWORD"] = str(password)
    partial = _temporary(file)
    try:
        # The arguments are ours and the program is the pg_dump found on PATH.
        done = subprocess.run(  # noqa: S603
            [
                pg_dump,
                "--format=custom",
                f"--file={partial}",
                f"--dbname={make_conninfo('', **params)}",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise click.ClickException(f"pg_dump failed: {done.stderr.strip()}")
        _finish(partial, file)
    finally:
        with contextlib.suppress(FileNotFoundError):
            partial.unlink()
