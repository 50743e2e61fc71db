"""Schemathesis against a real server, driven by its own /openapi.json, on both databases.

bench/fuzz/openapi.py starts `eventyard serve` on a free port, seeds a trigger, a pull
consumer, events, a claimed transaction and a spare key, and runs every operation through
every schemathesis phase with an all-scope key and the conformance checks: no 5xx, and every
answer's status code, content type, headers and body as the document says. Here it runs a
few examples per operation with a fixed seed, so a failure reproduces; the longer run is the
same script with `--max-examples 500` (bench/fuzz/run.sh runs it on both databases).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.fuzz
def test_every_documented_operation_answers_as_documented_and_never_5xx(
    store_url: str, tmp_path: Path
) -> None:
    command = [
        sys.executable,
        str(REPO / "bench" / "fuzz" / "openapi.py"),
        "--database-url",
        store_url,
        "--max-examples",
        "4",
        "--seed",
        "8",
        "--timeout",
        "25",
        "--keep",
        str(tmp_path),
    ]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"{proc.stdout[-12000:]}\n{proc.stderr[-4000:]}"
    assert "Traceback" not in (tmp_path / "serve.log").read_text()
