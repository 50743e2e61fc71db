"""A new user's first minutes, against a real server process."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

from tests.e2e.server import ServerProcess, free_port, init_project, run_cli


def test_init_prints_one_json_object_with_a_key_per_environment(db_url: str) -> None:
    done = run_cli("init", "--json", database_url=db_url)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)  # exactly one JSON document
    assert set(result) == {"project", "keys"}
    assert result["project"]["name"] == "default"
    assert result["project"]["id"].startswith("prj_")
    assert result["keys"]["live"].startswith("sk_live_")
    assert result["keys"]["test"].startswith("sk_test_")


def test_init_twice_with_the_same_name_is_a_clear_error(db_url: str) -> None:
    assert run_cli("init", "--project", "shop", database_url=db_url).returncode == 0
    again = run_cli("init", "--project", "shop", "--json", database_url=db_url)
    assert again.returncode != 0
    assert "already exists" in again.stderr
    assert again.stdout == ""


def test_keys_create_prints_a_usable_key(
    db_url: str, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    init_project(db_url, "shop")
    done = run_cli(
        "keys",
        "create",
        "--project",
        "shop",
        "--env",
        "live",
        "--scopes",
        "write,read",
        "--name",
        "backend",
        "--json",
        database_url=db_url,
    )
    assert done.returncode == 0, done.stderr
    created = json.loads(done.stdout)
    assert created["key"].startswith("sk_live_")
    assert created["id"].startswith("key_")

    server = server_factory(db_url, tmp_path / "server.log")
    server.start()
    auth = {"Authorization": f"Bearer {created['key']}"}
    sent = httpx.post(
        server.url + "/v1/events",
        headers=auth,
        json={"trigger": "order_paid", "user_id": "u1", "payload": {"total": 5}},
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["environment"] == "live"
    read = httpx.get(server.url + f"/v1/events/{sent.json()['id']}", headers=auth)
    assert read.status_code == 200
    # The key has no admin scope: managing keys is refused.
    assert httpx.get(server.url + "/v1/keys", headers=auth).status_code == 403


def test_keys_create_for_an_unknown_project_fails_clearly(db_url: str) -> None:
    done = run_cli(
        "keys",
        "create",
        "--project",
        "nope",
        "--env",
        "test",
        "--scopes",
        "read",
        database_url=db_url,
    )
    assert done.returncode != 0
    assert "No project named 'nope'" in done.stderr


def test_serve_refuses_a_bad_database_url(tmp_path: Path) -> None:
    done = run_cli("serve", "--port", "1", database_url="mysql://nope")
    assert done.returncode != 0
    assert "EVENTYARD_DATABASE_URL" in done.stderr


def test_a_database_that_will_not_open_is_named_without_its_password(tmp_path: Path) -> None:
    """The message goes to a terminal or, under systemd with Restart=on-failure, to the
    journal once a restart: the password must not be in it."""
    url = f"postgresql://eventyard:hunter2@127.0.0.1:{free_port()}/nowhere"
    for command in (("serve", "--port", str(free_port())), ("worker",), ("housekeep",)):
        done = run_cli(*command, database_url=url)
        assert done.returncode != 0, command
        assert "cannot open the database postgresql://eventyard@127.0.0.1:" in done.stderr
        assert "hunter2" not in done.stderr + done.stdout, command


def test_housekeep_refuses_a_sqlite_file_that_does_not_exist(tmp_path: Path) -> None:
    """From cron without the server's environment, a new empty database would be made,
    housekept and reported as a success."""
    missing = tmp_path / "typo.db"
    done = run_cli("housekeep", database_url=f"sqlite:///{missing}")
    assert done.returncode != 0
    assert f"no SQLite database at {missing}" in done.stderr
    assert not missing.exists()
