"""Parsing request bodies as JSON, with the limits stated in every refusal.

`parse_json` turns bytes into a Python value or raises `MalformedJson` saying where the text
went wrong (orjson reports line, column and character). It also refuses invalid UTF-8 and
nesting deeper than the configured limit, so no later code has to think about either.
"""

from __future__ import annotations

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
    # there are few, counting them in C spares walking the value.
    if body.count(b"{") + body.count(b"[") <= max_depth:
        return value
    depth = nesting_depth(value, max_depth)
    if depth > max_depth:
        raise ValidationFailed(
            f"The request body nests objects and arrays more than {max_depth} levels deep; "
            f"the limit is {max_depth}."
        )
    return value


def nesting_depth(value: Any, stop_after: int) -> int:
    """How deep arrays and objects nest in `value`; gives up counting past `stop_after`."""
    deepest = 0
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
                return deepest
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return deepest
