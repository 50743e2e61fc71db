"""Sending an import's records through `POST /v1/events/batch` and keeping the books.

Records go out in batches under the server's limits (at most `batch_size` events and
`MAX_BATCH_BYTES` of JSON a request), with up to `in_flight` batches sent at once from a
small thread pool while the file is read on. Results are taken in the file's order, so the
rejects file lists lines in the order the input had them, and a failure that stops the
import names the first line that has no answer: every line before it has been dealt with.

Only a failure of the whole request stops the import (a wrong key, a server that stays
down after the client's retries). A rejected item is a line to fix, not a reason to stop.

Ctrl-C sets `stop` rather than raising in the middle of the books: no further batch is
sent, the batches already out get `GRACE_SECONDS` to answer and are settled in order, and
`Interrupted` names the first line without an answer. A second Ctrl-C sets `hurry`: the
batches that have answered already are settled, the others are given up at once. Each batch
is sent from a daemon thread, so a batch still retrying against a server that went away
cannot hold the process open once the command has said where to resume.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from eventyard_client import Client
from eventyard_client.resource import Resource

from eventyard.cli.import_source import Problem, Record, Source

# The server takes 512 KB a request; stay well under it with the JSON envelope's few bytes.
MAX_BATCH_BYTES = 480 * 1024
MAX_BATCH_EVENTS = 1000
# After Ctrl-C, how long the batches already sent may take to answer before the import
# gives up on them (their lines are then resumed, and come back as duplicates if stored).
GRACE_SECONDS = 3.0
_POLL_SECONDS = 0.1

Reject = Callable[[Record, Problem], None]


@dataclass
class Tally:
    lines: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    codes: dict[str, int] = field(default_factory=dict)
    next_line: int = 1  # the line after the last one settled: where to resume

    def reject(self, code: str) -> None:
        self.rejected += 1
        self.codes[code] = self.codes.get(code, 0) + 1


@dataclass
class Batch:
    records: list[Record] = field(default_factory=list)
    size: int = 0
    position: int = 0  # bytes of the file read when the batch was closed

    @property
    def events(self) -> list[Mapping[str, Any]]:
        return [r.event for r in self.records if r.event is not None]


def batches(
    records: Iterable[Record], position: Callable[[], int], batch_size: int
) -> Iterator[Batch]:
    """Group records into batches the server accepts; a record that could never fit one is
    rejected here. Records rejected locally ride along with their neighbours so the rejects
    stay in file order."""
    batch = Batch()
    sent = 0
    for record in records:
        if record.event is not None:
            size = len(json.dumps(record.event, ensure_ascii=False).encode()) + 1
            if size > MAX_BATCH_BYTES:
                record.problem = Problem(
                    "payload_too_large",
                    f"the event is {size:,} bytes as JSON; a request is at most 512 KB",
                )
                record.event = None
            else:
                if sent >= batch_size or batch.size + size > MAX_BATCH_BYTES:
                    batch.position = position()
                    yield batch
                    batch, sent = Batch(), 0
                batch.size += size
                sent += 1
        batch.records.append(record)
    batch.position = position()
    if batch.records:
        yield batch


class Stopped(Exception):
    """The import stopped before the end: `error` is the client's; lines from `line` on have
    no answer."""

    def __init__(self, error: Exception, line: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.line = line


class Interrupted(Exception):
    """Ctrl-C: lines from `line` on have no answer (some may be stored all the same)."""

    def __init__(self, line: int) -> None:
        super().__init__(f"interrupted at line {line}")
        self.line = line


def run_import(
    client: Client,
    to_send: Iterable[Batch],
    reject: Reject,
    tally: Tally,
    *,
    in_flight: int,
    progress: Callable[[int], None],
    stop: threading.Event | None = None,
    hurry: threading.Event | None = None,
) -> None:
    """Send every batch, `in_flight` at a time, and settle their results in order.

    Raises `Stopped` on the first request that fails as a whole, and `Interrupted` once
    `stop` is set (the batches out get the grace time to answer, none once `hurry` is set);
    what came before is in the tally and the rejects.
    """
    stop = stop or threading.Event()
    hurry = hurry or threading.Event()
    pending: deque[tuple[Batch, Future[Resource] | None]] = deque()
    for batch in to_send:
        if stop.is_set():
            break
        events = batch.events
        pending.append((batch, _send(client, events) if events else None))
        while pending and (len(pending) >= in_flight or _done(pending[0][1])):
            if not _wait(pending[0][1], stop):
                break
            _settle(*pending.popleft(), reject, tally, progress)
        if stop.is_set():
            break
    else:
        while pending and _wait(pending[0][1], stop):
            _settle(*pending.popleft(), reject, tally, progress)
        if not pending:
            return
    _wind_down(pending, reject, tally, progress, hurry)


def _wind_down(
    pending: deque[tuple[Batch, Future[Resource] | None]],
    reject: Reject,
    tally: Tally,
    progress: Callable[[int], None],
    hurry: threading.Event,
) -> None:
    """After Ctrl-C: settle what answers within the grace time (what has answered already,
    once `hurry` is set), then raise `Interrupted`."""
    deadline = time.monotonic() + GRACE_SECONDS
    try:
        while pending:
            future = pending[0][1]
            while not _done(future) and not hurry.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                assert future is not None
                wait([future], timeout=min(left, _POLL_SECONDS))
            if not _done(future):
                break
            _settle(*pending.popleft(), reject, tally, progress)
    except Stopped as exc:
        raise Interrupted(exc.line) from None
    raise Interrupted(pending[0][0].records[0].line if pending else tally.next_line)


def _send(client: Client, events: list[Mapping[str, Any]]) -> Future[Resource]:
    """Send one batch from a daemon thread (see the module's docstring)."""
    future: Future[Resource] = Future()

    def run() -> None:
        future.set_running_or_notify_cancel()
        try:
            future.set_result(client.send_batch(events))
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=run, name="import-batch", daemon=True).start()
    return future


