"""Fixtures for driving the dashboard in a real headless Chromium against a real server.

* `browser`: Debian's chromium (/usr/bin/chromium, or EVENTYARD_CHROMIUM) through
  Playwright's sync API, one per module. Without chromium the browser tests are skipped,
  unless EVENTYARD_REQUIRE_BROWSER=1 (CI sets it), where that is a failure: CI must not
  pass by skipping.
* `dashboard_server`: `eventyard serve` as a process on a free port, with a fresh SQLite
  database, a project made by `eventyard init`, and a dashboard user made by
  `eventyard users create --password-stdin` (so the CLI is exercised too). Private webhook
  URLs are allowed and retries come quickly, for consumers pointing at a local receiver.
* `signed_in_page`: a page in a fresh browser context that signed in through the form.

Playwright's sync API cannot run inside a running event loop, so browser tests are plain
sync tests; the module-scoped browser is closed before the next module's async tests run.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import expect

from tests.e2e.server import ServerProcess, init_project
from tests.receiver import Receiver, Reply

# Debian's chromium; EVENTYARD_CHROMIUM names another Chromium binary (never downloaded).
CHROMIUM = Path(os.environ.get("EVENTYARD_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_BROWSER = os.environ.get("EVENTYARD_REQUIRE_BROWSER") == "1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"
SERVER_ENV = {
    "EVENTYARD_WEBHOOK_ALLOW_PRIVATE": "true",
    "EVENTYARD_RETRY_SCHEDULE": "0,1,1",
}


def launch_browser(playwright: Any) -> Any:
    return playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is not installed (apt-get install chromium)"
        if REQUIRE_BROWSER:
            pytest.fail(f"EVENTYARD_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:  # pragma: no cover - it is in the test extras
        if REQUIRE_BROWSER:
            pytest.fail(f"EVENTYARD_REQUIRE_BROWSER=1 but Playwright is missing: {exc}")
        pytest.skip(f"Playwright is not installed: {exc}")
    with sync_playwright() as playwright:
        browser = launch_browser(playwright)
        yield browser
        browser.close()


@dataclass
class DashboardServer:
    """A running server with one project, its admin keys, and one dashboard user."""

    server: ServerProcess
    database_url: str
    project_id: str
    project_name: str
    live_key: str
    test_key: str
    email: str = EMAIL
    password: str = PASSWORD

    @property
    def url(self) -> str:
        return self.server.url

    def base(self, env: str = "live") -> str:
        """The project's dashboard URL, e.g. http://127.0.0.1:PORT/dashboard/p/prj_.../live."""
        return f"{self.url}/dashboard/p/{self.project_id}/{env}"

    def api(self, env: str = "live") -> httpx.Client:
        key = self.live_key if env == "live" else self.test_key
        return httpx.Client(
            base_url=self.url, headers={"Authorization": f"Bearer {key}"}, timeout=10
        )


def create_user(database_url: str, email: str, password: str) -> subprocess.CompletedProcess[str]:
    """`eventyard users create EMAIL --password-stdin`, the password on standard input."""
    return subprocess.run(
        [sys.executable, "-m", "eventyard", "users", "create", email, "--password-stdin"],
        input=password + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, "EVENTYARD_DATABASE_URL": database_url},
        timeout=60,
        check=False,
    )


def start_dashboard_server(directory: Path, project_name: str = "acme") -> DashboardServer:
    database_url = f"sqlite:///{directory}/eventyard.db"
    made = init_project(database_url, project_name)
    created = create_user(database_url, EMAIL, PASSWORD)
    assert created.returncode == 0, created.stderr
    server = ServerProcess(database_url, directory / "server.log", SERVER_ENV)
    server.start()
    return DashboardServer(
        server=server,
        database_url=database_url,
        project_id=made["project"]["id"],
        project_name=project_name,
        live_key=made["keys"]["live"],
        test_key=made["keys"]["test"],
    )


