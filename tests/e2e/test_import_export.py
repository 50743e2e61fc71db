"""`eventyard import` and `eventyard export` as a user runs them: the CLI in a subprocess
against a real server on each backend, checked through what the files and the API show."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from subprocess import PIPE
from typing import Any

import httpx
import pyarrow.parquet as pq
import pytest
from eventyard_client import Client

from eventyard.cli import import_run
from tests.client import conftest as client_fixtures
from tests.client.conftest import RunningServer

LINES = 3_000  # 12 batches of 250, 4 in flight: enough to show order and paging
BASE_MS = 1_763_800_000_000  # 2025-11-22T08:26:40Z


server = client_fixtures.server  # a real `eventyard serve` per test, on each backend


def cli(server: RunningServer, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "EVENTYARD_URL": server.url, "EVENTYARD_KEY": key}
    return subprocess.run(
        [sys.executable, "-m", "eventyard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def import_json(server: RunningServer, key: str, *args: str) -> tuple[int, dict[str, Any]]:
    done = cli(server, key, "import", "--json", *args)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def json_lines(path: Path) -> list[Any]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def counts(summary: dict[str, Any]) -> tuple[int, int, int, int]:
    return summary["lines"], summary["accepted"], summary["duplicate"], summary["rejected"]


def stored(server: RunningServer, key: str, **filters: Any) -> list[dict[str, Any]]:
    with Client(server.url, key) as client:
        return list(client.events.iter(**filters))


def comparable(event: dict[str, Any]) -> tuple[Any, ...]:
    """What an import must reproduce of an event."""
    payload = json.dumps(event["payload"], sort_keys=True)
    return (
        event["trigger"],
        event["user_id"],
        payload,
        event["timestamp"],
        event["idempotency_key"],
    )


def good_line(i: int) -> str:
    event = {
        "trigger": "purchase",
        "user_id": f"u{i % 50}",
        "payload": {"amount": i, "sku": f"sku-{i % 7}"},
        "timestamp": BASE_MS + i * 1000,
    }
    return json.dumps(event)


def test_ndjson_import_sorts_lines_writes_rejects_and_reruns_as_duplicates(
    server: RunningServer, tmp_path: Path
) -> None:
    with Client(server.url, server.test_key) as client:
        client.triggers.create(
            "Purchase", id="purchase", attributes=[{"name": "amount", "type": "number"}]
        )
    bad = {
        10: '{"trigger": "purchase", "user_id": ',  # not JSON
        500: json.dumps({"trigger": "purchase", "user_id": "u1", "payload": {"amount": "lots"}}),
        2900: json.dumps({"trigger": "purchase", "payload": {"amount": 1}}),  # no user_id
    }
    lines = [bad.get(i, good_line(i)) for i in range(1, LINES + 1)]
    lines[1499] = "   "  # a blank line is skipped, not rejected
    source = tmp_path / "events.ndjson"
    source.write_text("\n".join(lines) + "\n")

    status, summary = import_json(server, server.test_key, str(source), "--batch-size", "250")
    assert status == 3
    assert counts(summary) == (LINES - 1, LINES - 4, 0, 3)
    assert summary["complete"] is True
    rejects = tmp_path / "events.rejected.ndjson"
    assert summary["rejects_file"] == str(rejects)
    assert rejects.read_text().splitlines() == [bad[10], bad[500], bad[2900]]
    reasons = json_lines(tmp_path / "events.rejected.errors.jsonl")
    assert [(r["line"], r["code"]) for r in reasons] == [
        (10, "malformed_json"),
        (500, "validation_failed"),
        (2900, "validation_failed"),
    ]
    assert reasons[1]["errors"][0]["path"] == "$.payload.amount"
    assert reasons[2]["errors"] == [{"path": "$.user_id", "message": "is required"}]
    assert len(stored(server, server.test_key)) == LINES - 4

    # The rejects file may hold the user's fixes: only --force replaces it.
    status, again = import_json(
        server, server.test_key, str(source), "--batch-size", "250", "--force"
    )
    assert status == 3
    assert counts(again) == (LINES - 1, 0, LINES - 4, 3)
    assert len(stored(server, server.test_key)) == LINES - 4

    fixed = [
        json.dumps({"trigger": "purchase", "user_id": "u10", "payload": {"amount": 10}}),
        bad[500].replace('"lots"', "500"),
        bad[2900].replace('"payload"', '"user_id": "u2900", "payload"'),
    ]
    rejects.write_text("\n".join(fixed) + "\n")
    status, repaired = import_json(server, server.test_key, str(rejects))
    assert status == 0, repaired
    assert counts(repaired) == (3, 3, 0, 0)
    assert repaired["rejects_file"] is None
    assert len(stored(server, server.test_key)) == LINES - 1

    # The same line with other content: its derived key is taken, so the server refuses it.
    lines[1] = lines[1].replace('"amount": 2,', '"amount": 3,')
    source.write_text("\n".join(lines) + "\n")
    done = cli(server, server.test_key, "import", "--force", str(source))
    assert done.returncode == 3
    assert "line 2: idempotency_key_reused" in done.stderr
    assert f"duplicate  {LINES - 5:,}" in done.stdout
    reasons = json_lines(tmp_path / "events.rejected.errors.jsonl")
    assert (reasons[0]["line"], reasons[0]["code"]) == (2, "idempotency_key_reused")
    assert len(stored(server, server.test_key)) == LINES - 1


CSV_TEXT = (
    "trigger,user_id,timestamp,amount,plan,flag,note,payload,payload.source,idempotency_key\n"
    'signup,u1,2026-01-02T03:04:05Z,12.5,pro,true,,"{""tags"": [1, 2]}",web,k-1\n'
    "\n"
    'signup,u2,1767225600000,007,null,false,"two\nlines",,,k-2\n'
    "signup,,2026-01-02T03:04:05Z,1,free,true,,,,k-3\n"
    'signup,u4,2026-01-02T03:04:06Z,-1e3,"a, b",TRUE," x ",,,\n'
)


def test_csv_import_reads_columns_as_payload_fields_and_an_export_imports_back(
    server: RunningServer, tmp_path: Path
) -> None:
    source = tmp_path / "signups.csv"
    source.write_text(CSV_TEXT)
    status, summary = import_json(server, server.test_key, str(source))
    assert status == 3
    assert counts(summary) == (4, 3, 0, 1)
    header, *_ = CSV_TEXT.splitlines()
    missing = "signup,,2026-01-02T03:04:05Z,1,free,true,,,,k-3"
    assert (tmp_path / "signups.rejected.csv").read_text() == f"{header}\n{missing}\n"
    (reason,) = json_lines(tmp_path / "signups.rejected.errors.jsonl")
    # Line 6: the header is line 1 and the row for u2 spans lines 4 and 5.
    assert (reason["line"], reason["errors"]) == (
        6,
        [{"path": "$.user_id", "message": "is required"}],
    )

    events = {e["user_id"]: e for e in stored(server, server.test_key)}
    assert events["u1"]["payload"] == {
        "amount": 12.5,
        "plan": "pro",
        "flag": True,
        "tags": [1, 2],
        "source": "web",
    }
    assert events["u1"]["timestamp"] == "2026-01-02T03:04:05.000000Z"
    assert events["u1"]["idempotency_key"] == "k-1"
    # A leading zero is not a JSON number; a quoted cell keeps its newline; null is null.
    assert events["u2"]["payload"] == {
        "amount": "007",
        "plan": None,
        "flag": False,
        "note": "two\nlines",
    }
    assert events["u2"]["timestamp"] == "2026-01-01T00:00:00.000000Z"
    assert events["u4"]["payload"] == {
        "amount": -1000.0,
        "plan": "a, b",
        "flag": "TRUE",
        "note": " x ",
    }
    assert events["u4"]["idempotency_key"].startswith("imp_")

    exported = tmp_path / "export.csv"
    done = cli(server, server.test_key, "export", "--output", str(exported))
    assert done.returncode == 0, done.stderr
    status, summary = import_json(server, server.live_key, str(exported))
    assert (status, counts(summary)) == (0, (3, 3, 0, 0))
    copied = stored(server, server.live_key)
    assert sorted(map(comparable, copied)) == sorted(map(comparable, events.values()))


def test_export_writes_ndjson_csv_and_parquet_with_filters_and_round_trips(
    server: RunningServer, tmp_path: Path
) -> None:
    total = 2_500  # three pages of 1,000
    lines = []
    for i in range(total):
        event: dict[str, Any] = {
            "trigger": "view" if i % 5 else "buy",
            "user_id": f"user {i % 9}/é",
            "payload": {"i": i, "nested": {"ok": i % 2 == 0}, "text": 'a,"b"\nc'},
            "timestamp": BASE_MS + i * 60_000,
        }
        if i % 3 == 0:
            event["idempotency_key"] = f"own-{i}"
        lines.append(json.dumps(event, ensure_ascii=False))
    source = tmp_path / "seed.jsonl"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    status, summary = import_json(server, server.test_key, str(source))
    assert (status, counts(summary)) == (0, (total, total, 0, 0))
    everything = stored(server, server.test_key)

    since, until = BASE_MS + 1000 * 60_000, BASE_MS + 2000 * 60_000
    out = tmp_path / "buys.ndjson"
    done = cli(
        server, server.test_key, "export", "--trigger", "buy",
        "--since", str(since), "--until", str(until), "-o", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Exported 200 events" in done.stdout
    rows = json_lines(out)
    assert {r["payload"]["i"] for r in rows} == {i for i in range(1000, 2000) if i % 5 == 0}

    done = cli(
        server, server.test_key, "export", "--user", "user 3/é", "--format", "csv", "-o", "-"
    )
    assert done.returncode == 0, done.stderr
    table = list(csv.DictReader(io.StringIO(done.stdout)))
    assert {int(r["user_id"] == "user 3/é") for r in table} == {1}
    assert sorted(json.loads(r["payload"])["i"] for r in table) == list(range(3, total, 9))
    assert list(table[0]) == [
        "id", "trigger", "user_id", "timestamp", "received_at", "idempotency_key",
        "source", "environment", "payload", "expires_at",
    ]  # fmt: skip

    parquet = tmp_path / "all.parquet"
    done = cli(server, server.test_key, "export", "-o", str(parquet))
    assert done.returncode == 0, done.stderr
    read = pq.read_table(parquet)
    assert read.num_rows == total
    assert str(read.schema.field("timestamp").type) == "timestamp[us, tz=UTC]"
    by_id = {e["id"]: e for e in everything}
    for row in read.to_pylist()[:50]:
        event = by_id[row["id"]]
        assert json.loads(row["payload"]) == event["payload"]
        assert row["timestamp"].isoformat().replace("+00:00", "Z") == event["timestamp"].replace(
            ".000000Z", "Z"
        )
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []

    # Into the empty live environment and out again: the same events.
    dump = tmp_path / "dump.ndjson"
    assert cli(server, server.test_key, "export", "-o", str(dump)).returncode == 0
    status, summary = import_json(server, server.live_key, str(dump))
    assert (status, counts(summary)) == (0, (total, total, 0, 0))
    assert sorted(map(comparable, stored(server, server.live_key))) == sorted(
        map(comparable, everything)
    )


def test_a_wrong_key_stops_with_a_clear_message_and_leaves_no_files(
    server: RunningServer, tmp_path: Path
) -> None:
    source = tmp_path / "events.ndjson"
    source.write_text("\n".join(good_line(i) for i in range(1, 101)) + "\n")
    done = cli(server, "sk_test_wrongwrongwrong", "import", str(source))
    assert done.returncode == 1
    assert "stopped at line 1" in done.stderr
    assert "Check --key / EVENTYARD_KEY" in done.stderr
    assert "Traceback" not in done.stderr

    out = tmp_path / "out.csv"
    done = cli(server, "sk_test_wrongwrongwrong", "export", "-o", str(out))
    assert done.returncode == 1
    assert "Check --key / EVENTYARD_KEY" in done.stderr
    left = sorted(
        p.name for p in tmp_path.iterdir() if not p.name.startswith(("eventyard.db", "server"))
    )
    assert left == ["events.ndjson"]  # no rejects file, no export, no half-written export

    done = cli(server, server.test_key, "export", "--format", "parquet", "-o", "-")
    assert done.returncode == 2
    assert "give --output FILE.parquet" in done.stderr


def test_parquet_without_pyarrow_says_how_to_install_it(tmp_path: Path) -> None:
    hide_pyarrow = (
        "import sys; sys.modules['pyarrow'] = sys.modules['pyarrow.parquet'] = None; "
        "from eventyard.cli import main; main()"
    )
    done = subprocess.run(
        [sys.executable, "-c", hide_pyarrow, "export", "-o", str(tmp_path / "x.parquet")],
        capture_output=True,
        text=True,
        env={**os.environ, "EVENTYARD_KEY": "sk_test_unused"},
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "pip install pyarrow" in done.stderr
    assert list(tmp_path.iterdir()) == []


def send_without_key(server: RunningServer, key: str, user_id: str) -> None:
    """As a curl user or an adapter sends: the stored event has no idempotency key."""
    answer = httpx.post(
        f"{server.url}/v1/events",
        json={"trigger": "note", "user_id": user_id, "payload": {"n": user_id}},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert answer.status_code in (200, 201, 202), answer.text
    assert answer.json()["idempotency_key"] is None


def test_an_export_imports_once_wherever_its_file_is_and_a_json_array_is_refused(
    server: RunningServer, tmp_path: Path
) -> None:
    for user in ("a", "b", "c"):
        send_without_key(server, server.test_key, user)
    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    dump = first / "dump.ndjson"
    done = cli(server, server.test_key, "export", "-o", str(dump))
    assert done.returncode == 0, done.stderr
    assert "Exported 3 events to" in done.stdout
    done = cli(server, server.test_key, "export", "--user", "a", "-o", str(first / "a.ndjson"))
    assert "Exported 1 event to" in done.stdout

    # Into the environment it came from: the originals have no key to match, so the first
    # import copies them (the documented limit); the export's ids key every later one.
    status, summary = import_json(server, server.test_key, str(dump))
    assert (status, counts(summary)) == (0, (3, 3, 0, 0))
    copy = second / "renamed.ndjson"
    copy.write_bytes(dump.read_bytes())
    for again in (dump, copy):
        status, summary = import_json(server, server.test_key, str(again))
        assert (status, counts(summary)) == (0, (3, 0, 3, 0))
    assert len(stored(server, server.test_key)) == 6
    # Into another environment: once, wherever the file is.
    for path, expected in ((dump, (3, 3, 0, 0)), (copy, (3, 0, 3, 0))):
        status, summary = import_json(server, server.live_key, str(path))
        assert (status, counts(summary)) == (0, expected)
    assert len(stored(server, server.live_key)) == 3

    # A JSON array is not NDJSON: refused whole, before anything is sent.
    array = tmp_path / "events.json"
    array.write_text("\n  [\n" + ",\n".join(good_line(i + 100) for i in range(3)) + "\n]\n")
    done = cli(server, server.live_key, "import", str(array))
    assert done.returncode == 2
    assert "JSON array, not NDJSON" in done.stderr
    assert "jq -c '.[]'" in done.stderr
    assert len(stored(server, server.live_key)) == 3
    assert not (tmp_path / "events.rejected.json").exists()


# What follows is the command's own behaviour, the same on either backend: SQLite only.
sqlite_only = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)


@sqlite_only
def test_a_moved_file_reruns_as_duplicates_and_another_of_the_same_name_is_refused(
    server: RunningServer, tmp_path: Path
) -> None:
    first, second, third = (tmp_path / name for name in ("first", "second", "third"))
    for folder in (first, second, third):
        folder.mkdir()
    # Keys from the file's name and the line: a moved file re-runs as duplicates...
    moved = first / "signups.ndjson"
    moved.write_text("".join(good_line(i) + "\n" for i in range(3)))
    done = cli(server, server.test_key, "import", str(moved))
    assert done.returncode == 0, done.stderr
    assert "3 lines in" in done.stdout
    moved = moved.rename(second / moved.name)
    status, summary = import_json(server, server.test_key, str(moved))
    assert (status, counts(summary)) == (0, (3, 0, 3, 0))
    # ... and another file of the same name is refused where its lines differ.
    other = third / "signups.ndjson"
    other.write_text(good_line(0) + "\n" + good_line(7) + "\n")
    done = cli(server, server.test_key, "import", str(other))
    assert done.returncode == 3
    assert "line 2: idempotency_key_reused" in done.stderr
    assert "another file of the same name" in done.stderr
    assert "--key-prefix" in done.stderr
    assert "(and" not in done.stderr
    assert len(stored(server, server.test_key)) == 3
    single = third / "one.ndjson"
    single.write_text(good_line(8) + "\n")
    done = cli(server, server.test_key, "import", str(single))
    assert "one.ndjson: 1 line in" in done.stdout

    # The rejects file is the user's to fix: a re-run does not write over it...
    work = tmp_path / "work"
    work.mkdir()
    source = work / "events.ndjson"
    source.write_text(good_line(20) + '\n{"trigger": "purchase"}\nnot json\n')
    status, summary = import_json(server, server.test_key, str(source))
    assert (status, counts(summary)) == (3, (3, 1, 0, 2))
    rejects, reasons = work / "events.rejected.ndjson", work / "events.rejected.errors.jsonl"
    fixed = good_line(21) + "\n"
    rejects.write_text(fixed)
    done = cli(server, server.test_key, "import", str(source))
    assert done.returncode == 2
    assert f"{rejects} and {reasons} already exist" in done.stderr
    assert "--force" in done.stderr
    assert rejects.read_text() == fixed
    # ... and importing the rejects file puts its own rejects beside it, not over it.
    rejects.write_text(fixed + "still not json\n")
    status, summary = import_json(server, server.test_key, str(rejects))
    assert (status, counts(summary)) == (3, (2, 1, 0, 1))
    assert rejects.read_text() == fixed + "still not json\n"
    assert (work / "events.rejected.rejected.ndjson").read_text() == "still not json\n"
    # A resumed import adds to the rejects of the run it resumes (here one that stopped
    # before line 3, as if the file had ended there)...
    unknown = '{"trigger": "purchase"}\n'
    source.write_text(good_line(20) + "\n" + unknown)
    status, summary = import_json(server, server.test_key, "--force", str(source))
    assert (status, counts(summary)) == (3, (2, 0, 1, 1))
    source.write_text(good_line(20) + "\n" + unknown + "not json\n" + good_line(22) + "\n")
    status, summary = import_json(server, server.test_key, str(source), "--from-line", "3")
    assert (status, counts(summary)) == (3, (2, 1, 0, 1))
    assert rejects.read_text() == unknown + "not json\n"
    assert [r["line"] for r in json_lines(reasons)] == [2, 3]
    # ... and to no other: not one with a reason for the resume line or after it, nor one
    # the user has fixed (a line removed), nor a rejects file without its reasons.
    before = len(stored(server, server.test_key))
    source.write_text(source.read_text() + good_line(23) + "\n")
    for from_line, edit in (("3", None), ("5", fixed), ("5", "gone")):
        if edit == "gone":
            reasons.rename(work / "kept.jsonl")
        elif edit:
            rejects.write_text(edit)
        done = cli(server, server.test_key, "import", str(source), "--from-line", from_line)
        assert done.returncode == 2, done.stderr
        assert "already exist" in done.stderr
        assert "--force" in done.stderr
        assert "--rejects PATH" in done.stderr
    assert rejects.read_text() == fixed
    assert len(stored(server, server.test_key)) == before
    (work / "kept.jsonl").rename(reasons)
    # With --force, a clean run removes the earlier run's rejects rather than leave them
    # looking current.
    source.write_text(good_line(20) + "\n")
    status, summary = import_json(server, server.test_key, "--force", str(source))
    assert (status, counts(summary)) == (0, (1, 0, 1, 0))
    assert not rejects.exists()
    assert not reasons.exists()

    # A path that cannot be written is a usage error before anything is read or sent.
    fresh = work / "fresh.ndjson"
    fresh.write_text(good_line(30) + "\nnot json\n")
    before = len(stored(server, server.test_key))
    missing = tmp_path / "missing"
    for args, message in (
        (("export", "-o", str(missing / "x.ndjson")), f"the directory {missing} does not exist"),
        (("export", "-o", str(work), "--format", "csv"), f"--output {work} is a directory"),
        (
            ("import", "--rejects", str(missing / "r.ndjson"), str(fresh)),
            f"the directory {missing} does not exist",
        ),
    ):
        done = cli(server, server.test_key, *args)
        assert (done.returncode, "Traceback" in done.stderr) == (2, False), done.stderr
        assert message in done.stderr
    assert len(stored(server, server.test_key)) == before
    assert sorted(p.name for p in work.iterdir()) == [
        "events.ndjson",
        "events.rejected.rejected.errors.jsonl",
        "events.rejected.rejected.ndjson",
        "fresh.ndjson",
    ]


@sqlite_only
def test_ctrl_c_stops_sending_prints_the_summary_and_the_line_to_resume_from(
    server: RunningServer, tmp_path: Path
) -> None:
    total = 10_000  # 5,000 requests of 2: seconds of sending, however fast the machine
    source = tmp_path / "big.ndjson"
    source.write_text("".join(f'{{"trigger":"t","user_id":"u{i % 10}"}}\n' for i in range(total)))

    def start_import(url: str, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "EVENTYARD_URL": url, "EVENTYARD_KEY": server.test_key}
        command = [sys.executable, "-m", "eventyard", "import", "--json", str(source), *args]
        return subprocess.Popen(command, env=env, stdout=PIPE, stderr=PIPE, text=True)

    def interrupt(process: subprocess.Popen[str]) -> tuple[int, str, str, float]:
        """Ctrl-C: (status, stdout, stderr, seconds from Ctrl-C to exit)."""
        process.send_signal(signal.SIGINT)
        interrupted = time.monotonic()
        out, err = process.communicate(timeout=30)
        return process.returncode, out, err, time.monotonic() - interrupted

    process = start_import(server.url, "--batch-size", "2", "--in-flight", "2")
    deadline = time.monotonic() + 40
    with Client(server.url, server.test_key) as client:
        while not client.events.list(trigger="t", limit=1)["data"]:
            assert process.poll() is None, process.communicate()
            assert time.monotonic() < deadline, "the import sent nothing in 40 s"
            time.sleep(0.05)
    status, out, err, _ = interrupt(process)
    assert status == 130, err
    summary = json.loads(out)
    resume = summary["resume_from_line"]
    assert (summary["complete"], summary["interrupted"]) == (False, True)
    assert 1 <= resume <= total
    assert summary["lines"] == summary["accepted"] == resume - 1
    assert f"--from-line {resume}" in err
    assert "Traceback" not in err

    status, rest = import_json(
        server, server.test_key, str(source), "--from-line", str(resume), "--batch-size", "1000"
    )
    assert (status, rest["lines"], rest["rejected"]) == (0, total - resume + 1, 0)
    # Nothing lost, none twice: a batch abandoned after the grace time (at most the ones in
    # flight) may have been stored all the same, and comes back as duplicates.
    assert summary["accepted"] + rest["accepted"] + rest["duplicate"] == total
    assert rest["duplicate"] <= 2 * 2  # --in-flight times --batch-size
    assert len(stored(server, server.test_key, trigger="t")) == total

    # A server that takes requests and never answers: Ctrl-C does not wait out the batches
    # in flight (a minute's timeout, then retries), only the grace time.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent.settimeout(40)
        process = start_import(f"http://127.0.0.1:{silent.getsockname()[1]}")
        connection, _ = silent.accept()  # a batch is out
        with connection:
            status, out, err, seconds = interrupt(process)
    assert status == 130, err
    assert seconds < import_run.GRACE_SECONDS + 5
    assert json.loads(out)["resume_from_line"] == 1
    assert "--from-line 1" in err

    # A second Ctrl-C during the grace time gives up on the batches out at once, and still
    # prints the summary and the line to resume from.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        silent.settimeout(40)
        process = start_import(f"http://127.0.0.1:{silent.getsockname()[1]}")
        connection, _ = silent.accept()
        with connection:
            process.send_signal(signal.SIGINT)
            time.sleep(0.3)  # two signals sent together may arrive as one
            assert process.poll() is None, "the first Ctrl-C did not wait for the batches out"
            status, out, err, seconds = interrupt(process)
    assert status == 130, err
    assert seconds < import_run.GRACE_SECONDS - 1
    assert (json.loads(out)["interrupted"], json.loads(out)["resume_from_line"]) == (True, 1)
    assert "--from-line 1" in err
    assert "Aborted" not in err
