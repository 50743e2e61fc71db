"""Sending an import's records through `POST /v1/events/batch` and keeping the books.

Records go out in batches under the server's limits (at most `batch_size` events and
`MAX_BATCH_BYTES` of JSON a request), with up to `in_flight` batches sent at once from a
small thread pool while the file is read on. Results are taken in the file's order, so the
rejects file lists lines in the order the input had them, and a failure that stops the
import names the first line that has no answer: every line before it has been dealt with.

Only a failure of the whole request stops the import (a wrong key, a server that stays
down after the client's retries). A rejected item is a line to fix, not a reason to stop.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from eventyard_client import Client
from eventyard_client.resource import Resource

from eventyard.cli.import_source import Problem, Record

# The server takes 512 KB a request; stay well under it with the JSON envelope's few bytes.
MAX_BATCH_BYTES = 480 * 1024
MAX_BATCH_EVENTS = 1000

Reject = Callable[[Record, Problem], None]


@dataclass
class Tally:
    lines: int = 0
    accepted: int = 0
    duplicate: int = 0
    rejected: int = 0
    codes: dict[str, int] = field(default_factory=dict)

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


def run_import(
    client: Client,
    to_send: Iterable[Batch],
    reject: Reject,
    tally: Tally,
    *,
    in_flight: int,
    progress: Callable[[int], None],
) -> None:
    """Send every batch, `in_flight` at a time, and settle their results in order.

    Raises `Stopped` on the first request that fails as a whole; what came before it is in
    the tally and the rejects.
    """
    pending: deque[tuple[Batch, Future[Resource] | None]] = deque()
    with ThreadPoolExecutor(max_workers=in_flight, thread_name_prefix="import") as pool:
        try:
            for batch in to_send:
                events = batch.events
                future = pool.submit(client.send_batch, events) if events else None
                pending.append((batch, future))
                while len(pending) > in_flight or (pending and _done(pending[0][1])):
                    _settle(*pending.popleft(), reject, tally, progress)
            while pending:
                _settle(*pending.popleft(), reject, tally, progress)
        except BaseException:  # Stopped, or Ctrl-C: send nothing more than what is out
            for _, future in pending:
                if future is not None:
                    future.cancel()
            raise


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
            continue
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
            " (the line changed since it was first imported: give it its own idempotency_key,"
            " or import with another --key-prefix)"
        )
    return Problem(code, message, errors)


class RejectsFile:
    """The rejected records, byte for byte in the input's format (a CSV one starts with the
    header), and beside them one JSON line of reasons per rejected record, in the same order.
    Both files are created when the first record is rejected, so a clean run leaves none.
    `first` keeps the first few reasons to show on the terminal."""

    def __init__(self, path: Path, reasons_path: Path, header: bytes) -> None:
        self.path = path
        self.reasons_path = reasons_path
        self._header = header
        self._data: BinaryIO | None = None
        self._reasons: BinaryIO | None = None
        self.first: list[tuple[int, Problem]] = []

    def write(self, record: Record, problem: Problem) -> None:
        if self._data is None or self._reasons is None:
            self._data = open(self.path, "wb")  # noqa: SIM115 - closed in close()
            self._reasons = open(self.reasons_path, "wb")  # noqa: SIM115
            if self._header:
                self._data.write(_line_end(self._header))
        self._data.write(_line_end(record.raw))
        reason = {"line": record.line, "code": problem.code, "message": problem.message}
        if problem.errors:
            reason["errors"] = problem.errors
        self._reasons.write(json.dumps(reason, ensure_ascii=False).encode() + b"\n")
        if len(self.first) < 5:
            self.first.append((record.line, problem))

    @property
    def written(self) -> bool:
        return self._data is not None

    def close(self) -> None:
        for stream in (self._data, self._reasons):
            if stream is not None:
                stream.close()


def _line_end(raw: bytes) -> bytes:
    return raw if raw.endswith(b"\n") else raw + b"\n"
