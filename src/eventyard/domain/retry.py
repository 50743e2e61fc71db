"""When to try a failed webhook delivery again.

A schedule is a list of delays in seconds: the first attempt waits `schedule[0]` after the
event (0: at once), and after the n-th failed attempt the next waits `schedule[n]`. When the
schedule runs out the transaction is `failed`. Delays get ±10 % jitter, so that many
transactions failing together (an endpoint back from an outage) do not retry in lock-step.
A receiver's `Retry-After` replaces the scheduled delay, within one second and a day.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

# Immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
DEFAULT_SCHEDULE: tuple[int, ...] = (0, 5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_SCHEDULE_LENGTH = 50
MAX_DELAY_SECONDS = 7 * 24 * 3600
RETRY_AFTER_BOUNDS = (1.0, 24 * 3600.0)


def schedule_problem(value: object) -> str | None:
    """Why `value` is not a usable schedule, or None."""
    if not isinstance(value, list) or not value:
        return "must be a non-empty array of delays in seconds"
    if len(value) > MAX_SCHEDULE_LENGTH:
        return f"has {len(value)} delays; the limit is {MAX_SCHEDULE_LENGTH}"
    for delay in value:
        if isinstance(delay, bool) or not isinstance(delay, int):
            return "every delay must be a whole number of seconds"
        if not 0 <= delay <= MAX_DELAY_SECONDS:
            return f"every delay must be from 0 to {MAX_DELAY_SECONDS} seconds; got {delay}"
    return None


def next_delay_us(
    schedule: Sequence[int],
    failed_attempts: int,
    retry_after_seconds: float | None = None,
    rng: random.Random | None = None,
) -> int | None:
    """Microseconds to wait before the next attempt, or None when no attempt is left."""
    if failed_attempts >= len(schedule):
        return None
    if retry_after_seconds is not None:
        low, high = RETRY_AFTER_BOUNDS
        return int(min(max(retry_after_seconds, low), high) * 1_000_000)
    delay = schedule[failed_attempts]
    if delay == 0:
        return 0
    jitter = (rng or random).uniform(-0.1, 0.1)
    return int(delay * (1 + jitter) * 1_000_000)
