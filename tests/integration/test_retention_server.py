"""Retention and housekeeping as an operator meets them: `eventyard project set` against a
real `eventyard serve`, and the server's own periodic pass removing an expired event from
disk (and saying so in its log)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from eventyard.store.connect import connect
from tests.e2e.server import ServerProcess, init_project


def eventyard(url: str, key: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTYARD_")}
    return subprocess.run(
        [sys.executable, "-m", "eventyard", *args, "--url", url, "--key", key],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
        check=False,
    )


def events_on_disk(database_url: str) -> int:
    db = connect(database_url, writer=False)
    try:
        return int(db.scalar("SELECT COUNT(*) AS n FROM events"))
    finally:
        db.close()


def test_the_cli_sets_retention_and_the_server_housekeeps_on_its_own(
    store_url: str, tmp_path: Path
) -> None:
    keys = init_project(store_url)["keys"]
    server = ServerProcess(
        store_url, tmp_path / "server.log", {"EVENTYARD_HOUSEKEEPING_SECONDS": "1"}
    )
    server.start()
    try:
        key = keys["test"]
        set_ = eventyard(server.url, key, "project", "set", "--retention-days", "7", "--json")
        assert set_.returncode == 0, set_.stderr
        assert json.loads(set_.stdout)["retention_days"] == 7
        shown = eventyard(server.url, key, "project", "show")
        assert shown.returncode == 0, shown.stderr
        assert "retention (days)  7" in shown.stdout
        refused = eventyard(server.url, key, "project", "set", "--retention-days", "0")
        assert refused.returncode == 1
        assert "from 1 to 36500" in refused.stderr
        forever = eventyard(server.url, key, "project", "set", "--retention-days", "forever")
        assert forever.returncode == 0, forever.stderr
        assert "retention (days)  forever" in forever.stdout

        emitted = httpx.post(
            f"{server.url}/buildable/emit",
            json={"event": "signup", "payload": {"userId": "u1"}, "ttl": 300},
            headers={"X-Buildable-Secret": key},
        )
        assert emitted.status_code == 200, emitted.text
        kept = httpx.post(
            f"{server.url}/v1/events",
            json={"trigger": "signup", "user_id": "u2"},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert kept.status_code == 201, kept.text
        deadline = time.monotonic() + 15
        while events_on_disk(store_url) > 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert events_on_disk(store_url) == 1  # the server's pass removed the expired one
        assert "housekeeping removed 1 events (1 past TTL" in server.log_path.read_text()
    finally:
        server.stop()
