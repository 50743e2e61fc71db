"""Garbage-collector settings for a long-running server process.

A request allocates many short-lived objects, nearly all freed by reference counting; the
cyclic collector still runs a young-generation pass every 700 allocations and, now and
then, an old-generation pass over everything the process has loaded (modules, routes,
schemas), pausing the event loop for tens of milliseconds under load. Once the process
has started, `settle()` moves what exists into a permanent generation the collector never
scans (`gc.freeze`) and lets the young generation grow larger between passes: cycles are
still collected, just less often.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between young passes (CPython's default: 700)


def settle() -> None:
    """Call once start-up is done, before serving."""
    gc.collect()
    gc.freeze()
    _, older, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, older, oldest)
