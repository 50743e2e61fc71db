"""Schemathesis against a real `eventyard serve`, driven by the server's own /openapi.json.

    .venv/bin/python bench/fuzz/openapi.py [--database-url URL] [--max-examples 500]
        [--seed N] [--checks LIST] [--workers N] [--keep DIR]

It creates a project in the database (a fresh SQLite file in a temporary directory unless
`--database-url` names one: it must be empty), starts `eventyard serve --no-worker` on a free
port, seeds the objects the routes act on — a trigger (its id, uuid and CDP webhook path), a
pull consumer, events, a claimed transaction and a spare key — and runs `schemathesis run`
with the project's test key (an all-scope key) for every security scheme the document
declares, the seeded ids as the path parameters, and every phase (examples, coverage,
fuzzing, stateful).

Three passes: every operation but two first; then `DELETE /v1/keys/{key_id}` alone, against
the spare key, because a fuzzer that may revoke keys would sooner or later revoke its own;
then `GET /v1/events/stream` alone with `max_seconds=0.2`, because without it the stream
does not end.

The default checks are the conformance ones: no 5xx, a documented status code, content
type, headers and body schema for every answer. `--checks all` adds schemathesis's
acceptance checks (schema-valid input accepted, schema-violating input refused, 405 and
`Allow` for undeclared methods), which hold only as far as the document is exact.

Exit status: schemathesis's (0 when every check held in both passes), or 2 when the server
could not start; and 1 when the server logged a traceback even though no check failed.
The CI test (tests/fuzz/test_openapi.py) runs this with a few examples per operation and a
fixed seed on both databases; run it longer here, e.g. `--max-examples 500`.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

CONFORMANCE_CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance,response_headers_conformance"
)
KEY = "/v1/keys/{key_id}"
STREAM = "/v1/events/stream"


@dataclass(frozen=True)
class Seeded:
    """The project's key and the ids of the objects the fuzzer's path parameters point at."""

    key: str
    trigger_id: str
    trigger_uuid: str
    hook_id: str
    consumer_id: str
    event_id: str
    transaction_id: str
    spare_key_id: str


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def init_project(database_url: str) -> str:
    env = {**os.environ, "EVENTYARD_DATABASE_URL": database_url}
    done = subprocess.run(
        [sys.executable, "-m", "eventyard", "init", "--project", "fuzz", "--json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=True,
    )
    key: str = json.loads(done.stdout)["keys"]["test"]
    return key


@contextmanager
def serve(database_url: str, log_path: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "eventyard", "serve", "--port", str(port), "--no-worker"]
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*command, "--database-url", database_url], stdout=log, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log_path.read_text()}")
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _ok(response: httpx.Response) -> Any:
    assert response.is_success, f"{response.request.url}: {response.status_code} {response.text}"
    return response.json()


def seed(url: str, key: str) -> Seeded:
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) as api:
        trigger = _ok(
            api.post(
                "/v1/triggers",
                json={
                    "id": "signup",
                    "name": "Sign up",
                    "attributes": [{"name": "plan", "type": "string", "required": False}],
                },
            )
        )
        consumer = _ok(api.post("/v1/consumers", json={"kind": "pull", "name": "puller"}))
        events = [
            _ok(api.post("/v1/events", json={"trigger": "signup", "user_id": f"u{i}"}))
            for i in range(5)
        ]
        claimed = _ok(api.post(f"/v1/consumers/{consumer['id']}/claim", json={"limit": 1}))
        spare = _ok(api.post("/v1/keys", json={"name": "spare", "scopes": ["read"]}))
    transactions = claimed.get("transactions") or claimed.get("data") or []
    return Seeded(
        key=key,
        trigger_id=trigger["id"],
        trigger_uuid=trigger["uuid"],
        hook_id=trigger["cdp_webhook_path"].rsplit("/", 1)[1],
        consumer_id=consumer["id"],
        event_id=events[0]["id"],
        transaction_id=transactions[0]["id"] if transactions else "txn_none",
        spare_key_id=spare["id"],
    )


def config(seeded: Seeded, **extra: str) -> str:
    """schemathesis.toml: the key for every security scheme, the seeded ids as path values."""
    key = seeded.key
    parameters = {
        **extra,
        "path.trigger_id": seeded.trigger_id,
        "path.triggerId": seeded.trigger_id,
        "path.hook_id": seeded.hook_id,
        "path.consumer_id": seeded.consumer_id,
        "path.event_id": seeded.event_id,
        "path.transaction_id": seeded.transaction_id,
        "path.key_id": seeded.spare_key_id,
    }
    lines = ["[parameters]"]
    lines += [f"{json.dumps(name)} = {json.dumps(value)}" for name, value in parameters.items()]
    lines += [
        "[auth.openapi.bearer]",
        f'bearer = "{key}"',
        *(
            f'[auth.openapi."header_{name}"]\napi_key = "{key}"'
            for name in ("x-buildable-secret", "x-authorization", "x-eventbunker-write-key")
        ),
        "[auth.openapi.cdp_basic]",
        f'username = "fuzz"\npassword = "{key}"',
        "[auth.openapi.segment_write_key]",
        f'username = "{key}"\npassword = ""',
    ]
    return "\n".join(lines) + "\n"


def schemathesis(
    config_path: Path, url: str, args: argparse.Namespace, selection: list[str]
) -> int:
    cwd = config_path.parent
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config_path),
        "run",
        f"{url}/openapi.json",
        "--checks",
        args.checks,
        "--max-examples",
        str(args.max_examples),
        "--seed",
        str(args.seed),
        "--workers",
        str(args.workers),
        "--request-timeout",
        "20",
        "--generation-database",
        "none",
        "--no-color",
        *selection,
    ]
    if args.deterministic:
        command.append("--generation-deterministic")
    # In the work directory: schemathesis keeps a cache (.schemathesis/) where it runs.
    return subprocess.run(command, check=False, timeout=args.timeout, cwd=cwd).returncode


def run(args: argparse.Namespace, workdir: Path) -> int:
    database_url = args.database_url or f"sqlite:///{workdir}/eventyard.db"
    key = init_project(database_url)
    log_path = workdir / "serve.log"
    with serve(database_url, log_path) as url:
        seeded = seed(url, key)
        config_path = workdir / "schemathesis.toml"
        config_path.write_text(config(seeded))
        status = schemathesis(
            config_path,
            url,
            args,
            ["--exclude-path", STREAM, "--exclude-by", f"method == 'DELETE' && path == '{KEY}'"],
        )
        status = status or schemathesis(
            config_path, url, args, ["--include-path", KEY, "--include-method", "DELETE"]
        )
        # The stream, each request ending after a fifth of a second.
        stream_config = workdir / "schemathesis-stream.toml"
        stream_config.write_text(config(seeded, **{"query.max_seconds": "0.2"}))
        status = status or schemathesis(stream_config, url, args, ["--include-path", STREAM])
    log = log_path.read_text(errors="replace")
    if status == 0 and "Traceback" in log:
        print(f"the server logged a traceback:\n{log[-6000:]}")
        return 1
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--database-url", help="an empty database (default: a temporary SQLite)")
    parser.add_argument("--max-examples", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--checks", default=CONFORMANCE_CHECKS)
    parser.add_argument("--workers", default="1")
    parser.add_argument("--deterministic", action="store_true", help="schemathesis's mode")
    parser.add_argument("--timeout", type=float, default=3600, help="seconds, each pass")
    parser.add_argument("--keep", type=Path, help="keep the server log and config here")
    args = parser.parse_args(argv)
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        return run(args, args.keep)
    with tempfile.TemporaryDirectory(prefix="eventyard-fuzz-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
