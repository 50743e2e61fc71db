"""The log a real server writes: one access line per request, JSON or text, with the route's
template (never the raw path, which may hold an e-mail), the request id it echoed, and the
key's project and environment; and every other line in the same format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.server import ServerProcess, init_project

EMAIL = "alice.person@example.com"


def _json_lines(log: Path) -> list[dict[str, Any]]:
    lines = []
    for raw in log.read_text().splitlines():
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def _access(log: Path) -> list[dict[str, Any]]:
    return [line for line in _json_lines(log) if line["logger"] == "eventyard.access"]


def test_json_access_lines_one_per_request_with_the_fields(
    db_url: str, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    project = init_project(db_url)
    key = project["keys"]["live"]
    log = tmp_path / "serve.log"
    server = server_factory(db_url, log, {"EVENTYARD_LOG_FORMAT": "json"}, worker=False)
    server.start()
    auth = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=server.url, timeout=10) as client:
        sent = client.post(
            f"/v1/triggers/signup/users/{EMAIL}/events?secret_param={EMAIL}",
            json={"payload": {"email": EMAIL}},
            headers={**auth, "X-Request-ID": "req-from-client-1"},
        )
        assert sent.status_code == 201, sent.text
        missing = client.get("/no/such/page")
        refused = client.get("/v1/events", headers={"Authorization": "Bearer sk_live_" + "x" * 32})
        made = client.post("/v1/keys", json={"name": "ingest", "scopes": ["write"]}, headers=auth)
        assert made.status_code == 201, made.text
        weak = {"Authorization": f"Bearer {made.json()['key']}"}
        forbidden = client.get("/v1/events", headers=weak)
    server.stop()
    assert refused.status_code == 401
    assert forbidden.status_code == 403
    # Not the start-up's /readyz polls (lines are written within 0.1 s, so they may come late).
    lines = [line for line in _access(log) if line["route"] != "/readyz"]
    assert len(lines) == 5, lines
    ingest, not_found, unauthenticated, _, under_scoped = lines
    # A known key whose scope falls short: the line still says whose request it was.
    assert under_scoped["status"] == 403
    assert under_scoped["project"] == project["project"]["id"]
    assert ingest["method"] == "POST"
    assert ingest["route"] == "/v1/triggers/{trigger_id}/users/{user_id}/events"
    assert ingest["status"] == 201
    assert ingest["request_id"] == "req-from-client-1"
    assert ingest["project"] == project["project"]["id"]
    assert ingest["environment"] == "live"
    assert ingest["level"] == "info"
    assert isinstance(ingest["duration_ms"], float)
    assert 0 < ingest["duration_ms"] < 10_000
    assert ingest["bytes"] == len(sent.content)
    assert ingest["time"].endswith("Z")
    assert not_found["route"] is None
    assert not_found["status"] == 404
    assert not_found["request_id"] == missing.headers["x-request-id"]
    assert unauthenticated["status"] == 401
    assert unauthenticated["project"] is None
    text = log.read_text()
    assert EMAIL not in text
    assert "secret_param" not in text
    assert "sk_live_" not in text
    # Every log record is JSON too, uvicorn's included; only our start-up banner is not.
    records = [r for r in text.splitlines() if not r.startswith("eventyard listening")]
    assert all(r.startswith("{") for r in records), records
    assert any(r["logger"].startswith("uvicorn") for r in _json_lines(log))


def test_text_format_and_access_lines_off(
    db_url: str, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    init_project(db_url)
    text_log, quiet_log = tmp_path / "text.log", tmp_path / "quiet.log"
    text = server_factory(db_url, text_log, worker=False)
    quiet = server_factory(db_url, quiet_log, {"EVENTYARD_ACCESS_LOG": "false"}, worker=False)
    text.start()
    quiet.start()
    for server in (text, quiet):
        answer = httpx.get(server.url + "/healthz", headers={"X-Request-ID": "probe-7"})
        assert answer.headers["x-request-id"] == "probe-7"
    text.stop()
    quiet.stop()
    access = [line for line in text_log.read_text().splitlines() if "eventyard.access" in line]
    probe = [line for line in access if "request_id=probe-7" in line]
    assert len(probe) == 1, access
    assert " INFO eventyard.access GET /healthz 200 duration_ms=" in probe[0]
    assert "eventyard.access" not in quiet_log.read_text()
    assert "Application startup complete" in quiet_log.read_text()  # other lines still come
