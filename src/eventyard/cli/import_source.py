"""Reading a file for `eventyard import`: one `Record` per line (NDJSON) or row (CSV), each
with its line number, its bytes exactly as read, and the event to send or why it cannot be.

The file is read as bytes, a line at a time, so memory stays flat on any size and a rejected
line can be written back byte for byte. A CSV row may span several lines (a quoted cell with
a newline); `csv.reader` pulls lines one by one from our iterator, so the lines it took are
exactly the row's bytes.

A record without its own `idempotency_key` gets one derived from it. A record that came
from an export has the stored event's `id` (`evt_...`), and its key is a hash of that id,
wherever the file is; any other record's key is a hash of the key prefix (the file's name unless
`--key-prefix` says otherwise) and its line number. Running the same import twice therefore
sends the same keys, and the server answers "duplicate" instead of storing the events again
(for as long as it remembers a key: 7 days by default); a line that changed in between gets
`idempotency_key_reused`.

A file that opens with `[` is a JSON array, not NDJSON: it is refused whole (`JsonArrayFile`)
rather than read line by line into a few accepted objects and many rejected fragments.

CSV columns: `trigger`, `user_id`, `timestamp` and `idempotency_key` are the event's fields;
`payload` holds a JSON object; `payload.NAME` and every other column is payload field NAME.
The other columns an export adds about the stored event (`id`, `received_at`, `source`,
`environment`, `expires_at`) are not sent, so an exported file imports as it is; `id` only
gives the key. A cell that
is a JSON number, `true`, `false` or `null` is read as that value, any other cell as a
string, and an empty cell is left out. `timestamp` is epoch milliseconds when it is all
digits, else ISO 8601 text; `user_id`, `trigger` and `idempotency_key` are always strings.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from eventyard_client._core import loads_strict

from eventyard.domain.timeparse import type_name

EVENT_FIELDS = ("trigger", "user_id", "payload", "timestamp", "idempotency_key")
# What an export writes about a stored event that an import cannot send: not sent (an `id`
# gives a record without an idempotency key its key).
STORED_FIELDS = frozenset({"id", "received_at", "source", "environment", "expires_at"})
# Only a stored event's id keys a record: an `id` of the user's own (an order number) does not.
EVENT_ID_PREFIX = "evt_"
STRING_COLUMNS = frozenset({"trigger", "user_id", "idempotency_key"})
FORMATS = ("ndjson", "csv")
_EXTENSIONS = {".ndjson": "ndjson", ".jsonl": "ndjson", ".json": "ndjson", ".csv": "csv"}
# The JSON number grammar, so "007", "1e", "+1", "NaN" and " 1" stay strings.
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?")
_LITERALS: dict[str, Any] = {"true": True, "false": False, "null": None}


@dataclass(frozen=True)
class Problem:
    """Why a record is rejected, in the server's terms: a code and field errors."""

    code: str
    message: str
    errors: list[dict[str, str]] = field(default_factory=list)


@dataclass
class Record:
    """One line (or CSV row) of the input: `event` to send, or the `problem` found locally."""

    line: int
    raw: bytes
    event: dict[str, Any] | None = None
    problem: Problem | None = None


def format_for(path: Path, given: str | None) -> str:
    if given:
        return given
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise ValueError(
            f"cannot tell the format of {path.name} from its extension; pass --format ndjson "
            "or --format csv (.ndjson, .jsonl and .json are NDJSON; .csv is CSV)"
        )
    return found


def derived_key(prefix: str, line: int) -> str:
    digest = hashlib.sha256(f"{prefix}\n{line}".encode()).hexdigest()[:32]
    return f"imp_{digest}"


def key_for_exported(event_id: str) -> str:
    """The key of an exported event that had none: the same for every copy of the export,
    and never equal to a line's key (those hash a prefix *and* a line number)."""
    digest = hashlib.sha256(f"exported event\n{event_id}".encode()).hexdigest()[:32]
    return f"imp_{digest}"


class JsonArrayFile(ValueError):
    """The file holds one JSON array, where NDJSON has one object per line."""


