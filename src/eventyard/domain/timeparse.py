"""Event times as clients send them.

Accepted: ISO 8601 strings (`2026-11-23T10:00:00Z`, `2026-11-23T10:00:00.123+02:00`, or
without a zone, which means UTC), and integers of epoch milliseconds. Everything becomes
integer microseconds since the epoch, UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

MIN_US = 0
MAX_US = 253_402_300_799_999_999  # 9999-12-31T23:59:59.999999Z

_EXPECTED = "an ISO 8601 date-time (e.g. 2026-11-23T10:00:00Z) or epoch milliseconds"


class TimeParseError(ValueError):
    pass


def parse_iso(value: str) -> int:
    text = value.strip()
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise TimeParseError(f"{value!r} is not {_EXPECTED}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    delta = parsed - datetime(1970, 1, 1, tzinfo=UTC)
    result = (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if not MIN_US <= result <= MAX_US:
        raise TimeParseError(f"{value!r} is outside 1970-01-01 to 9999-12-31")
    return result


def parse_event_time(value: Any) -> int:
    """A client's `timestamp` field, as microseconds since the epoch."""
    if isinstance(value, bool):
        raise TimeParseError(f"expected {_EXPECTED}, got a boolean")
    if isinstance(value, int):
        result = value * 1000
        if not MIN_US <= result <= MAX_US:
            raise TimeParseError(f"{value} epoch milliseconds is outside 1970-01-01 to 9999-12-31")
        return result
    if isinstance(value, str):
        return parse_iso(value)
    raise TimeParseError(f"expected {_EXPECTED}, got {type_name(value)}")


def type_name(value: Any) -> str:
    """The JSON name of a Python value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
