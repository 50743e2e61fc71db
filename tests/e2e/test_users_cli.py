"""`eventyard users`: creating dashboard users and setting their passwords, as a process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from tests.e2e.server import ServerProcess, init_project

PASSWORD = "a long enough password"


def users(
    *args: str, database_url: str, password: str | None = None
) -> subprocess.CompletedProcess[str]:
    """`eventyard users ...`, with `password` written to its standard input."""
    env = {**os.environ, "EVENTYARD_DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "eventyard", "users", *args],
        input=None if password is None else password + "\n",
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def _sign_in(url: str, email: str, password: str) -> httpx.Response:
    """The sign-in form, as a browser posts it: first GET for the token, then POST."""
    with httpx.Client(base_url=url) as browser:
        form = browser.get("/dashboard/login")
        assert form.status_code == 200
        token = form.text.split('name="csrf" value="', 1)[1].split('"', 1)[0]
        return browser.post(
            "/dashboard/login",
            data={"csrf": token, "email": email, "password": password, "next": ""},
        )


def test_users_create_reads_the_password_from_stdin_and_the_user_can_sign_in(
    db_url: str, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    done = users(
        "create", "ada@example.com", "--password-stdin", database_url=db_url, password=PASSWORD
    )
    assert done.returncode == 0, done.stderr
    assert "ada@example.com" in done.stdout
    assert PASSWORD not in done.stdout + done.stderr

    init_project(db_url, "shop")
    server = server_factory(db_url, tmp_path / "server.log")
    server.start()
    signed_in = _sign_in(server.url, "ada@example.com", PASSWORD)
    assert signed_in.status_code == 303
    assert "eventyard_session=" in signed_in.headers["set-cookie"]
    wrong = _sign_in(server.url, "ada@example.com", PASSWORD + "x")
    assert wrong.status_code == 401


def test_users_create_twice_is_a_clear_error(db_url: str) -> None:
    first = users(
        "create", "ada@example.com", "--password-stdin", database_url=db_url, password=PASSWORD
    )
    assert first.returncode == 0, first.stderr
    again = users(
        "create", "ada@example.com", "--password-stdin", database_url=db_url, password=PASSWORD
    )
    assert again.returncode != 0
    assert "already exists" in again.stderr
    assert "ada@example.com" in again.stderr
    assert "Traceback" not in again.stderr


def test_users_create_with_a_short_password_fails_and_names_the_minimum(db_url: str) -> None:
    done = users(
        "create", "ada@example.com", "--password-stdin", database_url=db_url, password="short"
    )
    assert done.returncode != 0
    assert "at least 10" in done.stderr
    assert "Traceback" not in done.stderr
    # Nothing was created: the same email can be created afterwards.
    retry = users(
        "create", "ada@example.com", "--password-stdin", database_url=db_url, password=PASSWORD
    )
    assert retry.returncode == 0, retry.stderr


def test_users_create_with_nothing_on_stdin_fails(db_url: str) -> None:
    done = users("create", "ada@example.com", "--password-stdin", database_url=db_url, password="")
    assert done.returncode != 0
    assert "no password" in done.stderr


def test_users_create_refuses_an_address_that_is_not_an_email(db_url: str) -> None:
    done = users("create", "ada", "--password-stdin", database_url=db_url, password=PASSWORD)
    assert done.returncode != 0
    assert "not an email" in done.stderr


def test_users_set_password_changes_it_and_signs_sessions_out(
    db_url: str, server_factory: type[ServerProcess], tmp_path: Path
) -> None:
    created = users(
        "create", "ada@example.com", "--password-stdin", database_url=db_url, password=PASSWORD
    )
    assert created.returncode == 0, created.stderr
    init_project(db_url, "shop")
    server = server_factory(db_url, tmp_path / "server.log")
    server.start()
    signed_in = _sign_in(server.url, "ada@example.com", PASSWORD)
    assert signed_in.status_code == 303
    cookie = signed_in.headers["set-cookie"].split(";", 1)[0]
    page = httpx.get(server.url + "/dashboard/", headers={"cookie": cookie})
    assert page.status_code == 303
    assert "/dashboard/p/" in page.headers["location"]  # signed in: on to the first project

    changed = users(
        "set-password",
        "ada@example.com",
        "--password-stdin",
        database_url=db_url,
        password="another long password",
    )
    assert changed.returncode == 0, changed.stderr
    assert "ada@example.com" in changed.stdout

    # The open session is gone: the same cookie now leads to the sign-in page.
    page = httpx.get(server.url + "/dashboard/", headers={"cookie": cookie})
    assert page.status_code == 303
    assert page.headers["location"].startswith("/dashboard/login")
    assert _sign_in(server.url, "ada@example.com", PASSWORD).status_code == 401
    assert _sign_in(server.url, "ada@example.com", "another long password").status_code == 303


def test_users_set_password_for_an_unknown_user_or_a_short_password_fails(db_url: str) -> None:
    unknown = users(
        "set-password",
        "nobody@example.com",
        "--password-stdin",
        database_url=db_url,
        password=PASSWORD,
    )
    assert unknown.returncode != 0
    assert "nobody@example.com" in unknown.stderr
    users("create", "ada@example.com", "--password-stdin", database_url=db_url, password=PASSWORD)
    short = users(
        "set-password", "ada@example.com", "--password-stdin", database_url=db_url, password="short"
    )
    assert short.returncode != 0
    assert "at least 10" in short.stderr
