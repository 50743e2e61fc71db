"""Log lines: one per record, as JSON or text, each with the id of the request it belongs to.

`configure_logging(settings)` sets the process's logging once, at start-up: every record goes
to standard error as one line, a JSON object (`time`, `level`, `logger`, `message`, then the
record's own fields and a traceback as `exc`) or a text line (`time level logger message`,
then `key=value` fields). The id of the request being handled lives in `REQUEST_ID`, a context
variable the application sets per request, so any line logged while handling it — an
unhandled error's traceback included — carries `request_id` without being passed it.

The access line (one per request: method, route template, status, duration, request id, the
key's project and environment) is on the hot path, so it is not a `LogRecord`: `AccessLog`
builds the line itself and writes it to the stream the handler writes to, which costs a few
microseconds rather than the logging module's record, filters and formatter (see bench/).
It writes only what is safe to keep: the route's template, never the raw path or the query,
which may hold a user id or an e-mail address; never a header, a key or a body.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
from contextvars import ContextVar
from typing import IO, Any

import orjson

from eventyard.clock import format_us
from eventyard.settings import Settings

REQUEST_ID: ContextVar[str | None] = ContextVar("eventyard_request_id", default=None)
ACCESS_LOGGER = "eventyard.access"

# A LogRecord's own attributes; anything else on a record came from `extra=` and is a field.
_RECORD_ATTRS = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}  # uvicorn's message with terminal colours
)


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = {k: v for k, v in vars(record).items() if k not in _RECORD_ATTRS}
    request_id = REQUEST_ID.get()
    if request_id is not None:
        fields.setdefault("request_id", request_id)
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, µs), level, logger, message, fields, `exc`."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": format_us(int(record.created * 1_000_000)),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exc"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message key=value …`, then a traceback's lines."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return format_us(int(record.created * 1_000_000))

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _fields(record)
        if not fields:
            return text
        head, sep, tail = text.partition("\n")  # fields go on the message's line
        return head + "".join(f" {k}={_text_value(v)}" for k, v in fields.items()) + sep + tail


def _text_value(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' "=\n'):
        return orjson.dumps(text).decode()
    return text


class AccessLog:
    """Writes one access line a request, straight to the log's stream."""

    def __init__(self, stream: IO[str], fmt: str) -> None:
        self._stream = stream
        self._json = fmt == "json"

    def write(
        self,
        method: str,
        route: str | None,
        status: int,
        duration_ms: float,
        request_id: str,
        project: str | None,
        environment: str | None,
        bytes_out: int,
    ) -> None:
        now = format_us(time.time_ns() // 1000)
        duration = round(duration_ms, 3)
        if self._json:
            line = orjson.dumps(
                {
                    "time": now,
                    "level": "info",
                    "logger": ACCESS_LOGGER,
                    "message": f"{method} {route or '-'} {status}",
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": duration,
                    "request_id": request_id,
                    "project": project,
                    "environment": environment,
                    "bytes": bytes_out,
                }
            ).decode()
        else:
            line = (
                f"{now} INFO {ACCESS_LOGGER} {method} {route or '-'} {status}"
                f" duration_ms={duration} request_id={request_id} project={project or '-'}"
                f" environment={environment or '-'} bytes={bytes_out}"
            )
        with contextlib.suppress(OSError, ValueError):  # the stream is gone, at exit
            self._stream.write(line + "\n")


_access: AccessLog | None = None


def access_log() -> AccessLog | None:
    """The access line's writer, or None when access lines are off (or logging is not set
    up by `configure_logging`, as in tests that run the app in-process)."""
    return _access


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> None:
    """Send every log record to `stream` (standard error) in `settings.log_format`."""
    global _access
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if settings.log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    on = settings.access_log and logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
    _access = AccessLog(stream, settings.log_format) if on else None
