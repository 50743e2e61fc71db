"""A small time-bounded cache for rows other processes may change.

A process invalidates its own entries the moment it changes a row; entries changed by
another process are trusted for at most `ttl_us` (the `cache_seconds` setting).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from eventyard.clock import Clock

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class TtlCache(Generic[K, V]):
    def __init__(self, clock: Clock, ttl_us: int, max_entries: int = 10_000) -> None:
        self._clock = clock
        self._ttl = ttl_us
        self._max = max_entries
        self._items: dict[K, tuple[int, V]] = {}

    def get(self, key: K) -> V | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        stored_at, value = hit
        if self._clock.now_us() - stored_at > self._ttl:
            del self._items[key]
            return None
        return value

    def put(self, key: K, value: V) -> None:
        if len(self._items) >= self._max:
            self._items.clear()  # crude but bounded; a full cache is rebuilt from the database
        self._items[key] = (self._clock.now_us(), value)

    def discard(self, key: K) -> None:
        self._items.pop(key, None)

    def clear(self) -> None:
        self._items.clear()
