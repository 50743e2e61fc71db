"""Writing exported events as NDJSON, CSV or Parquet, a page at a time.

Each writer takes pages of events as they arrive and keeps nothing of them afterwards, so an
export of millions of events runs in the memory of one page (Parquet: of one row group).
A file is written under a temporary name beside its destination and renamed into place
only when the export finished, so a failed or interrupted export never leaves a file that
looks complete.

Columns, in this order: id, trigger, user_id, timestamp, received_at, idempotency_key,
source, environment, payload, expires_at. NDJSON lines are the events as the API gives them.
In CSV, `payload` is the JSON text of the object (and an empty cell is null); in Parquet it
is a JSON string column too — payloads differ from trigger to trigger, and one string column
keeps every one of them exactly, where a struct column would need one schema for all — and
the three times are UTC timestamp columns (microseconds).
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import io
import json
import os
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import orjson

COLUMNS = (
    "id",
    "trigger",
    "user_id",
    "timestamp",
    "received_at",
    "idempotency_key",
    "source",
    "environment",
    "payload",
    "expires_at",
)
TIME_COLUMNS = frozenset({"timestamp", "received_at", "expires_at"})
FORMATS = ("ndjson", "csv", "parquet")
_EXTENSIONS = {
    ".ndjson": "ndjson",
    ".jsonl": "ndjson",
    ".json": "ndjson",
    ".csv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
}
ROW_GROUP_ROWS = 20_000
INSTALL_PARQUET = (
    "Parquet export needs pyarrow: pip install pyarrow (from a clone, pip install './[parquet]')"
)

Event = Mapping[str, Any]


class Writer(Protocol):
    def write(self, events: Sequence[Event]) -> None: ...

    def close(self) -> None: ...


def format_for(output: str, given: str | None) -> str:
    if given:
        return given
    if output == "-":
        return "ndjson"
    found = _EXTENSIONS.get(Path(output).suffix.lower())
    if found is None:
        raise ValueError(
            f"cannot tell the format from {output!r}; pass --format ndjson, csv or parquet"
        )
    return found


def open_writer(fmt: str, stream: BinaryIO) -> Writer:
    if fmt == "ndjson":
        return NdjsonWriter(stream)
    if fmt == "csv":
        return CsvWriter(stream)
    return ParquetWriter(stream)


def check_parquet() -> None:
    """Fail before any request when Parquet is asked for and pyarrow is missing."""
    try:
        importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise RuntimeError(INSTALL_PARQUET) from None


@contextlib.contextmanager
def output_stream(output: str) -> Iterator[BinaryIO]:
    """The stream to write to: stdout for `-`; a temporary file beside `output` that becomes
    `output` when the block ends without an exception, and is removed when not; or, when
    `output` exists and is not a regular file (a device, a pipe), `output` itself."""
    if output == "-":
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    target = Path(output).resolve()  # through a symlink: replace the file, keep the link
    if target.exists() and not target.is_file():
        # /dev/null, a named pipe: write to it; renaming over it would replace the device.
        with target.open("wb") as stream:
            yield stream
        return
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".partial")
    try:
        with os.fdopen(fd, "wb") as stream:
            yield stream
        os.chmod(temp, 0o666 & ~_umask())  # mkstemp makes it private; give it a file's usual mode
        os.replace(temp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


class NdjsonWriter:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, events: Sequence[Event]) -> None:
        self._stream.write(b"".join(orjson.dumps(e) + b"\n" for e in events))

    def close(self) -> None:
        self._stream.flush()


class CsvWriter:
    def __init__(self, stream: BinaryIO) -> None:
        self._text = io.TextIOWrapper(stream, encoding="utf-8", newline="", write_through=True)
        self._csv = csv.writer(self._text, lineterminator="\n")
        self._csv.writerow(COLUMNS)

    def write(self, events: Sequence[Event]) -> None:
        self._csv.writerows([[_csv_cell(e.get(c)) for c in COLUMNS] for e in events])

    def close(self) -> None:
        self._text.flush()
        self._text.detach()  # leave the stream open: its owner closes it


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)


class ParquetWriter:
    """Rows are kept until a row group's worth (`ROW_GROUP_ROWS`) and then written, so
    memory holds one row group, while the file's row groups stay big enough to read fast."""

    def __init__(self, stream: BinaryIO) -> None:
        try:
            # Imported by name: pyarrow is optional and ships no type information.
            pa = importlib.import_module("pyarrow")
            pq = importlib.import_module("pyarrow.parquet")
        except ImportError:
            raise RuntimeError(INSTALL_PARQUET) from None
        self._pa = pa
        time = pa.timestamp("us", tz="UTC")
        self._schema = pa.schema(
            [
                pa.field(c, time if c in TIME_COLUMNS else pa.string(), nullable=c not in _NOT_NULL)
                for c in COLUMNS
            ]
        )
        self._writer = pq.ParquetWriter(stream, self._schema, compression="zstd")
        self._rows: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        self._count = 0

    def write(self, events: Sequence[Event]) -> None:
        for event in events:
            for column in COLUMNS:
                self._rows[column].append(_parquet_cell(column, event.get(column)))
        self._count += len(events)
        if self._count >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._count:
            table = self._pa.Table.from_pydict(self._rows, schema=self._schema)
            self._writer.write_table(table)
            self._rows = {c: [] for c in COLUMNS}
            self._count = 0

    def close(self) -> None:
        self._flush()
        self._writer.close()


_NOT_NULL = frozenset({"id", "trigger", "user_id", "timestamp", "received_at", "payload"})


def _parquet_cell(column: str, value: Any) -> Any:
    if value is None:
        return None
    if column in TIME_COLUMNS:
        return datetime.fromisoformat(value)
    if column == "payload":
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return str(value)
