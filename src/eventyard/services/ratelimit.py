"""Per-key rate limits: a token bucket per API key, shared by every server process.

Each key has a bucket of `burst` tokens that refills at `rate` tokens a second; a request
takes one, and a request that finds no whole token is answered 429 with `Retry-After` and
the `RateLimit` / `RateLimit-Policy` fields of draft-ietf-httpapi-ratelimit-headers-11
(`RateLimit-Policy: "per-key";q=<burst>;w=<seconds to refill>`,
`RateLimit: "per-key";r=<whole tokens left>;t=<seconds until full>`), which successful
answers carry too. Limits are off unless `rate_limit_per_second` is set.

On PostgreSQL the buckets live in the database (`rate_buckets`), so the limit holds across
every process serving it: one atomic upsert per request on an autocommit connection, never
behind the group commit. On SQLite one process holds the database, so its buckets stay in
that process's memory and a request costs no write.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from eventyard.clock import Clock
from eventyard.domain.models import Principal
from eventyard.errors import TooManyRequests
from eventyard.store import Store
from eventyard.store import ratelimit as sql
from eventyard.store.ratelimit import Taken


@dataclass(frozen=True)
class Policy:
    rate: float  # tokens a second
    burst: int  # tokens a full bucket holds
    name: str = "per-key"

    def seconds_for(self, tokens: float) -> int:
        """Whole seconds until the bucket has refilled `tokens` more (at least 1 if any)."""
        return 0 if tokens <= 0 else max(1, math.ceil(tokens / self.rate))

    def headers(self, taken: Taken) -> dict[str, str]:
        headers = {
            "RateLimit-Policy": f'"{self.name}";q={self.burst};w={self.seconds_for(self.burst)}',
            "RateLimit": (
                f'"{self.name}";r={max(0, math.floor(taken.tokens))}'
                f";t={self.seconds_for(self.burst - taken.tokens)}"
            ),
        }
        if not taken.allowed:
            headers["Retry-After"] = str(self.seconds_for(1 - taken.tokens))
        return headers


class MemoryBuckets:
    """The same buckets as `rate_buckets`, in this process's memory (for SQLite)."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, int]] = {}

    def take(self, bucket: str, rate: float, burst: int, now_us: int) -> Taken:
        tokens, updated = self._buckets.get(bucket, (float(burst), now_us))
        level = min(float(burst), tokens + max(0, now_us - updated) * rate / 1_000_000)
        if level < 1:
            return Taken(False, level)
        self._buckets[bucket] = (level - 1, max(updated, now_us))
        return Taken(True, level - 1)


class RateLimiter:
    def __init__(self, store: Store, clock: Clock, rate: float, burst: int) -> None:
        self._store = store
        self._clock = clock
        self.policy = Policy(rate, burst) if rate > 0 else None
        self._memory = MemoryBuckets() if store.backend == "sqlite" else None

    async def take(self, principal: Principal) -> dict[str, str]:
        """Take a token for this key: the headers to answer with, or 429 when none is left."""
        policy = self.policy
        if policy is None:
            return {}
        bucket, now = "key:" + principal.key.id, self._clock.now_us()
        if self._memory is not None:
            taken = self._memory.take(bucket, policy.rate, policy.burst, now)
        else:
            taken = await self._store.read(
                lambda db: sql.take(db, bucket, policy.rate, policy.burst, now)
            )
        headers = policy.headers(taken)
        if not taken.allowed:
            raise TooManyRequests(
                f"This key has used its burst of {policy.burst} requests and refills at "
                f"{policy.rate:g} a second (the limit); retry in {headers['Retry-After']} s.",
                headers=headers,
            )
        return headers
