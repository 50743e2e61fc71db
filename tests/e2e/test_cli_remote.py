"""The remote commands (send, tail, events, replay, triggers, keys, consumers) as a user runs
them: `python -m eventyard` in a subprocess against a real server, reading what it prints.

Setup that is not under test goes through the Python client, in-process, to keep the number
of subprocesses (each ~0.5 s) down.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from eventyard_client import Client

from eventyard.cli import main
from tests.client import conftest as client_fixtures
from tests.client.conftest import RunningServer
from tests.e2e.server import free_port

# A real `eventyard serve`, shared by this module's tests, each with a project of its own.
shared_process = client_fixtures.shared_process
shared_store = client_fixtures.shared_store
shared_server = client_fixtures.shared_server


@pytest.fixture
def server(shared_server: RunningServer) -> RunningServer:
    return shared_server


# What these tests check (what the commands print, their exit codes) does not depend on the
# database, and each command costs a Python start-up: one backend is enough. The API under
# them is tested on both.
sqlite_only = pytest.mark.parametrize("module_store_url", ["sqlite"], indirect=True, scope="module")


def _env(url: str | None, key: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTYARD_")}
    if url:
        env["EVENTYARD_URL"] = url
    if key:
        env["EVENTYARD_KEY"] = key
    return env


def run(
    *args: str, url: str | None, key: str | None, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventyard", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=_env(url, key),
        timeout=30,
        check=False,
    )


def cli(server: RunningServer, key: str | None = None) -> Callable[..., Any]:
    """`eventyard ...` against `server` with its live admin key (or `key`)."""

    def call(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return run(*args, url=server.url, key=key or server.live_key, stdin=stdin)

    return call


def ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done.stdout


def table_row(output: str, first_cell: str) -> list[str]:
    """The cells of the table row that starts with `first_cell` (cells are 2+ spaces apart)."""
    for line in output.splitlines():
        if line.split("  ")[0] == first_cell:
            return [c.strip() for c in line.split("  ") if c.strip()]
    raise AssertionError(f"no row {first_cell!r} in:\n{output}")


@sqlite_only
def test_triggers_keys_and_consumers_show_tables_json_and_secrets(
    server: RunningServer, tmp_path: Path
) -> None:
    eventyard = cli(server)
    created = ok(
        eventyard(
            "triggers",
            "create",
            "Successful payment",
            "--description",
            "A card payment went through",
            "--attribute",
            "amount:number:required",
            "--attribute",
            "plan:enum=free,pro",
        )
    )
    assert "Created trigger successful_payment." in created
    schema = tmp_path / "signup.json"
    schema.write_text(json.dumps({"type": "object", "required": ["email"]}))
    signup = json.loads(
        ok(eventyard("triggers", "create", "Signup", "--schema", f"@{schema}", "--json"))
    )
    assert signup["json_schema"] == {"type": "object", "required": ["email"]}

    listed = ok(eventyard("triggers", "list"))
    assert table_row(listed, "successful_payment")[1:3] == ["Successful payment", "amount*, plan"]
    shown = json.loads(ok(eventyard("triggers", "show", "successful_payment", "--json")))
    assert shown["attributes"][1] == {
        "name": "plan",
        "type": "enum",
        "required": False,
        "values": ["free", "pro"],
    }
    archived = ok(eventyard("triggers", "delete", "signup"))
    assert "Archived trigger signup" in archived
    assert "events stay" in archived
    with_archived = ok(eventyard("triggers", "list", "--archived"))
    assert table_row(with_archived, "signup")[-1] == "yes"
    assert table_row(with_archived, "successful_payment")[-1] == "no"

    # Keys: the secret is printed once; a non-admin key is refused with a clear message.
    key = json.loads(
        ok(eventyard("keys", "create", "--name", "backend", "--scopes", "write,read", "--json"))
    )
    assert key["key"].startswith("sk_live_")
    assert key["scopes"] == ["read", "write"]
    assert table_row(ok(eventyard("keys", "list")), key["id"])[1:5] == [
        "backend",
        key["prefix"],
        "live",
        "read, write",
    ]
    refused = cli(server, key["key"])("keys", "list")
    assert refused.returncode == 1
    assert "admin" in refused.stderr
    assert "(403 forbidden)" in refused.stderr
    assert f"Revoked key {key['id']}" in ok(eventyard("keys", "delete", key["id"], "--yes"))
    revoked = cli(server, key["key"])("send", "signup", "--user", "u1")
    assert revoked.returncode == 1
    assert "(401 unauthenticated)\nCheck --key / EVENTYARD_KEY." in revoked.stderr

    # Consumers: a webhook shows its signing secret once; a pull consumer has no URL.
    hook = ok(
        eventyard(
            "consumers",
            "create",
            "billing",
            "--webhook",
            "http://127.0.0.1:9/hooks",
            "--trigger",
            "successful_payment",
        )
    )
    assert "Signing secret (shown this once" in hook
    assert "whsec_" in hook
    pull = json.loads(ok(eventyard("consumers", "create", "mailer", "--pull", "--json")))
    assert pull["kind"] == "pull"
    consumers = ok(eventyard("consumers", "list"))
    assert table_row(consumers, pull["id"])[1:4] == ["mailer", "pull", "(all)"]
    assert f"Deleted consumer {pull['id']}" in ok(
        eventyard("consumers", "delete", pull["id"], "--yes")
    )


@sqlite_only
def test_send_then_list_show_and_replay_events(server: RunningServer, tmp_path: Path) -> None:
    with Client(server.url, server.live_key) as client:
        client.triggers.create(
            "Paid", attributes=[{"name": "amount", "type": "number", "required": True}]
        )
        consumer = client.consumers.create("worker", "pull")
    eventyard = cli(server)

    sent = ok(eventyard("send", "paid", "--user", "ada", "--data", '{"amount": 12.5}'))
    assert sent.startswith("Sent evt_")
    event_id = sent.split()[1].rstrip(".")
    payload = tmp_path / "payload.json"
    payload.write_text('{"amount": 3}')
    from_file = json.loads(
        ok(eventyard("send", "paid", "--user", "bob", "--data", f"@{payload}", "--json"))
    )
    assert from_file["payload"] == {"amount": 3}
    from_stdin = json.loads(
        ok(
            eventyard(
                "send", "paid", "--user", "cy", "--data", "-", "--json", stdin='{"amount": 4}'
            )
        )
    )
    assert from_stdin["payload"] == {"amount": 4}
    old = json.loads(
        ok(
            eventyard(
                "send",
                "paid",
                "--user",
                "old",
                "--data",
                '{"amount": 1}',
                "--timestamp",
                "3h",
                "--idempotency-key",
                "order-1",
                "--json",
            )
        )
    )
    assert old["idempotency_key"] == "order-1"
    hours_ago = (datetime.now(UTC) - datetime.fromisoformat(old["timestamp"])) / timedelta(hours=1)
    assert 2.9 < hours_ago < 3.1
    invalid = eventyard("send", "paid", "--user", "u", "--data", '{"amount": "lots"}')
    assert invalid.returncode == 1
    assert "$.payload.amount: must be a number" in invalid.stderr

    listed = ok(eventyard("events", "list", "--since", "1h"))
    assert old["id"] not in listed  # three hours ago
    assert table_row(listed, event_id)[2:] == ["paid", "ada", "api", '{"amount":12.5}']
    page = eventyard("events", "list", "--limit", "2")
    assert len(ok(page).splitlines()) == 3  # a heading and two rows
    assert "--cursor " in page.stderr
    every = ok(eventyard("events", "list", "--all", "--limit", "2", "--json")).splitlines()
    assert {json.loads(line)["id"] for line in every} == {
        event_id,
        from_file["id"],
        from_stdin["id"],
        old["id"],
    }

    shown = ok(eventyard("events", "show", event_id))
    assert "Transactions:" in shown
    assert table_row(shown, "user")[1] == "ada"
    txn = [line for line in shown.splitlines() if line.startswith("txn_")]
    assert len(txn) == 1
    assert consumer.id in txn[0]
    assert "pending" in txn[0]
    missing = eventyard("events", "show", "evt_01M842NG37RV5YDVT1V2DC5NJZ")
    assert missing.returncode == 1
    assert "(404 event_not_found)" in missing.stderr

    replayed = ok(eventyard("replay", consumer.id, "--since", "1d"))
    assert replayed.startswith(f"Replaying {consumer.id} since ")
    assert "0 transactions queued again, 0 created" in replayed  # all still pending
    counts = json.loads(
        ok(eventyard("replay", consumer.id, "--since", "1d", "--only-failed", "--json"))
    )
    assert counts == {"requeued": 0, "created": 0}


@sqlite_only
def test_events_show_says_why_a_delivery_failed(server: RunningServer) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/hook"  # nothing listens there
    with Client(server.url, server.live_key) as client:
        hook = client.consumers.create("hook", "webhook", url=nowhere, retry_schedule=[0, 60])
        sent = client.send("signup", "u1")
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            (txn,) = client.events.get(sent.id)["transactions"]
            if txn["delivery_attempts"]:
                break
            time.sleep(0.2)
    shown = ok(cli(server)("events", "show", sent.id))
    row = next(line for line in shown.splitlines() if line.startswith("txn_"))
    assert hook.id in row
    assert "LAST ATTEMPT" in shown
    assert "connect" in row.lower()  # the refused connection, not an empty cell


class _Lines:
    """A subprocess's stdout, read line by line in a thread."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert proc.stdout is not None
        out = proc.stdout
        self._thread = threading.Thread(
            target=lambda: self.lines.extend(iter(out.readline, "")), daemon=True
        )
        self._thread.start()

    def join(self) -> None:
        self._thread.join(timeout=5)

    def wait_for(self, text: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            assert time.monotonic() < deadline, f"{text!r} not in {self.lines}"
            time.sleep(0.05)


def _tail(server: RunningServer, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "eventyard", "tail", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(server.url, server.live_key),
    )


@sqlite_only
def test_tail_prints_events_sent_after_it_started_and_ctrl_c_exits_quietly(
    server: RunningServer,
) -> None:
    people = _tail(server, "--trigger", "order")
    machines = _tail(server, "--trigger", "order", "--json")
    try:
        out, out_json = _Lines(people), _Lines(machines)
        with Client(server.url, server.live_key) as client:
            # The stream starts when tail connects: send until both have seen one.
            deadline = time.monotonic() + 15
            while not (out.lines and out_json.lines):
                assert time.monotonic() < deadline, people.stderr
                client.send("order", "warmup")
                time.sleep(0.2)
            client.send("other", "nobody")
            sent = client.send("order", "ada@example.com", {"total": 42, "note": "x" * 200})
            out.wait_for("ada@example.com")
            out_json.wait_for(sent.id)

        line = next(line for line in out.lines if "ada@example.com" in line)
        assert line.split()[2:4] == ["order", "ada@example.com"]
        assert line.rstrip().endswith("…")  # a long payload is cut
        assert '{"total":42' in line
        assert not any("nobody" in line for line in out.lines)
        as_json = json.loads(next(line for line in out_json.lines if sent.id in line))
        assert as_json["payload"]["total"] == 42
    finally:
        for proc in (people, machines):
            proc.send_signal(signal.SIGINT)
    for proc, lines in ((people, out), (machines, out_json)):
        with proc:  # closes its pipes
            assert proc.wait(timeout=10) == 0
            assert proc.stderr is not None
            assert proc.stderr.read() == ""  # no traceback, no noise
            lines.join()


def test_clear_errors_without_a_server_or_a_key(tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    down = run("triggers", "list", url=nowhere, key="sk_live_x")
    assert down.returncode == 1
    assert f"cannot reach the server at {nowhere}" in down.stderr
    assert "Is `eventyard serve` running? Check --url / EVENTYARD_URL." in down.stderr
    assert "Traceback" not in down.stderr

    no_key = run("events", "list", url=nowhere, key=None)
    assert no_key.returncode == 2
    assert "no API key: pass --key or set EVENTYARD_KEY" in no_key.stderr

    no_env = run("keys", "create", "--project", "default", "--scopes", "read", url=None, key=None)
    assert no_env.returncode == 2
    assert "--project needs --env" in no_env.stderr


def test_usage_errors_name_the_option_and_exit_2() -> None:
    """Checked before any request, so in-process and without a server."""
    runner = CliRunner()
    env = {"EVENTYARD_URL": "http://127.0.0.1:9", "EVENTYARD_KEY": "sk_live_x"}

    def fails(*args: str) -> str:
        done = runner.invoke(main, list(args), env=env)
        assert done.exit_code == 2, done.output
        return done.output

    assert "the type must be one of string, number" in fails(
        "triggers", "create", "X", "--attribute", "amount:money"
    )
    assert "NAME:enum=a,b,c" in fails("triggers", "create", "X", "--attribute", "plan:enum")
    assert "give --attribute or --schema, not both" in fails(
        "triggers", "create", "X", "--attribute", "a:string", "--schema", "{}"
    )
    assert "--webhook URL" in fails("consumers", "create", "billing")
    assert "is not JSON" in fails("send", "paid", "--user", "u", "--data", "{amount: 1}")
    assert "must be a JSON object" in fails("send", "paid", "--user", "u", "--data", "[1]")
    assert "is not a time" in fails("replay", "con_1", "--since", "yesterday")
    assert "--consumer and --state go together" in fails("events", "list", "--state", "failed")
    assert "Pass --yes to confirm" in fails("consumers", "delete", "con_1")
