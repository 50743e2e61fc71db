"""Reading import files: numbers no JSON request can carry are refused or kept as text."""

from __future__ import annotations

import io

from eventyard.cli.import_source import Source, cell_value


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