@pytest.fixture(scope="module")
def dashboard_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DashboardServer]:
    running = start_dashboard_server(tmp_path_factory.mktemp("dashboard"))
    try:
        yield running
    finally:
        running.server.stop()


def sign_in(page: Any, server: DashboardServer, next_path: str = "") -> None:
    """Sign in through the form, as a person would."""
    target = f"{server.url}/dashboard/login"
    if next_path:
        target += f"?next={next_path}"
    page.goto(target)
    page.get_by_label("Email").fill(server.email)
    page.get_by_label("Password").fill(server.password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(lambda url: "/dashboard/login" not in url)


@pytest.fixture(scope="module")
def signed_in_state(browser: Any, dashboard_server: DashboardServer) -> Any:
    """One sign-in per module; each test gets a fresh context holding its cookie."""
    context = browser.new_context()
    try:
        page = context.new_page()
        sign_in(page, dashboard_server)
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture
def context(browser: Any, signed_in_state: Any) -> Iterator[Any]:
    context = browser.new_context(storage_state=signed_in_state)
    context.set_default_timeout(10_000)
    try:
        yield context
    finally:
        context.close()


@pytest.fixture
def signed_in_page(context: Any, dashboard_server: DashboardServer) -> Any:
    """A signed-in page on the project's overview; it fails the test on any script error."""
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(dashboard_server.base() + "/")
    page.script_errors = errors  # type: ignore[attr-defined]
    return page


@pytest.fixture
def fresh_page(browser: Any) -> Iterator[Any]:
    """A page in a context with no cookies: not signed in."""
    context = browser.new_context()
    context.set_default_timeout(10_000)
    try:
        yield context.new_page()
    finally:
        context.close()


class ThreadedReceiver:
    """tests/receiver.py's Receiver, serving from its own event loop in a thread.

    Browser tests are sync (Playwright's sync API), so the receiver cannot share their loop.
    """

    def __init__(self, default: Reply) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.receiver = Receiver(default=default)
        self._call(self.receiver.start())

    def _call(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result(timeout=10)

    def url(self, path: str = "/") -> str:
        return self.receiver.url(path)

    def answer(self, reply: Reply) -> None:
        """From now on, answer every request with `reply`."""
        self._loop.call_soon_threadsafe(setattr, self.receiver, "default", reply)

    @property
    def requests(self) -> list[Any]:
        return list(self.receiver.requests)

    def close(self) -> None:
        self._call(self.receiver.stop())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@pytest.fixture
def receiver() -> Iterator[ThreadedReceiver]:
    running = ThreadedReceiver(Reply(200, body=b"ok"))
    try:
        yield running
    finally:
        running.close()


def send(server: DashboardServer, trigger: str, user_id: str, payload: Any) -> dict[str, Any]:
    """POST /v1/events with the project's live admin key; the created event."""
    with server.api() as api:
        sent = api.post(
            "/v1/events", json={"trigger": trigger, "user_id": user_id, "payload": payload}
        )
    assert sent.status_code == 201, sent.text
    body: dict[str, Any] = sent.json()
    return body


def until(check: Callable[[], bool], within: float = 10.0, what: str = "") -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def create_webhook_consumer(
    page: Any, server: DashboardServer, name: str, url: str, trigger: str
) -> tuple[str, str]:
    """Create a webhook consumer through the form: its ID and its once-shown secret."""
    page.goto(server.base() + "/consumers")
    page.get_by_role("link", name=re.compile("Create consumer")).first.click()
    page.get_by_role("radio", name=re.compile("Webhook")).check()
    page.get_by_label("Name", exact=True).fill(name)
    page.get_by_label("URL (webhook only)").fill(url)
    page.get_by_label(re.compile("^Triggers")).fill(trigger)
    page.get_by_role("button", name="Create").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(name)
    secret: str = page.get_by_label(f"Signing secret of {name}").input_value()
    assert secret.startswith("whsec_"), secret
    consumer_id: str = page.locator("#consumer-id-value").inner_text()
    return consumer_id, secret
