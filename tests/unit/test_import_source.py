"""Reading import files: numbers no JSON request can carry are refused or kept as text, a
JSON array is refused, and each record gets the idempotency key a re-run will send again."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from eventyard.cli.import_run import RejectsFile, resumable
from eventyard.cli.import_source import (
    JsonArrayFile,
    Source,
    cell_value,
    derived_key,
    key_for_exported,
)


def test_nan_and_overflowing_numbers_are_rejected_lines_not_a_failed_batch() -> None:
    lines = (
        b'{"trigger": "t", "user_id": "u", "payload": {"x": NaN}}\n'
        b'{"trigger": "t", "user_id": "u", "payload": {"x": 1e400}}\n'
        b'{"trigger": "t", "user_id": "u", "payload": {"x": 1.5}}\n'
    )
    records = list(Source(io.BytesIO(lines), "ndjson", "prefix"))
    assert [r.problem.code if r.problem else None for r in records] == [
        "malformed_json",
        "malformed_json",
        None,
    ]
    assert records[2].event is not None
    assert records[2].event["payload"] == {"x": 1.5}


def test_csv_cells_too_large_for_a_number_stay_text() -> None:
    assert cell_value("1e400") == "1e400"
    assert cell_value("2.5") == 2.5
    assert cell_value("007") == "007"
    rows = b"trigger,user_id,big\nt,u,1e400\n"
    (record,) = list(Source(io.BytesIO(rows), "csv", "prefix"))
    assert record.event is not None
    assert record.event["payload"] == {"big": "1e400"}


def test_a_json_array_is_refused_and_blank_lines_before_an_object_are_kept_in_count() -> None:
    array = b'\xef\xbb\xbf\n  \n  [{"trigger": "t", "user_id": "u"},\n {"trigger": "t"}]\n'
    with pytest.raises(JsonArrayFile, match=r"jq -c '\.\[\]'"):
        Source(io.BytesIO(array), "ndjson", "events.json")
    lines = b'\xef\xbb\xbf\n\n{"trigger": "t", "user_id": "u"}\n[1]\n'
    first, second = Source(io.BytesIO(lines), "ndjson", "events.json")
    assert (first.line, first.event is not None) == (3, True)
    assert (second.line, second.problem and second.problem.code) == (4, "validation_failed")


def test_an_exported_event_is_keyed_by_its_id_wherever_and_whichever_line_it_is() -> None:
    exported = b'{"id": "evt_1", "trigger": "t", "user_id": "u", "idempotency_key": null}\n'
    own = b'{"id": "evt_2", "trigger": "t", "user_id": "u", "idempotency_key": "mine"}\n'
    plain = b'{"id": "order-7", "trigger": "t", "user_id": "u"}\n'  # not a stored event's

    def keys(data: bytes, prefix: str) -> list[str]:
        return [r.event["idempotency_key"] for r in Source(io.BytesIO(data), "ndjson", prefix)]

    by_id = key_for_exported("evt_1")
    assert keys(exported + own + plain, "a.ndjson") == [by_id, "mine", derived_key("a.ndjson", 3)]
    assert keys(plain + exported, "b.ndjson") == [derived_key("b.ndjson", 1), by_id]
    rows = b"id,trigger,user_id,idempotency_key\nevt_1,t,u,\nevt_2,t,u,mine\n,t,u,\n"
    records = list(Source(io.BytesIO(rows), "csv", "c.csv"))
    assert [r.event["idempotency_key"] for r in records if r.event] == [
        by_id,
        "mine",
        derived_key("c.csv", 4),
    ]
    assert all(r.event and "id" not in r.event for r in records)


def test_a_resume_adds_only_to_the_rejects_an_earlier_run_of_the_import_left(
    tmp_path: Path,
) -> None:
    text = b'trigger,user_id,note\nt,,"two\nlines"\nt,u,ok\nt,,x\n'
    rows = [r for r in Source(io.BytesIO(text), "csv", "p") if r.problem]
    assert [r.line for r in rows] == [2, 5]
    data, reasons = tmp_path / "r.csv", tmp_path / "r.errors.jsonl"
    assert resumable(data, reasons, "csv", 2)  # no rejects yet
    rejects = RejectsFile(data, reasons, b"trigger,user_id,note\n")
    for record in rows:
        assert record.problem is not None
        rejects.write(record, record.problem)
    rejects.close()
    # A row spanning two lines is one record; the header is none.
    assert resumable(data, reasons, "csv", 6)
    assert not resumable(data, reasons, "csv", 5)  # a reason for the resume line
    data.write_bytes(b"trigger,user_id,note\nt,u5,x\n")  # fixed: a row removed
    assert not resumable(data, reasons, "csv", 6)
    data.unlink()
    assert not resumable(data, reasons, "csv", 6)
