"""Log lines: one per record, as JSON or text, each with the id of the request it belongs to.

`configure_logging(settings)` sets the process's logging once, at start-up: every record goes
to standard error as one line, a JSON object (`time`, `level`, `logger`, `message`, then the
record's own fields and a traceback as `exc`) or a text line (`time level logger message`,
then `key=value` fields). The id of the request being handled lives in `REQUEST_ID`, a context
variable the application sets per request, so any line logged while handling it — an
unhandled error's traceback included — carries `request_id` without being passed it.

The access line (one per request: method, route template, status, duration, request id, the
key's project and environment) is on the hot path, so it is not a `LogRecord`: `AccessLog`
builds the line itself rather than going through the logging module's record, filters and
formatter (see bench/). It writes only what is safe to keep: the route's template, never the
raw path or the query, which may hold a user id or an e-mail address; never a header, a key
or a body.

The event loop never writes the access line itself: it appends the line to a bounded queue,
and a writer thread writes what has queued up, in one write, under the handler's lock — so
access lines never interleave with the lines other threads log, and a slow standard error
(a full pipe to journald) stalls the writer thread rather than every request. When the
queue is full the line is dropped and counted (`eventyard_access_log_dropped_total`, and a
warning line in the log once the stream takes lines again). At exit what is queued is
written, waiting `ACCESS_EXIT_WAIT_S` at most.
"""

from __future__ import annotations

import atexit
import logging
import os
import sys
import threading
import time
from collections import deque
from contextvars import ContextVar
from typing import IO, Any

import orjson

from eventyard.clock import format_us
from eventyard.settings import Settings

REQUEST_ID: ContextVar[str | None] = ContextVar("eventyard_request_id", default=None)
ACCESS_LOGGER = "eventyard.access"
ACCESS_QUEUE_LINES = 10_000  # access lines waiting for the stream at most; more are dropped
ACCESS_EXIT_WAIT_S = 2.0  # at exit, how long to wait for queued lines to be written
# The writer thread writes what is queued this often, or as soon as this many lines wait:
# waking it for each line cost a thread switch a request (8 % of single-event ingest on one
# core, bench/run.py --scenarios single).
ACCESS_FLUSH_S = 0.1
ACCESS_WAKE_LINES = 512

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
    """Queues one access line a request; a thread of its own writes them to the handler's
    stream under the handler's lock."""

    def __init__(self, handler: logging.StreamHandler[IO[str]], fmt: str) -> None:
        self._handler = handler
        self._json = fmt == "json"
        self._limit = ACCESS_QUEUE_LINES
        self._lines: deque[str] = deque()
        self._wake = threading.Event()
        self._closed = False
        self.dropped = 0  # lines dropped since start because the queue was full
        self._reported = 0  # drops already told in the log
        self._thread = self._start()

    def _start(self) -> threading.Thread:
        thread = threading.Thread(target=self._run, name="eventyard-access-log", daemon=True)
        thread.start()
        return thread

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
        if self._closed:  # at exit, after the writer thread's last write
            self._put([line + "\n"])
        elif len(self._lines) >= self._limit:
            self.dropped += 1
        else:
            self._lines.append(line + "\n")
            if len(self._lines) >= ACCESS_WAKE_LINES and not self._wake.is_set():
                self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait(ACCESS_FLUSH_S)
            self._wake.clear()  # before taking the lines: a line queued from now wakes us again
            self._drain()
            if self._closed:
                self._drain()
                return

    def _drain(self) -> None:
        chunk = []
        while self._lines:
            chunk.append(self._lines.popleft())
        dropped = self.dropped
        if dropped != self._reported:
            chunk.append(self._dropped_line(dropped - self._reported))
            self._reported = dropped
        if chunk:
            self._put(chunk)

    def _put(self, chunk: list[str]) -> None:
        self._handler.acquire()  # the lock the handler writes other threads' lines under
        try:
            stream = self._handler.stream
            stream.write("".join(chunk))
            stream.flush()
        except (OSError, ValueError):  # the stream is gone, at exit
            pass
        finally:
            self._handler.release()

    def _dropped_line(self, count: int) -> str:
        now = format_us(time.time_ns() // 1000)
        message = f"{count} access lines dropped: the log's stream did not keep up"
        if self._json:
            fields = {"time": now, "level": "warning", "logger": ACCESS_LOGGER}
            return orjson.dumps({**fields, "message": message, "dropped": count}).decode() + "\n"
        return f"{now} WARNING {ACCESS_LOGGER} {message} dropped={count}\n"

    def close(self, wait_s: float = ACCESS_EXIT_WAIT_S) -> None:
        """Write what is queued (waiting `wait_s` at most); later lines are written at once."""
        self._closed = True
        self._wake.set()
        self._thread.join(wait_s)

    def after_fork(self) -> None:
        """In a forked child: the parent's thread is gone and its queued lines are its own."""
        self._lines.clear()
        self._wake = threading.Event()
        if not self._closed:
            self._thread = self._start()


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
    if _access is not None:
        _access.close()
    on = settings.access_log and logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO)
    _access = AccessLog(handler, settings.log_format) if on else None


def close_access_log() -> None:
    """Write the queued access lines (at exit; a forked server process, which leaves with
    `os._exit` and so runs no `atexit` hook, calls it itself)."""
    if _access is not None:
        _access.close()


def _access_after_fork() -> None:
    if _access is not None:
        _access.after_fork()


atexit.register(close_access_log)
os.register_at_fork(after_in_child=_access_after_fork)