def _wait(future: Future[Resource] | None, stop: threading.Event) -> bool:
    """Wait for `future` to finish; False when `stop` was set first."""
    while not _done(future):
        if stop.is_set():
            return False
        assert future is not None
        wait([future], timeout=_POLL_SECONDS)
    return True


def _done(future: Future[Resource] | None) -> bool:
    return future is None or future.done()


def _settle(
    batch: Batch,
    future: Future[Resource] | None,
    reject: Reject,
    tally: Tally,
    progress: Callable[[int], None],
) -> None:
    try:
        answer = future.result() if future is not None else Resource(results=[])
    except Exception as exc:
        raise Stopped(exc, batch.records[0].line) from exc
    results = iter(answer["results"])
    for record in batch.records:
        tally.lines += 1
        if record.event is None:
            problem = record.problem or Problem("invalid", "the line cannot be sent")
            tally.reject(problem.code)
            reject(record, problem)
        else:
            result = next(results)
            status = result["status"]
            if status == "accepted":
                tally.accepted += 1
            elif status == "duplicate":
                tally.duplicate += 1
            else:
                problem = server_problem(result)
                tally.reject(problem.code)
                reject(record, problem)
        tally.next_line = record.line + 1
    progress(batch.position)


def server_problem(result: Any) -> Problem:
    """A batch item's rejection, with its paths relative to the line (`$.payload.amount`,
    not `$.events[412].payload.amount`)."""
    code = str(result.get("code") or "rejected")
    errors = []
    for error in result.get("errors") or []:
        path = str(error.get("path", ""))
        if path.startswith("$.events["):
            path = "$" + path.partition("]")[2]
        errors.append({"path": path, "message": str(error.get("message", ""))})
    message = "; ".join(f"{e['path']} {e['message']}" for e in errors) or code
    if code == "idempotency_key_reused":
        message += (
            " (the line changed since it was first imported, or this is another file of the"
            " same name: give it its own idempotency_key, or import with another --key-prefix)"
        )
    return Problem(code, message, errors)


class RejectsFile:
    """The rejected records, byte for byte in the input's format (a CSV one starts with the
    header), and beside them one JSON line of reasons per rejected record, in the same order.
    Both files are created when the first record is rejected, so a clean run leaves none.
    With `append` (resuming an import) they are added to instead of replaced, and a CSV
    header is written only to an empty file. `first` keeps the first few reasons to show on
    the terminal."""

    def __init__(
        self, path: Path, reasons_path: Path, header: bytes, *, append: bool = False
    ) -> None:
        self.path = path
        self.reasons_path = reasons_path
        self._header = header
        self._append = append
        self._data: BinaryIO | None = None
        self._reasons: BinaryIO | None = None
        self.first: list[tuple[int, Problem]] = []

    def write(self, record: Record, problem: Problem) -> None:
        if self._data is None or self._reasons is None:
            if self._append:
                self._data = open(self.path, "ab")  # noqa: SIM115 - closed in close()
                self._reasons = open(self.reasons_path, "ab")  # noqa: SIM115
            else:
                self._data = open(self.path, "wb")  # noqa: SIM115
                self._reasons = open(self.reasons_path, "wb")  # noqa: SIM115
            if self._header and self._data.tell() == 0:
                self._data.write(_line_end(self._header))
        reason = {"line": record.line, "code": problem.code, "message": problem.message}
        if problem.errors:
            reason["errors"] = problem.errors
        data, why = _line_end(record.raw), json.dumps(reason, ensure_ascii=False).encode()
        # Nothing is computed between the two writes, and the command runs this shielded
        # from Ctrl-C (`transfer.Interrupts`), so the two files stay in step.
        self._data.write(data)
        self._reasons.write(why + b"\n")
        if len(self.first) < 5:
            self.first.append((record.line, problem))

    @property
    def written(self) -> bool:
        return self._data is not None

    def close(self) -> None:
        for stream in (self._data, self._reasons):
            if stream is not None:
                stream.close()

    def remove_unwritten(self) -> None:
        """Remove an earlier run's files when this run wrote none (the caller decides when
        they are stale: only with --force)."""
        if not self.written:
            for path in (self.path, self.reasons_path):
                path.unlink(missing_ok=True)


def resumable(path: Path, reasons_path: Path, fmt: str, from_line: int) -> bool:
    """Whether a resumed import (from `from_line`) may add to these rejects files: both
    absent, or both there and in step as an earlier run of the same import left them: one
    reason per rejected record, for lines in increasing order, all before `from_line`. A
    file the user has fixed, or one from another import, is seldom all of that."""
    if not path.exists() and not reasons_path.exists():
        return True
    if not path.is_file() or not reasons_path.is_file():
        return False
    try:
        reasons, last = 0, 0
        with reasons_path.open("rb") as stream:
            for raw in stream:
                line = json.loads(raw)["line"]
                if type(line) is not int or line <= last:
                    return False
                reasons, last = reasons + 1, line
        with path.open("rb") as stream:
            if fmt == "csv":
                records = sum(1 for _ in Source(stream, fmt, ""))
            else:
                records = sum(1 for raw in stream if raw.strip())
    except (ValueError, KeyError, TypeError, OSError):
        return False
    return records == reasons and last < from_line


def _line_end(raw: bytes) -> bytes:
    return raw if raw.endswith(b"\n") else raw + b"\n"
