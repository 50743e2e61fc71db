"""SQL for the shared token buckets (`rate_buckets`): take tokens in one statement.

A bucket holds `tokens` as of `updated_us`, refilling at `rate` tokens a second up to
`burst`. `take` refills the bucket and takes up to `want` whole tokens in one atomic upsert
(a new bucket starts full), and returns what is left and how many it took — fewer than
`want`, or none, when the bucket runs dry. Time runs forward only: a process whose clock is
behind the last writer's neither refills nor moves the bucket's time back.
"""

from __future__ import annotations

from eventyard.store.db import Db

# The bucket's level now: refilled since it was last taken from, capped at the burst; and
# the whole tokens of a level (never negative, so truncation is the floor).
_LEVEL = {
    "sqlite": "min(?, rate_buckets.tokens + max(0, ? - rate_buckets.updated_us) * ?)",
    "postgres": "LEAST(?, rate_buckets.tokens + GREATEST(0, ? - rate_buckets.updated_us) * ?)",
}
_WHOLE = {"sqlite": "CAST({} AS INTEGER)", "postgres": "FLOOR({})"}
_LEAST = {"sqlite": "min", "postgres": "LEAST"}
_LATEST = {"sqlite": "max", "postgres": "GREATEST"}


def take(
    db: Db, bucket: str, rate: float, burst: int, now_us: int, want: int = 1
) -> tuple[float, int]:
    """Take up to `want` whole tokens from `bucket`: (tokens left, tokens taken)."""
    b = db.backend
    level = _LEVEL[b]
    granted = f"{_LEAST[b]}(?, {_WHOLE[b].format(level)})"
    per_us = rate / 1_000_000
    first = min(want, burst)
    row = db.one(
        "INSERT INTO rate_buckets (bucket, tokens, updated_us, taken) VALUES (?, ?, ?, ?)"
        f" ON CONFLICT (bucket) DO UPDATE SET tokens = {level} - {granted}, taken = {granted},"
        f" updated_us = {_LATEST[b]}(rate_buckets.updated_us, excluded.updated_us)"
        " RETURNING tokens, taken",
        (
            *(bucket, burst - first, now_us, first),
            *(burst, now_us, per_us),
            *(want, burst, now_us, per_us),
            *(want, burst, now_us, per_us),
        ),
    )
    assert row is not None  # an upsert always returns its row
    return float(row["tokens"]), int(row["taken"])


def forget(db: Db, bucket: str) -> None:
    """Drop a bucket: it starts full the next time."""
    db.execute("DELETE FROM rate_buckets WHERE bucket = ?", (bucket,))


def forget_idle(db: Db, prefix: str, before_us: int) -> None:
    """Drop the buckets named `prefix…` untouched since `before_us` (full again by then)."""
    db.execute(
        "DELETE FROM rate_buckets WHERE bucket LIKE ? AND updated_us < ?",
        (prefix + "%", before_us),
    )
