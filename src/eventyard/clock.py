"""Time, injectable.

Everything that needs "now" asks a `Clock`. Production uses `SystemClock`; tests use
`FrozenClock` and move it by hand, so nothing ever sleeps to test a schedule.
Times inside eventyard are integers of microseconds since the Unix epoch (UTC): they
compare, index and round-trip identically on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def now_us(self) -> int: ...


class SystemClock:
    def now_us(self) -> int:
        return time.time_ns() // 1000


class FrozenClock:
    def __init__(self, start_us: int = 1_767_225_600_000_000) -> None:
        self._now = start_us

    def now_us(self) -> int:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += int(seconds * 1_000_000)


def us_to_datetime(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1_000_000, tz=UTC)


_last_second: tuple[int, str] = (-1, "")


def format_us(value: int) -> str:
    """ISO 8601 in UTC with microseconds and a `Z`: `2026-11-23T11:18:20.123456Z`."""
    global _last_second
    seconds, micros = divmod(value, 1_000_000)
    cached_second, base = _last_second  # most times shown are of the current second
    if cached_second != seconds:
        base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        _last_second = (seconds, base)
    return f"{base}.{micros:06d}Z"
