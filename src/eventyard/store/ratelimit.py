"""SQL for the shared token buckets (`rate_buckets`): take one token in one statement.

A bucket holds `tokens` as of `updated_us`, refilling at `rate` tokens a second up to
`burst`. `take` refills and takes one token in a single atomic upsert, which returns a row
only when a whole token was there; a refused take changes nothing and reads the bucket to
say when the next token comes. Time runs forward only: a process whose clock is behind the
last writer's neither refills nor moves the bucket's time back.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventyard.store.db import Db

# The bucket's level now: refilled since it was last taken from, capped at the burst.
_LEVEL = {
    "sqlite": "min(?, rate_buckets.tokens + max(0, ? - rate_buckets.updated_us) * ?)",
    "postgres": "LEAST(?, rate_buckets.tokens + GREATEST(0, ? - rate_buckets.updated_us) * ?)",
}
_LATEST = {"sqlite": "max", "postgres": "GREATEST"}


@dataclass(frozen=True)
class Taken:
    allowed: bool
    tokens: float  # what is left after this take (or, refused, what there is)


def take(db: Db, bucket: str, rate: float, burst: int, now_us: int) -> Taken:
    """Take a token from `bucket` (a new bucket starts full) if a whole one is there."""
    level = _LEVEL[db.backend]
    per_us = rate / 1_000_000
    row = db.one(
        "INSERT INTO rate_buckets (bucket, tokens, updated_us) VALUES (?, ?, ?)"
        f" ON CONFLICT (bucket) DO UPDATE SET tokens = {level} - 1,"
        f" updated_us = {_LATEST[db.backend]}(rate_buckets.updated_us, excluded.updated_us)"
        f" WHERE {level} >= 1 RETURNING tokens",
        (bucket, burst - 1, now_us, burst, now_us, per_us, burst, now_us, per_us),
    )
    if row is not None:
        return Taken(True, float(row["tokens"]))
    found = db.one("SELECT tokens, updated_us FROM rate_buckets WHERE bucket = ?", (bucket,))
    if found is None:  # pragma: no cover - deleted between the two statements
        return Taken(False, 0.0)
    since = max(0, now_us - int(found["updated_us"]))
    return Taken(False, min(float(burst), float(found["tokens"]) + since * per_us))


def forget(db: Db, bucket: str) -> None:
    """Drop a bucket: it starts full the next time."""
    db.execute("DELETE FROM rate_buckets WHERE bucket = ?", (bucket,))


def forget_idle(db: Db, prefix: str, before_us: int) -> None:
    """Drop the buckets named `prefix…` untouched since `before_us` (full again by then)."""
    db.execute(
        "DELETE FROM rate_buckets WHERE bucket LIKE ? AND updated_us < ?",
        (prefix + "%", before_us),
    )
