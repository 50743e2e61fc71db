"""`systemctl stop` sends SIGTERM: an `eventyard worker` then lets the webhooks it is sending
finish, records them, and exits, so the next worker sends none of them again."""

from __future__ import annotations

import time
from pathlib import Path

import httpx

from tests.e2e.server import ServerProcess, init_project
from tests.e2e.threaded_receiver import ThreadedReceiver
from tests.receiver import Reply

ENV = {"EVENTYARD_WEBHOOK_ALLOW_PRIVATE": "true"}


def test_sigterm_lets_a_worker_finish_what_it_is_sending(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/eventyard.db"
    key = init_project(db_url)["keys"]["live"]
    api = ServerProcess(db_url, tmp_path / "api.log", ENV, worker=False)
    worker = ServerProcess(db_url, tmp_path / "worker.log", ENV, command="worker")
    later = ServerProcess(db_url, tmp_path / "worker2.log", ENV, command="worker")
    with ThreadedReceiver(default=Reply(200, delay_seconds=2.0)) as receiver:
        try:
            api.start()
            worker.start()
            auth = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=api.url, headers=auth, timeout=10) as client:
                made = client.post(
                    "/v1/consumers",
                    json={"name": "slow", "kind": "webhook", "url": receiver.url("/hook")},
                )
                assert made.status_code == 201, made.text
                consumer = made.json()["id"]
                for n in range(3):
                    sent = client.post(
                        "/v1/events", json={"trigger": "t", "user_id": f"u{n}", "payload": {}}
                    )
                    assert sent.status_code in (200, 201, 202), sent.text
                receiver.wait_until(lambda got: len(got) == 3, within=15)
                assert worker.proc is not None
                worker.proc.terminate()  # while the three answers are 2 s away
                assert worker.proc.wait(timeout=15) == 0
                listed = client.get(f"/v1/consumers/{consumer}/transactions").json()["data"]
                assert [t["state"] for t in listed] == ["finished"] * 3
                assert [t["attempts"] for t in listed] == [1, 1, 1]
                later.start()  # a worker alone at start hands back what dead ones leased
                time.sleep(2.5)
            assert len(receiver.requests) == 3
        finally:
            for process in (later, worker, api):
                process.stop()
