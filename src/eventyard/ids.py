"""Prefixed, time-sortable identifiers.

An id is a short prefix naming the kind of thing (`evt_`, `trg_`, `key_`, `prj_`, `con_`,
`txn_`) and 26 Crockford base32 characters: 48 bits of milliseconds since the epoch followed
by 80 random bits (the ULID layout). Ids made later sort after ids made earlier, so an
index on an id is append-mostly and "newest first" is a cheap descending scan.
Within one millisecond the random part is incremented instead of redrawn, so ids from one
process stay strictly increasing.
"""

from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_RANDOM_BITS = 80

_lock = threading.Lock()
_last_ms = -1
_last_random = 0


# Every pair of characters, by the 10 bits it encodes: a 26-character id is 13 lookups.
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_SHIFTS_26 = tuple(range(120, -1, -10))


def _encode(value: int, length: int) -> str:
    if length == 26:
        return "".join([_PAIRS[(value >> shift) & 1023] for shift in _SHIFTS_26])
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_ulid(now_ms: int | None = None) -> str:
    """A 26-character ULID; strictly increasing within this process."""
    global _last_ms, _last_random
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    with _lock:
        if ms <= _last_ms:
            ms = _last_ms
            _last_random = (_last_random + 1) & ((1 << _RANDOM_BITS) - 1)
        else:
            _last_ms = ms
            _last_random = int.from_bytes(os.urandom(10), "big")
        value = (ms << _RANDOM_BITS) | _last_random
    return _encode(value, 26)


def new_id(prefix: str) -> str:
    return f"{prefix}_{new_ulid()}"


def is_valid_id(value: str, prefix: str) -> bool:
    head, _, body = value.partition("_")
    return head == prefix and len(body) == 26 and all(c in _ALPHABET for c in body)


def new_id_at(prefix: str, ms: int) -> str:
    """An id whose time part is `ms` rather than now. In the millisecond of this process's
    latest id it follows that id, as `new_ulid` would; in another one its random bits are
    fresh. A transaction's id carries its event's millisecond, so on PostgreSQL it falls in
    its event's partition range (store/partitions.py)."""
    global _last_random
    ms = max(0, min(ms, (1 << 48) - 1))
    with _lock:
        if ms == _last_ms:
            _last_random = (_last_random + 1) & ((1 << _RANDOM_BITS) - 1)
            bits = _last_random
        else:
            bits = int.from_bytes(os.urandom(10), "big")
    return f"{prefix}_{_encode((ms << _RANDOM_BITS) | bits, 26)}"


def ms_of(value: str) -> int:
    """The millisecond an id was made at (its first 10 characters after the prefix)."""
    body = value.partition("_")[2]
    ms = 0
    for char in body[:10]:
        ms = ms * 32 + _ALPHABET.index(char)
    return ms


def _ms_part(ms: int) -> str:
    return _encode(max(0, min(ms, (1 << 48) - 1)), 10)


def lowest_id_at(prefix: str, ms: int) -> str:
    """The lowest id with this prefix that can be made in millisecond `ms`: every id made
    from `ms` on is at least this (a retention's bound, a live feed's window)."""
    return f"{prefix}_{_ms_part(ms)}{'0' * 16}"


def highest_id_at(prefix: str, ms: int) -> str:
    """The highest id with this prefix that can be made in millisecond `ms`: every id made
    up to `ms` is at most this."""
    return f"{prefix}_{_ms_part(ms)}{'Z' * 16}"


def first_id_at(ms: int) -> str:
    """The lowest event id that can be made in millisecond `ms`."""
    return lowest_id_at("evt", ms)


def last_id_at(ms: int) -> str:
    """The highest event id that can be made in millisecond `ms`."""
    return highest_id_at("evt", ms)
