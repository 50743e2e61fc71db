"""Parsing request bodies as JSON, with the limits stated in every refusal.

`parse_json` turns bytes into a Python value or raises `MalformedJson` saying where the text
went wrong (orjson reports line, column and character). It also refuses invalid UTF-8 and
nesting deeper than the configured limit, so no later code has to think about either.

orjson reads an integer outside -2**63 .. 2**64 - 1 as a float, so `18446744073709551617`
would be stored as `1.8446744073709552e+19`: a silent change to what the client sent. Such
integers are refused instead (422, naming the range). orjson's float for one is at least
2**63 in size, and its literal has 19 or more digits: a small body is scanned for such a
run, a large one walked for such a float, and only a body with one is parsed a second time,
exactly, to tell a wide integer from a float written as such.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

from eventyard.errors import MalformedJson, ValidationFailed


def parse_json(body: bytes, max_depth: int) -> Any:
    if not body.strip():
        raise MalformedJson("The request body is empty; send a JSON object.")
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise MalformedJson(f"The request body is not valid JSON: {exc}") from None
    # Nesting can be no deeper than the number of brackets (strings may hold more): when
    # there are few, counting them in C spares walking the value — and in a small body a
    # regex finds a wide integer's digits sooner than a walk finds its float.
    if body.count(b"{") + body.count(b"[") <= max_depth and len(body) <= _SCAN_BYTES:
        # Counting digits (a C loop) spares most bodies the regex, which is slower.
        digits = len(body) - len(body.translate(None, _DIGITS))
        if digits >= _WIDE_DIGITS and _LONG_DIGITS.search(body):
            _refuse_wide_integers(body)
        return value
    depth, wide = _walk(value, max_depth)
    if depth > max_depth:
        raise ValidationFailed(
            f"The request body nests objects and arrays more than {max_depth} levels deep; "
            f"the limit is {max_depth}."
        )
    if wide:
        _refuse_wide_integers(body)
    return value


INT_MIN, INT_MAX = -(2**63), 2**64 - 1  # orjson holds int64 and uint64 exactly
_FLOAT_MIN, _FLOAT_MAX = float(INT_MIN), float(2**64)
_WIDE_DIGITS = 19  # the fewest digits of an integer outside that range
_DIGITS = b"0123456789"
_LONG_DIGITS = re.compile(rb"[0-9]{%d}" % _WIDE_DIGITS)
_SCAN_BYTES = 4096


def _refuse_wide_integers(body: bytes) -> None:
    """Parse again, exactly, to tell a wide integer literal from a float such as 1e19."""
    json.loads(body, parse_int=_exact_integer)


def _exact_integer(text: str) -> int:
    digits = text.lstrip("-")
    if len(digits) <= 18 or (len(digits) <= 20 and INT_MIN <= int(text) <= INT_MAX):
        return 0  # the value itself is orjson's; only its range matters here
    shown = text if len(text) <= 40 else f"{text[:20]}...({len(digits)} digits)"
    raise ValidationFailed(
        f"The request body holds the integer {shown}, outside the range stored exactly "
        f"({INT_MIN} to {INT_MAX}); send it as a string, or as a number with a fraction or "
        "an exponent to store it as a float."
    )


def nesting_depth(value: Any, stop_after: int) -> int:
    """How deep arrays and objects nest in `value`; gives up counting past `stop_after`."""
    return _walk(value, stop_after)[0]


def _walk(value: Any, stop_after: int) -> tuple[int, bool]:
    """(the nesting depth, up to `stop_after` + 1; whether a float outside -2**63 .. 2**64
    appears — what orjson makes of an integer it cannot hold)."""
    deepest = 0
    wide = type(value) is float and not _FLOAT_MIN < value < _FLOAT_MAX
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > deepest:
            deepest = depth
            if deepest > stop_after:
                return deepest, wide
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
            elif type(child) is float and not _FLOAT_MIN < child < _FLOAT_MAX:
                wide = True
    return deepest, wide


def whole_number(value: object) -> int | None:
    """`value` as an int when it is a whole number in JSON's sense: 5, or 5.0, which JSON
    Schema counts as an integer too. None for anything else, booleans included."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None
