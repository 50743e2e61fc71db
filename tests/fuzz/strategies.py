"""Hypothesis strategies: JSON values, trigger attribute lists, payloads that fit them, and
payloads that break them in exactly one attribute."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import strategies as st

from eventyard.domain.schema import AttributeType

# Text without surrogates (JSON cannot carry a lone one through UTF-8) and without NUL
# (tested on its own: PostgreSQL's jsonb cannot store it).
TEXT = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=40)
KEYS = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="\x00"), max_size=12)
# JSON numbers as clients send them: integers orjson holds exactly (int64 and uint64) and
# finite floats of every magnitude.
INTEGERS = st.integers(min_value=-(2**63), max_value=2**64 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.none() | st.booleans() | INTEGERS | FLOATS | TEXT


# User ids: no control characters (refused, as documented), not blank.
USER_IDS = st.text(st.characters(exclude_categories=("Cs", "Cc")), min_size=1, max_size=30).filter(
    str.strip
)


def json_values(max_leaves: int = 30) -> st.SearchStrategy[Any]:
    return st.recursive(
        SCALARS,
        lambda inner: st.lists(inner, max_size=5) | st.dictionaries(KEYS, inner, max_size=5),
        max_leaves=max_leaves,
    )


def json_objects() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(KEYS, json_values(), max_size=8)


ATTRIBUTE_TYPES = tuple(t.value for t in AttributeType)
NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,15}", fullmatch=True)
ENUM_VALUES = st.lists(
    st.one_of(TEXT.filter(bool), INTEGERS), min_size=1, max_size=5, unique_by=repr
)


@st.composite
def attributes(draw: st.DrawFn) -> list[dict[str, Any]]:
    names = draw(st.lists(NAMES, min_size=1, max_size=6, unique=True))
    out = []
    for name in names:
        kind = draw(st.sampled_from(ATTRIBUTE_TYPES))
        attr: dict[str, Any] = {"name": name, "type": kind, "required": draw(st.booleans())}
        if kind == "enum":
            attr["values"] = draw(ENUM_VALUES)
        out.append(attr)
    return out


def value_of(attr: dict[str, Any]) -> st.SearchStrategy[Any]:
    kind = attr["type"]
    return {
        "string": TEXT,
        "number": INTEGERS | FLOATS,
        "integer": INTEGERS,
        "boolean": st.booleans(),
        "enum": st.sampled_from(attr.get("values") or [0]),
        "datetime": st.datetimes(  # the documented range
            min_value=datetime(1970, 1, 1), max_value=datetime(9999, 12, 31), timezones=st.just(UTC)
        ).map(lambda d: d.isoformat().replace("+00:00", "Z")),
        "email": st.from_regex(r"[a-z0-9._]{1,10}@[a-z0-9]{1,10}\.[a-z]{2,6}", fullmatch=True),
        "array": st.lists(json_values(8), max_size=4),
        "object": st.dictionaries(KEYS, json_values(8), max_size=4),
    }[kind]


# For each type, values of the wrong type (never None: a missing optional value is fine).
WRONG = {
    "string": INTEGERS | st.booleans() | st.lists(INTEGERS, max_size=2),
    "number": TEXT | st.booleans() | st.lists(INTEGERS, max_size=2),
    "integer": TEXT | st.booleans() | FLOATS.filter(lambda f: not f.is_integer()),
    "boolean": TEXT | INTEGERS,
    "enum": st.just("\u2603 not one of them"),
    "datetime": INTEGERS | st.just("not a date") | st.just("2026-13-45T99:00:00Z"),
    "email": INTEGERS | st.just("no-at-sign") | st.just("a b@c.d"),
    "array": TEXT | INTEGERS | st.dictionaries(KEYS, INTEGERS, max_size=2),
    "object": TEXT | INTEGERS | st.lists(INTEGERS, max_size=2),
}


@st.composite
def fitting_payload(draw: st.DrawFn, attrs: list[dict[str, Any]]) -> dict[str, Any]:
    payload: dict[str, Any] = {}
    for attr in attrs:
        if attr["required"] or draw(st.booleans()):
            payload[attr["name"]] = draw(value_of(attr))
    return payload


@st.composite
def broken_payload(
    draw: st.DrawFn, attrs: list[dict[str, Any]]
) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(a payload that fits, the same with one attribute broken, that attribute's name)."""
    good = draw(fitting_payload(attrs))
    attr = draw(st.sampled_from(attrs))
    bad = dict(good)
    if attr["required"] and draw(st.booleans()):
        bad.pop(attr["name"], None)
    else:
        wrong = draw(WRONG[attr["type"]])
        if attr["type"] == "enum" and wrong in attr["values"]:
            wrong = {"not": "in the enum"}
        bad[attr["name"]] = wrong
    return good, bad, attr["name"]
