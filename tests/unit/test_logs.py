"""Log lines: JSON and text formats, and the request id carried into lines logged while a
request is handled (a traceback's line included), without being passed along."""

from __future__ import annotations

import contextvars
import io
import json
import logging
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
