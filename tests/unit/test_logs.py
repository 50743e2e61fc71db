"""Log lines: JSON and text formats, and the request id carried into lines logged while a
request is handled (a traceback's line included), without being passed along; access lines
that never interleave with other threads' lines, and that a stuck standard error drops (and
counts) rather than stalls."""

from __future__ import annotations

import contextlib
import contextvars
import io
import json
import logging
import os
import threading
import time
from collections.abc import Iterator

import pytest

from eventyard import logs
from eventyard.settings import Settings


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level, access = list(root.handlers), root.level, logs.access_log()
    yield
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    logs._access = access


def _log_while_handling(request_id: str) -> None:
    def handle() -> None:
        logs.REQUEST_ID.set(request_id)
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("eventyard.api").exception("unhandled error in GET /v1/events")
        logging.getLogger("eventyard.delivery").info("sent", extra={"consumer": "con_1"})

    contextvars.copy_context().run(handle)
    logging.getLogger("eventyard").warning("outside any request")


def test_json_lines_carry_the_request_id_fields_and_traceback(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure_logging(Settings(log_format="json"), out)
    _log_while_handling("req-9")
    error, sent, outside = (json.loads(line) for line in out.getvalue().splitlines())
    assert error["level"] == "error"
    assert error["logger"] == "eventyard.api"
    assert error["message"] == "unhandled error in GET /v1/events"
    assert error["request_id"] == "req-9"
    assert "Traceback" in error["exc"]
    assert "ValueError: boom" in error["exc"]
    assert error["time"].endswith("Z")
    assert sent["consumer"] == "con_1"
    assert sent["request_id"] == "req-9"
    assert "request_id" not in outside
    assert logs.access_log() is not None


def test_text_lines_append_fields_and_keep_the_traceback_below(restore_logging: None) -> None:
    out = io.StringIO()
    logs.configure_logging(Settings(log_format="text", access_log=False), out)
    _log_while_handling("req 10")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(
        ' ERROR eventyard.api unhandled error in GET /v1/events request_id="req 10"'
    )
    assert lines[1] == "Traceback (most recent call last):"
    assert any(line == "ValueError: boom" for line in lines)
    assert any(line.endswith(' sent consumer=con_1 request_id="req 10"') for line in lines)
    assert lines[-1].endswith(" WARNING eventyard outside any request")
    assert logs.access_log() is None  # EVENTYARD_ACCESS_LOG=false


def test_access_lines_are_off_below_info(restore_logging: None) -> None:
    logs.configure_logging(Settings(log_level="warning"), io.StringIO())
    assert logs.access_log() is None


def _access_line(i: int) -> None:
    access = logs.access_log()
    assert access is not None
    access.write("GET", "/v1/events", 200, 1.5, f"req-{i}", "prj_1", "live", 10)


class _TornStream(io.StringIO):
    """A stream whose write lets other threads run halfway through, as a write to a pipe
    or a terminal may."""

    def write(self, text: str) -> int:
        half = len(text) // 2
        super().write(text[:half])
        time.sleep(0)
        return super().write(text[half:])


def test_access_lines_never_interleave_with_other_threads_lines(
    restore_logging: None,
) -> None:
    out = _TornStream()
    logs.configure_logging(Settings(log_format="json"), out)

    def log_elsewhere() -> None:  # a reader or writer thread logging as it works
        for i in range(400):
            logging.getLogger("eventyard.store").info("committed", extra={"n": i})

    other = threading.Thread(target=log_elsewhere)
    other.start()
    for i in range(400):
        _access_line(i)
        time.sleep(0)
    other.join()
    access = logs.access_log()
    assert access is not None
    access.close()  # writes what is queued
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    loggers = [line["logger"] for line in lines]
    assert loggers.count("eventyard.access") == 400
    assert loggers.count("eventyard.store") == 400


def test_a_stream_that_does_not_take_lines_drops_access_lines_without_stalling(
    restore_logging: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Standard error is a pipe nobody reads (journald stuck): requests go on, the access
    lines that do not fit are counted, and the log says how many once it moves again."""
    monkeypatch.setattr(logs, "ACCESS_QUEUE_LINES", 100)
    read_end, write_end = os.pipe()
    stream = os.fdopen(write_end, "w")
    logs.configure_logging(Settings(log_format="json"), stream)
    sender = threading.Thread(target=lambda: [_access_line(i) for i in range(3000)], daemon=True)
    started = time.monotonic()
    sender.start()
    sender.join(5)
    try:
        assert not sender.is_alive(), "the access line blocked on a full pipe"
        assert time.monotonic() - started < 5
        access = logs.access_log()
        assert access is not None
        dropped = access.dropped
        assert dropped > 0
        received = bytearray()
        reader = threading.Thread(target=lambda: received.extend(_read_all(read_end)))
        reader.start()
        access.close(5)
        stream.close()
        reader.join(5)
    finally:
        with contextlib.suppress(OSError):
            os.close(read_end)  # unblocks a writer stuck on the pipe
    lines = [json.loads(line) for line in received.decode().splitlines()]
    written = [line for line in lines if line["message"] == "GET /v1/events 200"]
    told = [line for line in lines if line["level"] == "warning"]
    assert len(written) == 3000 - dropped
    numbers = [int(line["request_id"].removeprefix("req-")) for line in written]
    assert numbers == sorted(set(numbers))  # in order, none twice
    assert told, "the drops were not told in the log"
    assert sum(line["dropped"] for line in told) == dropped
    assert all("access lines dropped" in line["message"] for line in told)


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)
