"""`heap.settle()`: what a server process does to its garbage collector once started."""

from __future__ import annotations

import subprocess
import sys


def test_settle_freezes_what_exists_and_spaces_out_young_collections() -> None:
    # In a fresh interpreter: settling changes process-wide state the tests must not share.
    script = (
        "import gc; from eventyard import heap; before = gc.get_threshold();"
        " heap.settle(); after = gc.get_threshold();"
        " print(gc.get_freeze_count() > 0, after[0], after[1:] == before[1:], gc.isenabled())"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out == ["True", "10000", "True", "True"]
