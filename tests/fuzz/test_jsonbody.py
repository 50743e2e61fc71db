"""Property tests for the JSON body parser (domain/jsonbody.py) against orjson and json.

Whatever the bytes, `parse_json` answers a value or one of the two refusals the API turns
into a 400 or 422 — never another exception. On valid JSON within the limits it answers
what the standard library reads (unicode and escapes, duplicate keys: the last wins, 64-bit
and unsigned 64-bit integers exactly, floats as doubles); nesting past the limit and integers
outside -2**63 .. 2**64 - 1 are refused with the limit in the message, never rounded.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventyard.domain.jsonbody import parse_json
from eventyard.errors import MalformedJson, ValidationFailed
from tests.fuzz.strategies import INTEGERS, KEYS, json_values

pytestmark = pytest.mark.fuzz
DEPTH = 32


def depth_of(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


def encodings(value: Any) -> list[bytes]:
    """The same value as orjson writes it, and as json writes it escaped and indented."""
    return [
        orjson.dumps(value),
        json.dumps(value, ensure_ascii=True).encode(),
        json.dumps(value, ensure_ascii=False, indent=2).encode(),
    ]


@given(value=json_values(60))
def test_valid_json_reads_as_the_standard_library_reads_it(value: Any) -> None:
    for body in encodings(value):
        assert parse_json(body, DEPTH) == json.loads(body) == value


@given(pairs=st.lists(st.tuples(st.sampled_from(["a", "b", "é", "a"]), INTEGERS), min_size=1))
def test_duplicate_keys_keep_the_last_value_as_json_does(pairs: list[tuple[str, int]]) -> None:
    body = ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in pairs) + "}").encode()
    assert parse_json(body, DEPTH) == json.loads(body) == dict(pairs)


@given(depth=st.integers(min_value=1, max_value=80), inner=st.sampled_from(["[", "{"]))
def test_nesting_is_refused_past_the_limit_and_the_refusal_names_it(depth: int, inner: str) -> None:
    value: Any = 0
    for level in range(depth):
        value = [value] if (inner == "[") == (level % 2 == 0) else {"k": value}
    body = orjson.dumps(value)
    assert depth_of(value) == depth
    if depth <= DEPTH:
        assert parse_json(body, DEPTH) == value
    else:
        with pytest.raises(ValidationFailed, match=f"the limit is {DEPTH}"):
            parse_json(body, DEPTH)


@given(
    wide=st.integers(min_value=2**64) | st.integers(max_value=-(2**63) - 1),
    filler=st.lists(KEYS, max_size=200),
    where=st.sampled_from(["top", "deep", "batch"]),
)
def test_an_integer_orjson_cannot_hold_is_refused_not_rounded(
    wide: int, filler: list[str], where: str
) -> None:
    payload = {"filler": filler, "n": wide}
    value: Any = {
        "top": payload,
        "deep": {"a": [[[{"b": payload}]]]},
        "batch": {"events": [{"payload": {"i": i}} for i in range(40)] + [{"payload": payload}]},
    }[where]
    body = json.dumps(value).encode()
    with pytest.raises(ValidationFailed, match="-9223372036854775808 to 18446744073709551615"):
        parse_json(body, DEPTH)
    # Within 64 bits, and as floats or strings, the same digits are fine.
    edge = str(2**64 - 1 if wide > 0 else -(2**63)).encode()
    within = body.replace(str(wide).encode(), edge)
    assert parse_json(within, DEPTH) == json.loads(within)
    as_float = body.replace(str(wide).encode(), f"{wide}.0".encode())
    assert parse_json(as_float, DEPTH) == json.loads(as_float)


@given(body=st.binary(max_size=300) | json_values(20).map(orjson.dumps).map(lambda b: b[:-1]))
def test_any_bytes_give_a_value_or_a_clear_refusal(body: bytes) -> None:
    refusal: Exception | None = None
    try:
        value = parse_json(body, DEPTH)
    except (MalformedJson, ValidationFailed) as exc:  # 400 and 422; anything else fails
        refusal = exc
    if refusal is None:
        assert value == json.loads(body)
    elif isinstance(refusal, MalformedJson):
        assert "JSON" in str(refusal)
    else:
        assert "limit" in str(refusal) or "range" in str(refusal)


@given(text=st.text())
def test_bad_utf8_and_lone_surrogates_are_malformed_json(text: str) -> None:
    for body in (b'{"s": "' + text.encode("utf-8", "surrogatepass") + b'\xff"}', b'"\\ud800"'):
        with pytest.raises(MalformedJson):
            parse_json(body, DEPTH)
