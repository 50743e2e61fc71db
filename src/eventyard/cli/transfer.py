"""`eventyard import` and `eventyard export`: moving events between files and a server.

Import reads NDJSON or CSV a line at a time (`import_source`), sends batches through the
batch API and sorts each line into accepted, duplicate or rejected (`import_run`). It is
safe to run again within the server's idempotency window (7 days by default): every line
carries an idempotency key, its own, one derived from the exported event's id, or one
derived from the file's name and the line number, so what is stored already comes back as a
duplicate. Rejected lines are written to a rejects file in the input's format, ready to fix
and import, with the reasons beside them (events.rejected.errors.jsonl for
events.rejected.ndjson). An existing rejects file may hold the user's fixes, so it is never
replaced without --force; a resumed import (--from-line) adds to it when it is as the stopped run
left it (one reason per rejected line, all for lines before the resume line).

Every path the command will write is checked before anything is read or sent, so a typo in
--output or --rejects is a usage error, not a traceback halfway through.

Export pages through `GET /v1/events` with the filters given and writes each page as it
arrives (`export_writers`), so memory stays flat however many events there are.

Exit status of import: 0 when every line was accepted or a duplicate, 3 when the import ran
to the end but some lines were rejected (the summary says how many and where they are), 1
when it stopped early (a wrong key, a server that stays down), 2 for a usage error and 130
when interrupted (Ctrl-C), after the summary so far and the line to resume from.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click
from eventyard_client import AuthenticationError, Client

from eventyard.cli import export_writers, import_run, import_source
from eventyard.cli.remote import (
    event_filters,
    open_client,
    remote_options,
    reported_errors,
    stderr_is_tty,
)
from eventyard.cli.root import main

EXIT_REJECTED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command stopped by Ctrl-C
# Enough patience for a server restart (backoff 0.5 s doubling: about 30 s in all) before a
# batch counts as failed.
IMPORT_RETRIES = 6


# -- import


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(import_source.FORMATS),
    help="The file's format (default: from its extension: .ndjson/.jsonl/.json or .csv).",
)
@click.option(
    "--rejects",
    "rejects_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where rejected lines go (default: events.rejected.ndjson for events.ndjson); their "
    "reasons go beside it (events.rejected.errors.jsonl). An existing one is not replaced "
    "without --force.",
)
@click.option(
    "--force",
    is_flag=True,
    help="Replace the rejects files of an earlier run, resumed or not (removed when this run "
    "rejects nothing).",
)
@click.option(
    "--key-prefix",
    help="Derive idempotency keys from this instead of FILE's name; keep it the same to "
    "re-run an import of a renamed file, change it to import another file of the same name.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, import_run.MAX_BATCH_EVENTS),
    default=500,
    show_default=True,
    help="Events a request (a request also stays under 512 KB).",
)
@click.option(
    "--in-flight",
    type=click.IntRange(1, 16),
    default=4,
    show_default=True,
    help="Batches sent at the same time.",
)
@click.option(
    "--from-line",
    type=click.IntRange(1),
    default=1,
    help="Skip the lines before this one, to resume a stopped import; rejects are added to "
    "the rejects file of the run it resumes (refused if the file is not as that run left it).",
)
@remote_options
def import_(
    url: str,
    key: str | None,
    as_json: bool,
    file: Path,
    fmt: str | None,
    rejects_path: Path | None,
    force: bool,
    key_prefix: str | None,
    batch_size: int,
    in_flight: int,
    from_line: int,
) -> None:
    """Send the events in FILE (NDJSON, or CSV with a header row) to the server.

    Each NDJSON line, or CSV row, is an event: trigger, user_id, payload, timestamp and
    idempotency_key, as for POST /v1/events. In CSV, a `payload` column holds a JSON object
    and every other column is a payload field: a cell that is a JSON number, true, false or
    null is that value, any other cell is text, an empty cell is left out. A JSON array is
    refused: convert it to NDJSON first (jq -c '.[]').

    A line without an idempotency_key gets one derived from the exported event's id, or
    else from FILE's name (not its folder) and the line number, so running the same import
    again within the server's idempotency window (EVENTYARD_IDEMPOTENCY_WINDOW_SECONDS, 7
    days by default) stores nothing twice: those lines count as duplicates. An export
    imported back into the environment it came from copies, once, the events stored there
    without an idempotency key.

    Rejected lines are written, as they were, to the rejects file, and why to a file beside
    it; fix them there and import that file. An earlier run's rejects file is not replaced
    without --force. Ctrl-C stops sending and says which --from-line resumes the import; a
    second Ctrl-C stops waiting for the batches already sent.

    Exit status: 0 all accepted or duplicates, 3 some lines rejected, 1 stopped early, 2 a
    usage error, 130 interrupted.
    """
    try:
        fmt = import_source.format_for(file, fmt)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    rejects_path = rejects_path or default_rejects_path(file, fmt)
    reasons_path = rejects_path.with_name(f"{rejects_path.stem}.errors.jsonl")
    for path in (rejects_path, reasons_path):
        if path.resolve() == file.resolve():
            raise click.UsageError(f"the rejects file {path} must not be the file being imported")
        check_output_path(path, "--rejects")
    # A resumed import adds to the rejects of the run it resumes, and only to those.
    append = from_line > 1 and not force
    earlier = [str(p) for p in (rejects_path, reasons_path) if p.exists()]
    if append and not import_run.resumable(rejects_path, reasons_path, fmt, from_line):
        one = len(earlier) == 1
        raise click.UsageError(
            f"{' and '.join(earlier)} already exist{'s' if one else ''}, but not as an import "
            f"stopped before line {from_line} leaves {'it' if one else 'them'} (one reason "
            f"per rejected line, all for lines before {from_line}), so a resumed import does "
            f"not add to {'it' if one else 'them'}. {rejects_advice(earlier, rejects_path)}"
        )
    if earlier and not force and not append:
        raise click.UsageError(
            f"{' and '.join(earlier)} already exist{'s' if len(earlier) == 1 else ''}, from "
            f"an earlier import. {rejects_advice(earlier, rejects_path)}"
        )
    prefix = key_prefix if key_prefix is not None else file.name
    client = open_client(url, key, max_retries=IMPORT_RETRIES, timeout=60.0)
    started = time.monotonic()
    tally = import_run.Tally(next_line=from_line)
    # Ctrl-C only sets flags from here until the command ends, so it never splits the books
    # (nor a rejected line from its reason) and the summary is always printed.
    with ctrl_c() as interrupts:
        with client, file.open("rb") as stream:
            try:
                source = import_source.Source(stream, fmt, prefix)
            except import_source.JsonArrayFile as exc:
                raise click.UsageError(f"{file}: {exc}") from None
            except ValueError as exc:
                raise click.ClickException(f"{file}: {exc}") from None
            rejects = import_run.RejectsFile(
                rejects_path, reasons_path, source.header, append=append
            )
            records = (r for r in source if r.line >= from_line)
            batches = import_run.batches(records, lambda: source.position, batch_size)
            stopped: import_run.Stopped | None = None
            interrupted: import_run.Interrupted | None = None
            try:
                with byte_progress(file.stat().st_size, "Importing") as progress:
                    import_run.run_import(
                        client,
                        batches,
                        interrupts.shielded(rejects.write),
                        tally,
                        in_flight=in_flight,
                        progress=progress,
                        stop=interrupts.stop,
                        hurry=interrupts.hurry,
                    )
            except import_run.Stopped as exc:
                stopped = exc
            except import_run.Interrupted as exc:
                interrupted = exc
            finally:
                rejects.close()
            if force:
                rejects.remove_unwritten()
        finish_import(file, url, tally, rejects, stopped, interrupted, as_json, started)


def finish_import(
    file: Path,
    url: str,
    tally: import_run.Tally,
    rejects: import_run.RejectsFile,
    stopped: import_run.Stopped | None,
    interrupted: import_run.Interrupted | None,
    as_json: bool,
    started: float,
) -> None:
    """Print the summary, and where to resume; exit with the import's status."""
    rejects_path, reasons_path = rejects.path, rejects.reasons_path
    summary = {
        "file": str(file),
        "lines": tally.lines,
        "accepted": tally.accepted,
        "duplicate": tally.duplicate,
        "rejected": tally.rejected,
        "rejected_by_code": tally.codes,
        "rejects_file": str(rejects_path) if rejects.written else None,
        "reasons_file": str(reasons_path) if rejects.written else None,
        "complete": stopped is None and interrupted is None,
        "interrupted": interrupted is not None,
        "resume_from_line": ended.line if (ended := stopped or interrupted) else None,
        "seconds": round(time.monotonic() - started, 3),
    }
    print_import_summary(summary, rejects.first, as_json)
    if interrupted is not None:
        click.echo(
            f"Interrupted: lines before {interrupted.line:,} are done. To carry on, run the "
            f"same command with --from-line {interrupted.line}"
            f"{resume_rejects_note(rejects, tally)}.",
            err=True,
        )
        sys.stdout.flush()
        sys.stderr.flush()
        # Batches still out are in daemon threads: leaving now abandons them, and their lines
        # are the ones the resume line sends again (as duplicates if they were stored).
        os._exit(EXIT_INTERRUPTED)
    if stopped is not None:
        fail_stopped(stopped, url, file, resume_rejects_note(rejects, tally))
    if tally.rejected:
        sys.exit(EXIT_REJECTED)


