"""Screenshots of the dashboard for the docs, taken from a fresh server in a real Chromium.

    .venv/bin/python scripts/screenshots.py            # writes docs/images/dashboard-*.png
    .venv/bin/python scripts/screenshots.py --out /tmp/shots

It starts `eventyard serve` on a free port with a new SQLite database in a temporary
directory, makes a project and a dashboard user with the CLI, fills the project with
triggers, keys, consumers (one pointing at a local receiver that answers 200, one at a
receiver that answers 500) and a day of events, then signs in through the form and saves
each main page. Debian's chromium at /usr/bin/chromium is driven by Playwright; nothing is
downloaded. It is not part of the test run (tests/dashboard/test_screenshots.py runs it
into a temporary directory); run it by hand after changing how a page looks.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e.server import ServerProcess, init_project  # noqa: E402
from tests.receiver import Receiver, Reply  # noqa: E402

CHROMIUM = os.environ.get("EVENTYARD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
EMAIL = "ada@example.com"
PASSWORD = "correct horse battery staple"  # noqa: S105 - a throwaway server's user
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
PAYMENT_ATTRIBUTES = [
    {"name": "value", "type": "number", "required": True, "description": "Amount paid"},
    {"name": "currency", "type": "enum", "values": ["EUR", "USD", "GBP"], "required": True},
    {"name": "order_id", "type": "string", "required": False},
]


class ReceiverThread:
    """A tests/receiver.py Receiver answering from its own event loop in a thread."""

    def __init__(self, reply: Reply) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.receiver = Receiver(default=reply)
        asyncio.run_coroutine_threadsafe(self.receiver.start(), self.loop).result(10)

    def url(self, path: str) -> str:
        return self.receiver.url(path)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.receiver.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@contextmanager
def fresh_server(directory: Path) -> Iterator[tuple[ServerProcess, dict[str, Any]]]:
    database_url = f"sqlite:///{directory}/eventyard.db"
    made = init_project(database_url, "acme-shop")
    created = subprocess.run(  # noqa: S603 - our own CLI, fixed arguments
        [sys.executable, "-m", "eventyard", "users", "create", EMAIL, "--password-stdin"],
        input=PASSWORD + "\n",
        capture_output=True,
        text=True,
        env={**os.environ, "EVENTYARD_DATABASE_URL": database_url},
        check=False,
    )
    if created.returncode != 0:
        raise SystemExit(created.stderr)
    server = ServerProcess(
        database_url,
        directory / "server.log",
        {"EVENTYARD_WEBHOOK_ALLOW_PRIVATE": "true", "EVENTYARD_RETRY_SCHEDULE": "0,1,1"},
    )
    server.start()
    try:
        yield server, made
    finally:
        server.stop()


def seed(api: httpx.Client, test_key: str, ok_url: str, failing_url: str) -> dict[str, str]:
    """Triggers, keys, consumers and a day of events; the ids the screenshots need."""

    def post(path: str, body: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {key}"} if key else None
        response = api.post(path, json=body, headers=headers)
        if response.status_code not in (200, 201):
            raise SystemExit(f"{path}: {response.status_code} {response.text}")
        result: dict[str, Any] = response.json()
        return result

    post(
        "/v1/triggers",
        {
            "id": "successful_payment",
            "name": "Successful Payment",
            "description": "A customer's payment went through.",
            "attributes": PAYMENT_ATTRIBUTES,
        },
    )
    post("/v1/triggers", {"id": "signup", "name": "Signup"})
    post("/v1/triggers", {"id": "feature_used", "name": "Feature Used"})
    post("/v1/triggers", {"id": "subscription_cancelled", "name": "Subscription Cancelled"})
    for name, scopes, env in (
        ("billing server", ["write"], "live"),
        ("analytics export", ["read"], "live"),
        ("staging", ["write", "read"], "test"),
    ):
        post("/v1/keys", {"name": name, "scopes": scopes}, test_key if env == "test" else None)
    post("/v1/consumers", {"name": "billing", "kind": "webhook", "url": ok_url})
    post(
        "/v1/consumers",
        {
            "name": "crm sync",
            "kind": "webhook",
            "url": failing_url,
            "triggers": ["subscription_cancelled"],
        },
    )
    post("/v1/consumers", {"name": "nightly export", "kind": "pull", "triggers": ["signup"]})

    rng = random.Random(7)
    now_ms = int(time.time() * 1000)
    events: list[dict[str, Any]] = []
    weights = {"successful_payment": 5, "signup": 3, "feature_used": 8}
    for trigger, weight in weights.items():
        for _ in range(weight * 12):  # the last hour, busier lately
            ago = int(3600_000 * rng.random() ** 1.6)
            events.append(_event(rng, trigger, now_ms - ago))
        for _ in range(weight * 30):  # the rest of the day
            events.append(_event(rng, trigger, now_ms - rng.randint(3600_000, 86_000_000)))
    for start in range(0, len(events), 500):
        post("/v1/events/batch", {"events": events[start : start + 500]})
    cancelled = post(
        "/v1/events",
        {
            "trigger": "subscription_cancelled",
            "user_id": "user_4821",
            "payload": {"plan": "pro", "reason": "switching to annual billing"},
        },
    )
    return {"failed_event": cancelled["id"]}


def _event(rng: random.Random, trigger: str, at_ms: int) -> dict[str, Any]:
    user = f"user_{rng.randint(1000, 9999)}"
    if trigger == "successful_payment":
        payload: dict[str, Any] = {
            "value": round(rng.uniform(5, 250), 2),
            "currency": rng.choice(["EUR", "USD", "GBP"]),
            "order_id": f"ord_{rng.randint(10000, 99999)}",
        }
    elif trigger == "feature_used":
        payload = {"feature": rng.choice(["export", "search", "share", "invite"])}
    else:
        payload = {"plan": rng.choice(["free", "pro"]), "referrer": rng.choice(["ads", "blog"])}
    return {"trigger": trigger, "user_id": user, "payload": payload, "timestamp": at_ms}


def wait_until(check: Any, within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the server")
        time.sleep(0.25)


def take(page: Any, out: Path, name: str, *, full_page: bool = True) -> Path:
    page.wait_for_load_state("networkidle")
    path = out / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page, animations="disabled")
    print(f"wrote {path}")
    return path


def shoot(out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    ok = ReceiverThread(Reply(200, body=b'{"ok":true}'))
    failing = ReceiverThread(Reply(500, body=b'{"error":"crm is down for maintenance"}'))
    with tempfile.TemporaryDirectory() as tmp, fresh_server(Path(tmp)) as (server, made):
        base = f"{server.url}/dashboard/p/{made['project']['id']}/live"
        auth = {"Authorization": f"Bearer {made['keys']['live']}"}
        with httpx.Client(base_url=server.url, headers=auth, timeout=30) as api:
            ids = seed(
                api, made["keys"]["test"], ok.url("/hooks/billing"), failing.url("/crm/events")
            )

            def failed() -> bool:
                found = api.get(f"/v1/events/{ids['failed_event']}").json()
                states = [t.get("state") for t in found.get("transactions", [])]
                return "failed" in states or len(failing.receiver.requests) >= 3

            wait_until(failed)
            time.sleep(1.5)  # the third attempt's outcome is written
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport=DESKTOP, device_scale_factor=1)
            page = context.new_page()
            page.goto(f"{server.url}/dashboard/login")
            page.get_by_label("Email").fill(EMAIL)
            page.get_by_label("Password").fill(PASSWORD)
            written.append(take(page, out, "dashboard-login", full_page=False))
            page.get_by_role("button", name="Sign in").click()
            page.wait_for_url(f"{base}/")
            written.append(take(page, out, "dashboard-overview"))

            page.goto(f"{base}/triggers")
            written.append(take(page, out, "dashboard-triggers"))

            page.get_by_role("link", name="Create Trigger").first.click()
            page.get_by_label("Name", exact=True).press_sequentially("Refund Issued", delay=20)
            page.get_by_label("Description", exact=True).fill(
                "A refund was paid back to the customer."
            )
            page.get_by_label("Attribute 1 name").fill("value")
            page.get_by_label("Attribute 1 type").select_option("number")
            page.get_by_label("Attribute 1 required").select_option("required")
            page.get_by_label("Attribute 2 name").fill("reason")
            page.get_by_label("Attribute 2 type").select_option("string")
            page.get_by_label("Trigger ID").focus()
            written.append(take(page, out, "dashboard-create-trigger"))

            page.goto(f"{base}/triggers/successful_payment")
            written.append(take(page, out, "dashboard-trigger"))

            page.goto(f"{base}/keys")
            page.get_by_text("+ Create secret key").click()
            form = page.get_by_role("form", name="Create secret key")
            form.get_by_label("Name your secret key").fill("checkout service")
            form.get_by_role("button", name="Create").click()
            page.get_by_label(re.compile(r"^Secret key \(")).wait_for()
            written.append(take(page, out, "dashboard-keys"))

            page.goto(f"{base}/events")
            page.get_by_role("button", name="Live").click()
            page.wait_for_timeout(500)
            with httpx.Client(base_url=server.url, headers=auth, timeout=30) as api:
                for i, trigger in enumerate(["signup", "successful_payment"]):
                    body: dict[str, Any] = {"trigger": trigger, "user_id": f"user_live_{i}"}
                    if trigger == "successful_payment":
                        body["payload"] = {"value": 49.0, "currency": "EUR"}
                    api.post("/v1/events", json=body)
            page.locator("#event-rows tr.fresh").nth(1).wait_for()
            written.append(take(page, out, "dashboard-events", full_page=False))

            page.goto(f"{base}/events/{ids['failed_event']}")
            written.append(take(page, out, "dashboard-event"))

            page.goto(f"{base}/consumers")
            written.append(take(page, out, "dashboard-consumers"))

            phone = browser.new_context(
                viewport=PHONE,
                device_scale_factor=1,
                storage_state=context.storage_state(),
                is_mobile=True,
                has_touch=True,
            )
            small = phone.new_page()
            small.goto(f"{base}/")
            written.append(take(small, out, "dashboard-phone", full_page=False))
            small.goto(f"{base}/events")
            written.append(take(small, out, "dashboard-phone-events", full_page=False))
            phone.close()
            context.close()
            browser.close()
    ok.close()
    failing.close()
    return written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "images")
    args = parser.parse_args()
    written = shoot(args.out)
    print(json.dumps([str(p) for p in written], indent=2))


if __name__ == "__main__":
    main()