class Source:
    """The records of one file; `position` is how many bytes have been read (for progress).

    For CSV, `header` is the header row's bytes (a rejects file starts with it). A CSV whose
    header lacks `trigger` or `user_id`, or repeats a column, raises ValueError on opening.
    """

    def __init__(self, stream: BinaryIO, fmt: str, key_prefix: str) -> None:
        self._stream = stream
        self.format = fmt
        self.key_prefix = key_prefix
        self.position = 0
        self.header = b""
        self._line = 0
        self._taken: list[bytes] = []
        self._columns: list[str] = []
        self._ahead: list[bytes] = []  # lines read to look at the start, not yet given out
        if fmt == "csv":
            self._start_csv()
        else:
            self._refuse_json_array()

    # -- lines
    def _lines(self) -> Iterator[bytes]:
        for raw in itertools.chain(self._ahead, self._stream):
            self._line += 1
            self.position += len(raw)
            if self._line == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte order mark (spreadsheets write one)
            yield raw

    def __iter__(self) -> Iterator[Record]:
        return self._ndjson() if self.format == "ndjson" else self._csv()

    # -- NDJSON
    def _refuse_json_array(self) -> None:
        for raw in self._stream:
            self._ahead.append(raw)
            text = raw.removeprefix(b"\xef\xbb\xbf") if len(self._ahead) == 1 else raw
            if text.strip():
                if text.lstrip().startswith(b"["):
                    raise JsonArrayFile(
                        "the file is a JSON array, not NDJSON (one JSON object per line); "
                        "convert it first, e.g. jq -c '.[]' FILE.json > FILE.ndjson"
                    )
                return

    def _ndjson(self) -> Iterator[Record]:
        for raw in self._lines():
            if not raw.strip():
                continue
            record = Record(self._line, raw)
            try:
                value = loads_strict(raw)
            except UnicodeDecodeError:
                record.problem = Problem("invalid_utf8", "the line is not valid UTF-8")
            except json.JSONDecodeError as exc:
                where = f"{exc.msg} at character {exc.pos + 1}"
                record.problem = Problem("malformed_json", f"the line is not JSON: {where}")
            except ValueError as exc:  # NaN, Infinity, a number too large for a double
                record.problem = Problem("malformed_json", f"the line is not JSON: {exc}")
            else:
                self._take(record, value)
            yield record

    # -- CSV
    def _start_csv(self) -> None:
        lines = self._lines()
        try:
            raw = next(lines)
        except StopIteration:
            raise ValueError("the CSV file is empty: it needs a header row") from None
        self.header = raw
        try:
            columns = next(csv.reader([raw.decode("utf-8")]))
        except (UnicodeDecodeError, csv.Error, StopIteration) as exc:
            raise ValueError(f"cannot read the CSV header row: {exc}") from None
        columns = [c.strip() for c in columns]
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise ValueError(f"the CSV header repeats {', '.join(repeated)}")
        missing = [c for c in ("trigger", "user_id") if c not in columns]
        if missing:
            raise ValueError(
                f"the CSV header has no {' or '.join(missing)} column; it has {', '.join(columns)}"
            )
        self._columns = columns

    def _decoded(self) -> Iterator[str]:
        for raw in self._lines():
            self._taken.append(raw)
            yield raw.decode("utf-8", "surrogateescape")

    def _csv(self) -> Iterator[Record]:
        reader = csv.reader(self._decoded(), strict=True)
        while True:
            self._taken = []
            first = self._line + 1
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Record(
                    first, b"".join(self._taken), problem=Problem("malformed_csv", str(exc))
                )
                continue
            raw = b"".join(self._taken)
            if not raw.strip():
                continue
            record = Record(first, raw)
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError:
                record.problem = Problem("invalid_utf8", "the row is not valid UTF-8")
            else:
                self._take(record, self._row(cells, record))
            yield record

    def _row(self, cells: list[str], record: Record) -> Any:
        if len(cells) != len(self._columns):
            record.problem = Problem(
                "malformed_csv",
                f"the row has {len(cells)} cells; the header has {len(self._columns)}",
            )
            return None
        event: dict[str, Any] = {}
        payload: dict[str, Any] = {}
        for column, text in zip(self._columns, cells, strict=True):
            if text == "" or (column in STORED_FIELDS and column != "id"):
                continue
            if column in STRING_COLUMNS or column == "id":
                event[column] = text
            elif column == "timestamp":
                event[column] = int(text) if text.isascii() and text.isdigit() else text
            elif column == "payload":
                try:
                    value = loads_strict(text)
                except ValueError as exc:
                    record.problem = _field_problem("$.payload", f"is not JSON: {exc}")
                    return None
                if not isinstance(value, dict):
                    record.problem = _field_problem("$.payload", "must be a JSON object")
                    return None
                event["payload"] = value
            else:
                name = column.removeprefix("payload.")
                payload[name] = cell_value(text)
        if payload:
            given = event.setdefault("payload", {})
            clash = sorted(set(given) & set(payload))
            if clash:
                record.problem = _field_problem(
                    f"$.payload.{clash[0]}", "is given both in the payload column and its own"
                )
                return None
            given.update(payload)
        return event

    # -- both
    def _take(self, record: Record, value: Any) -> None:
        """Check what must be right before sending; the server judges the rest."""
        if record.problem is not None:
            return
        if not isinstance(value, dict):
            record.problem = _field_problem("$", f"must be an object, got {type_name(value)}")
            return
        event = {name: v for name, v in value.items() if name not in STORED_FIELDS}
        missing = [name for name in ("trigger", "user_id") if event.get(name) in (None, "")]
        if missing:
            record.problem = Problem(
                "validation_failed",
                f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} required",
                [{"path": f"$.{name}", "message": "is required"} for name in missing],
            )
            return
        if not event.get("idempotency_key"):
            exported_id = value.get("id")
            if isinstance(exported_id, str) and exported_id.startswith(EVENT_ID_PREFIX):
                event["idempotency_key"] = key_for_exported(exported_id)
            else:
                event["idempotency_key"] = derived_key(self.key_prefix, record.line)
        record.event = event


def cell_value(text: str) -> Any:
    """A CSV payload cell: a JSON number, true, false or null as that, anything else as text."""
    if text in _LITERALS:
        return _LITERALS[text]
    if _JSON_NUMBER.fullmatch(text):
        try:
            return loads_strict(text)
        except ValueError:  # too large for a double (1e400): keep the digits as text
            return text
    return text


def _field_problem(path: str, message: str) -> Problem:
    return Problem("validation_failed", f"{path} {message}", [{"path": path, "message": message}])
