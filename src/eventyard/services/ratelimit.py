"""Per-key rate limits: a token bucket per API key, shared by every server process.

Each key has a bucket of `burst` tokens that refills at `rate` tokens a second; a request
takes one, and a request that finds no whole token is answered 429 with `Retry-After` and
the `RateLimit` / `RateLimit-Policy` fields of draft-ietf-httpapi-ratelimit-headers-11
(`RateLimit-Policy: "per-key";q=<burst>;w=<seconds to refill>`,
`RateLimit: "per-key";r=<whole tokens left>;t=<seconds until full>`), which successful
answers carry too. Limits are off unless `rate_limit_per_second` is set.

On PostgreSQL the buckets live in the database (`rate_buckets`), so the limit holds across
every process serving it: an atomic upsert on an autocommit connection, never behind the
group commit. Requests of one key that arrive while its upsert is in flight wait for the
next one, which takes as many tokens as there are requests (one upsert per key per round
trip rather than per request: a row updated by every request serialized them on its lock
and cost a commit each, 0.30x the rate without limits). On SQLite one process holds the
database, so its buckets stay in that process's memory and a request costs no write.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass
from functools import partial

from eventyard.clock import Clock
from eventyard.domain.models import Principal
from eventyard.errors import TooManyRequests
from eventyard.store import Store
from eventyard.store import ratelimit as sql


@dataclass(frozen=True)
class Taken:
    allowed: bool
    tokens: float  # what is left after this take (or, refused, what there is)


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


class SharedBuckets:
    """Buckets in `rate_buckets`: the takes of one bucket that arrive while its statement
    is in flight go together in the next, which takes one token for each of them."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._waiting: dict[str, list[asyncio.Future[Taken]]] = {}
        self._draining: dict[str, asyncio.Task[None]] = {}  # a bucket's statement loop

    async def take(self, bucket: str, rate: float, burst: int) -> Taken:
        future: asyncio.Future[Taken] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(bucket, []).append(future)
        if bucket not in self._draining:
            self._draining[bucket] = asyncio.create_task(self._drain(bucket, rate, burst))
        return await future

    async def _drain(self, bucket: str, rate: float, burst: int) -> None:
        while True:
            batch = self._waiting.pop(bucket, None)
            if not batch:
                del self._draining[bucket]  # with no await since the check: none is missed
                return
            take = partial(sql.take, bucket=bucket, rate=rate, burst=burst)
            try:
                left, got = await self._store.read(
                    partial(take, now_us=self._clock.now_us(), want=len(batch))
                )
            except Exception as exc:  # the database is down: each request answers 503
                # Those that came while this one waited would only wait as long again.
                for future in batch + self._waiting.pop(bucket, []):
                    if not future.done():
                        future.set_exception(exc)
                continue
            for n, future in enumerate(batch):
                if not future.done():  # its client may have gone
                    future.set_result(Taken(n < got, left + max(0, got - 1 - n)))


class RateLimiter:
    def __init__(self, store: Store, clock: Clock, rate: float, burst: int) -> None:
        self._clock = clock
        self.policy = Policy(rate, burst) if rate > 0 else None
        self._memory = MemoryBuckets() if store.backend == "sqlite" else None
        self._shared = SharedBuckets(store, clock)

    async def take(self, principal: Principal) -> dict[str, str]:
        """Take a token for this key: the headers to answer with, or 429 when none is left."""
        policy = self.policy
        if policy is None:
            return {}
        bucket = "key:" + principal.key.id
        if self._memory is not None:
            now = self._clock.now_us()
            taken = self._memory.take(bucket, policy.rate, policy.burst, now)
        else:
            taken = await self._shared.take(bucket, policy.rate, policy.burst)
        headers = policy.headers(taken)
        if not taken.allowed:
            raise TooManyRequests(
                f"This key has used its burst of {policy.burst} requests and refills at "
                f"{policy.rate:g} a second (the limit); retry in {headers['Retry-After']} s.",
                headers=headers,
            )
        return headers