def rejects_advice(earlier: list[str], rejects_path: Path) -> str:
    them = "it" if len(earlier) == 1 else "them"
    return (
        f"Fix the lines in {rejects_path} and import that file, or move {them} away; or pass "
        f"--force to replace {them}, or --rejects PATH to write elsewhere"
    )


def resume_rejects_note(rejects: import_run.RejectsFile, tally: import_run.Tally) -> str:
    if not tally.rejected and not rejects.path.exists():
        return ""
    return f" (its rejects are added to {rejects.path})"


class Interrupts:
    """What Ctrl-C asked for, as flags: the first sets `stop` (wind down in order), the
    second `hurry` (give up on the batches still out, at once). The third raises
    KeyboardInterrupt, as usual, for an import stuck elsewhere (a pipe that does not
    write), but never inside a `shielded` call: there it waits for the call to end."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.hurry = threading.Event()
        self._count = 0
        self._shielding = 0
        self._deferred = False

    def handle(self, _signum: int, _frame: object) -> None:
        self._count += 1
        if self._count == 1:
            self.stop.set()
        elif self._count == 2:
            self.hurry.set()
        elif self._shielding:
            self._deferred = True
        else:
            raise KeyboardInterrupt

    def shielded(self, call: Callable[..., None]) -> Callable[..., None]:
        def run(*args: Any) -> None:
            self._shielding += 1
            try:
                call(*args)
            finally:
                self._shielding -= 1
            if self._deferred and not self._shielding:
                self._deferred = False
                raise KeyboardInterrupt

        return run


@contextmanager
def ctrl_c() -> Iterator[Interrupts]:
    """Ctrl-C as `Interrupts` flags while the block runs (in the main thread)."""
    interrupts = Interrupts()
    if threading.current_thread() is not threading.main_thread():
        yield interrupts
        return
    previous = signal.signal(signal.SIGINT, interrupts.handle)
    try:
        yield interrupts
    finally:
        signal.signal(signal.SIGINT, previous)


def check_output_path(path: Path, option: str) -> None:
    """Refuse, as a usage error, a file that cannot be written: before anything is sent."""
    if path.is_dir():
        raise click.UsageError(f"{option} {path} is a directory; give a file name")
    if path.exists():
        if path.is_file() and not os.access(path, os.W_OK):
            raise click.UsageError(f"{option} {path} cannot be written (permission denied)")
        return
    parent = path.resolve().parent
    if not parent.is_dir():
        raise click.UsageError(f"{option} {path}: the directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise click.UsageError(f"{option} {path}: cannot write in {parent} (permission denied)")


def plural(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def default_rejects_path(file: Path, fmt: str) -> Path:
    """events.ndjson → events.rejected.ndjson, beside the input."""
    return file.with_name(f"{file.stem}.rejected{file.suffix or '.' + fmt}")


def print_import_summary(
    summary: dict[str, Any], first: list[tuple[int, import_source.Problem]], as_json: bool
) -> None:
    if as_json:
        click.echo(json.dumps(summary, ensure_ascii=False))
        return
    for line, problem in first:
        click.echo(f"line {line}: {problem.code}: {problem.message}", err=True)
    if summary["rejected"] > len(first):
        more = plural(summary["rejected"] - len(first), "more rejected line")
        click.echo(f"(and {more})", err=True)
    verb = "Imported"
    if summary["interrupted"]:
        verb = "Interrupted importing"
    elif not summary["complete"]:
        verb = "Stopped importing"
    lines = plural(summary["lines"], "line")
    click.echo(f"{verb} {summary['file']}: {lines} in {summary['seconds']} s")
    width = len(f"{max(summary['accepted'], summary['duplicate'], summary['rejected']):,}")
    click.echo(f"  accepted   {summary['accepted']:>{width},}")
    click.echo(f"  duplicate  {summary['duplicate']:>{width},}")
    rejected = f"  rejected   {summary['rejected']:>{width},}"
    if summary["rejects_file"]:
        rejected += f"  → {summary['rejects_file']} (reasons: {summary['reasons_file']})"
    click.echo(rejected)


def fail_stopped(stopped: import_run.Stopped, url: str, file: Path, rejects_note: str) -> None:
    resume = (
        f"Lines before {stopped.line:,} are done. To carry on, run the same command with "
        f"--from-line {stopped.line}{rejects_note}."
    )
    if isinstance(stopped.error, AuthenticationError):
        resume = f"Nothing more was sent from {file}; fix the key and run the command again."
    try:
        with reported_errors(url):
            raise stopped.error
    except click.ClickException as exc:
        raise click.ClickException(
            f"stopped at line {stopped.line:,}: {exc.message}\n{resume}"
        ) from None


@contextmanager
def byte_progress(total: int, label: str) -> Iterator[Callable[[int], None]]:
    """A progress bar on stderr over `total` bytes, when stderr is a terminal; the callable
    takes the position reached."""
    if not stderr_is_tty():
        yield lambda _position: None
        return
    with click.progressbar(length=total, label=label, file=sys.stderr) as bar:
        done = 0

        def advance(position: int) -> None:
            nonlocal done
            bar.update(max(position - done, 0))
            done = max(done, position)

        yield advance


# -- export


@main.command("export")
@event_filters
@click.option(
    "--format",
    "fmt",
    type=click.Choice(export_writers.FORMATS),
    help="Default: from the --output extension (.ndjson/.jsonl, .csv, .parquet); NDJSON "
    "for stdout.",
)
@click.option(
    "--output",
    "-o",
    default="-",
    show_default=True,
    help="The file to write, or - for stdout (not for Parquet).",
)
@remote_options
def export(
    url: str,
    key: str | None,
    as_json: bool,
    trigger: str | None,
    user_id: str | None,
    source: str | None,
    since: str | None,
    until: str | None,
    fmt: str | None,
    output: str,
) -> None:
    """Write the events matching the filters to a file, newest first, page by page.

    Columns: id, trigger, user_id, timestamp, received_at, idempotency_key, source,
    environment, payload, expires_at. In CSV and Parquet the payload is JSON text. An
    NDJSON or CSV export imports with `eventyard import` into another server or
    environment; imported back into this one, it copies, once, the events stored without
    an idempotency key.
    """
    if output != "-":
        check_output_path(Path(output), "--output")
    try:
        fmt = export_writers.format_for(output, fmt)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None
    if fmt == "parquet":
        if output == "-":
            raise click.UsageError("Parquet cannot go to stdout: give --output FILE.parquet")
        try:
            export_writers.check_parquet()
        except RuntimeError as exc:
            raise click.ClickException(str(exc)) from None
    filters = {
        "trigger": trigger,
        "user_id": user_id,
        "source": source,
        "since": since,
        "until": until,
    }
    client = open_client(url, key, max_retries=IMPORT_RETRIES, timeout=60.0)
    started = time.monotonic()
    with client, reported_errors(url):
        try:
            count = write_export(client, {k: v for k, v in filters.items() if v}, fmt, output)
        except OSError as exc:  # a full disk, a directory removed meanwhile, a closed pipe
            where = "stdout" if output == "-" else output
            raise click.ClickException(f"cannot write {where}: {exc.strerror or exc}") from None
    summary = {
        "exported": count,
        "format": fmt,
        "output": output,
        "seconds": round(time.monotonic() - started, 3),
    }
    to_stderr = output == "-"
    if as_json:
        click.echo(json.dumps(summary), err=to_stderr)
    else:
        where = "stdout" if to_stderr else output
        click.echo(
            f"Exported {plural(count, 'event')} to {where} ({fmt}) in {summary['seconds']} s",
            err=to_stderr,
        )


def write_export(client: Client, filters: dict[str, str], fmt: str, output: str) -> int:
    count = 0
    tty = stderr_is_tty()
    with export_writers.output_stream(output) as stream:
        writer = export_writers.open_writer(fmt, stream)
        for page in pages(client, filters):
            writer.write(page)
            count += len(page)
            if tty:
                click.echo(f"\rExporting: {count:,} events", nl=False, err=True)
        writer.close()
    if tty:
        click.echo("", err=True)
    return count


def pages(client: Client, filters: dict[str, Any]) -> Iterator[list[Any]]:
    params: dict[str, Any] = {**filters, "limit": 1000}
    while True:
        page = client.events.list(**params)
        if page["data"]:
            yield page["data"]
        cursor = page.get("next_cursor")
        if not cursor:
            return
        params["cursor"] = cursor
