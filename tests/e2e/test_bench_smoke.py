"""The benchmark harness runs end to end: a quick pass of single, batch and ack on SQLite.

This checks that the harness works — it starts its servers, drives them with wrk, and
writes a figure with a rate for every scenario and no failed request — not how fast
eventyard is: performance is measured by bench/run.py, never asserted in a test. wrk and
nginx are installed by CI (.ci/run), and by the harness itself when missing.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

REPO = Path(__file__).resolve().parents[2]
SCENARIOS = ("single", "batch", "ack")


def run_bench(script: str, *args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    """`python bench/<script> args...` from the repository, its output captured."""
    command = [sys.executable, str(REPO / "bench" / script), *args]
    return subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.mark.timeout(180)
def test_a_quick_benchmark_run_measures_every_scenario_it_is_given(tmp_path: Path) -> None:
    proc = run_bench(
        "run.py",
        "--quick",
        "--scenarios",
        ",".join(SCENARIOS),
        "--backends",
        "sqlite",
        "--output",
        str(tmp_path),
        timeout=170,
    )
    assert proc.returncode == 0, f"bench/run.py failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"

    results: dict[str, Any] = orjson.loads((tmp_path / "latest.json").read_bytes())
    assert results["settings"]["runs"] == 1
    assert results["machine"]["wrk"]
    ran = {(s["name"], s["backend"]): s for s in results["scenarios"]}
    assert set(ran) == {(name, "sqlite") for name in SCENARIOS}
    for name in SCENARIOS:
        scenario = ran[(name, "sqlite")]
        assert scenario["error"] is None, scenario
        eventyard = [f for f in scenario["figures"] if f["role"] == "eventyard"]
        assert eventyard, f"{name}: no eventyard figure"
        for figure in scenario["figures"]:
            assert len(figure["runs"]) == 1, figure
            assert figure["median"]["rate"] > 0, figure
            assert figure["errors"] == 0, figure
    single = ran[("single", "sqlite")]["figures"]
    assert any(f["role"] == "ceiling" and f["vs"] == [] for f in single)
    assert all(f["vs"] for f in single if f["role"] == "eventyard"), single
    batch = next(f for f in ran[("batch", "sqlite")]["figures"] if f["role"] == "eventyard")
    assert batch["extra"]["rows_stored"] >= batch["extra"]["events_acknowledged"] > 0
    ack = [f for f in ran[("ack", "sqlite")]["figures"] if f["role"] == "eventyard"]
    assert all(f["median"]["visible_by_id_fraction"] == 1.0 for f in ack), ack
    markdown = (tmp_path / "latest.md").read_text()
    for title in ("### single", "### batch", "### ack", "Issue 7's targets"):
        assert title in markdown


@pytest.mark.timeout(90)
def test_a_short_soak_samples_memory_and_latency_and_loses_nothing(tmp_path: Path) -> None:
    """bench/soak.py for a quarter of a minute: it samples and judges; the verdict on memory
    and p99 over so short a run is not asserted (that takes minutes), losing nothing is."""
    out = tmp_path / "soak.json"
    proc = run_bench(
        "soak.py",
        "--minutes",
        "0.25",
        "--every",
        "3",
        "--rate",
        "50",
        "--warmup-minutes",
        "0.05",
        "--drain-seconds",
        "15",
        "--output",
        str(out),
        timeout=80,
    )
    assert proc.returncode in (0, 1), f"bench/soak.py failed:\n{proc.stdout}\n{proc.stderr[-4000:]}"
    assert "verdict:" in proc.stdout
    result: dict[str, Any] = orjson.loads(out.read_bytes())
    samples = result["samples"]
    assert len(samples) >= 4, samples
    assert all(s["rss_mb"] > 0 and s["fds"] > 0 for s in samples), samples
    assert sum(s["requests"] for s in samples) >= 0.25 * 60 * 50 * 0.9
    assert all(s["p99_ms"] >= s["p50_ms"] > 0 for s in samples), samples
    verdict = result["verdict"]
    assert verdict["errors"] == 0, proc.stdout
    assert verdict["missing"] == 0, proc.stdout
    assert verdict["nothing_lost"] is True
