"""scripts/screenshots.py still runs: into a temporary directory, never over docs/images."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dashboard.conftest import CHROMIUM, REQUIRE_BROWSER

ROOT = Path(__file__).resolve().parents[2]
EXPECTED = {
    "dashboard-login.png": 1280,
    "dashboard-overview.png": 1280,
    "dashboard-triggers.png": 1280,
    "dashboard-create-trigger.png": 1280,
    "dashboard-trigger.png": 1280,
    "dashboard-keys.png": 1280,
    "dashboard-events.png": 1280,
    "dashboard-event.png": 1280,
    "dashboard-consumers.png": 1280,
    "dashboard-phone.png": 390,
    "dashboard-phone-events.png": 390,
}


def _png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path.name} is not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def test_the_screenshot_script_writes_every_page(tmp_path: Path) -> None:
    if not CHROMIUM.exists():
        if REQUIRE_BROWSER:
            pytest.fail(f"EVENTYARD_REQUIRE_BROWSER=1 but {CHROMIUM} is not installed")
        pytest.skip(f"{CHROMIUM} is not installed")
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "screenshots.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=55,
        check=False,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    written = {p.name for p in tmp_path.glob("*.png")}
    assert written == set(EXPECTED)
    for name, width in EXPECTED.items():
        got_width, height = _png_size(tmp_path / name)
        assert got_width == width, name
        assert height >= 600, name


def test_docs_images_hold_every_screenshot_the_script_makes() -> None:
    images = ROOT / "docs" / "images"
    for name, width in EXPECTED.items():
        assert (images / name).exists(), (
            f"docs/images/{name} is missing: run scripts/screenshots.py"
        )
        assert _png_size(images / name)[0] == width, name
