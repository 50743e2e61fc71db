"""The pure domain code: slugs, event times, JSON limits, schemas, ids and settings."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

import pytest

from eventyard import ids
from eventyard.domain.jsonbody import nesting_depth, parse_json, whole_number
from eventyard.domain.schema import compile_schema, json_path, normalize_schema
from eventyard.domain.slugs import slugify, trigger_id_problem
from eventyard.domain.timeparse import MAX_US, TimeParseError, parse_event_time
from eventyard.errors import MalformedJson, ValidationFailed
from eventyard.settings import SETTINGS, Settings, SettingsError

ISO_EXPECTED = "an ISO 8601 date-time (e.g. 2026-11-23T10:00:00Z) or epoch milliseconds"


def us(*args: int, tz: Any = UTC) -> int:
    moment = datetime(*args, tzinfo=tz)  # type: ignore[misc]
    return int(moment.timestamp()) * 1_000_000 + moment.microsecond


# --- slugs ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "slug"),
    [
        ("Successful Payment!", "successful_payment"),
        ("signup", "signup"),
        ("Café Crème", "cafe_creme"),
        ("  many   spaces  ", "many_spaces"),
        ("keep.dots-and_dashes", "keep.dots-and_dashes"),
        ("--Leading and trailing--", "leading_and_trailing"),
        ("a///b???c", "a_b_c"),
        ("Order #42 (v2)", "order_42_v2"),
        ("!!!", ""),
        ("日本語", ""),
    ],
)
def test_slugify(name: str, slug: str) -> None:
    assert slugify(name) == slug


def test_a_slug_of_a_long_name_is_a_valid_id() -> None:
    slug = slugify("x" * 127 + " y")
    assert len(slug) <= 128
    assert trigger_id_problem(slug) is None


@pytest.mark.parametrize("name", ["Successful Payment!", "Ünïcödé name", "a" * 300, "9 lives"])
def test_every_slug_passes_the_id_rule(name: str) -> None:
    assert trigger_id_problem(slugify(name)) is None


@pytest.mark.parametrize("good", ["a", "0", "signup", "pay.v2-final_x", "a" * 128])
def test_valid_trigger_ids(good: str) -> None:
    assert trigger_id_problem(good) is None


@pytest.mark.parametrize(
    ("bad", "words"),
    [
        ("", "must not be empty"),
        ("a" * 129, "129 characters"),
        ("Signup", "not a valid trigger id"),
        ("_signup", "starting with a letter or digit"),
        ("sign up", "not a valid trigger id"),
        ("a/b", "not a valid trigger id"),
        ("café", "not a valid trigger id"),
        ("signup\n", "not a valid trigger id"),
    ],
)
def test_invalid_trigger_ids_say_why(bad: str, words: str) -> None:
    problem = trigger_id_problem(bad)
    assert problem is not None
    assert words in problem


# --- event times ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-23T10:00:00Z", us(2026, 11, 23, 10)),
        ("2026-11-23T10:00:00z", us(2026, 11, 23, 10)),
        ("2026-11-23T10:00:00", us(2026, 11, 23, 10)),
        ("2026-11-23T10:00:00+00:00", us(2026, 11, 23, 10)),
        ("2026-11-23T10:00:00.123+02:00", us(2026, 11, 23, 8, 0, 0, 123_000)),
        ("2026-11-23T10:00:00.000001-05:30", us(2026, 11, 23, 15, 30, 0, 1)),
        ("2026-11-23 10:00:00Z", us(2026, 11, 23, 10)),
        ("2026-11-23", us(2026, 11, 23)),
        (" 2026-11-23T10:00:00Z ", us(2026, 11, 23, 10)),
        ("1970-01-01T00:00:00Z", 0),
        ("9999-12-31T23:59:59.999999Z", MAX_US),
        (1_700_000_000_123, 1_700_000_000_123_000),
        (0, 0),
    ],
)
def test_event_times_become_utc_microseconds(value: object, expected: int) -> None:
    assert parse_event_time(value) == expected


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (True, "got a boolean"),
        (False, "got a boolean"),
        (1.5, "got a number"),
        (None, "got null"),
        ({"t": 1}, "got an object"),
        ("yesterday", "'yesterday' is not an ISO 8601"),
        ("", "is not an ISO 8601"),
        ("2026-13-01T00:00:00Z", "is not an ISO 8601"),
        ("1700000000000", "is not an ISO 8601"),
        ("1969-12-31T23:59:59Z", "outside 1970-01-01 to 9999-12-31"),
        ("9999-12-31T23:59:59-01:00", "outside 1970-01-01 to 9999-12-31"),
        (-1, "outside 1970-01-01 to 9999-12-31"),
        (MAX_US // 1000 + 1, "outside 1970-01-01 to 9999-12-31"),
        (10**30, "outside"),
    ],
)
def test_bad_event_times_say_why(value: object, words: str) -> None:
    with pytest.raises(TimeParseError) as caught:
        parse_event_time(value)
    assert words in str(caught.value)


# --- JSON bodies -------------------------------------------------------------------------


def nested(depth: int) -> Any:
    value: Any = 1
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


@pytest.mark.parametrize(
    ("value", "depth"),
    [(1, 0), ("s", 0), ({}, 1), ([], 1), ({"a": [1]}, 2), ([[[]]], 3), ({"a": 1, "b": {}}, 2)],
)
def test_nesting_depth(value: Any, depth: int) -> None:
    assert nesting_depth(value, 32) == depth


def test_nesting_depth_counts_the_deepest_branch_and_stops_early() -> None:
    assert nesting_depth({"shallow": 1, "deep": nested(10), "mid": nested(3)}, 32) == 11
    assert nesting_depth(nested(32), 32) == 32
    assert nesting_depth(nested(10_000), 32) == 33


def test_parse_json_enforces_the_depth_limit() -> None:
    import orjson

    assert parse_json(orjson.dumps(nested(32)), 32) == nested(32)
    with pytest.raises(ValidationFailed, match="the limit is 32"):
        parse_json(orjson.dumps(nested(33)), 32)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"", "empty"),
        (b"   \n", "empty"),
        (b'{"a": 1,}', "not valid JSON"),
        (b'{"a": "\xff"}', "not valid JSON"),
        (b"{'a': 1}", "not valid JSON"),
    ],
)
def test_parse_json_refuses_what_is_not_json(body: bytes, words: str) -> None:
    with pytest.raises(MalformedJson) as caught:
        parse_json(body, 32)
    assert words in caught.value.message


def test_malformed_json_says_where() -> None:
    with pytest.raises(MalformedJson) as caught:
        parse_json(b'{\n  "a": 1,\n  "b": oops\n}', 32)
    assert "line 3" in caught.value.message


# --- schemas -------------------------------------------------------------------------------


def test_json_path_quotes_what_is_not_an_identifier() -> None:
    assert json_path("$.payload", "a", 0, "b c", 'q"x', "n\n") == (
        '$.payload.a[0]["b c"]["q\\"x"]["n\n"]'
    )


def test_attributes_are_normalized() -> None:
    schema, errors = normalize_schema(
        [{"name": "a", "type": "string"}, {"name": "b", "type": "enum", "values": [1, "x"]}],
        None,
        None,
    )
    assert errors == []
    assert schema == {
        "attributes": [
            {"name": "a", "type": "string", "required": False},
            {"name": "b", "type": "enum", "required": False, "values": [1, "x"]},
        ],
        "additional_attributes": True,
    }
    assert normalize_schema(None, None, None) == (None, [])


@pytest.mark.parametrize(
    ("attributes", "json_schema", "additional", "path", "words"),
    [
        ([{"name": "a", "type": "text"}], None, None, "$.attributes[0].type", "must be one of"),
        (
            [{"name": "a", "type": "enum", "values": [True]}],
            None,
            None,
            "$.attributes[0].values",
            "non-empty array",
        ),
        ([{"name": "", "type": "string"}], None, None, "$.attributes[0].name", "1 to 128"),
        ([{"name": "a" * 129, "type": "string"}], None, None, "$.attributes[0].name", "1 to 128"),
        ([{"name": "a", "type": "string"}] * 201, None, None, "$.attributes", "limit is 200"),
        ([], None, "no", "$.additional_attributes", "must be a boolean"),
        ([], {}, None, "$.json_schema", "not both"),
        (None, {"type": 5}, None, "$.json_schema.type", "is not a valid JSON Schema"),
        (None, "{}", None, "$.json_schema", "must be an object, got a string"),
        (None, None, False, "$.additional_attributes", "only applies together"),
    ],
)
def test_schema_definition_errors(
    attributes: Any, json_schema: Any, additional: Any, path: str, words: str
) -> None:
    schema, errors = normalize_schema(attributes, json_schema, additional)
    assert schema is None
    assert [e.path for e in errors] == [path]
    assert words in errors[0].message


def _check(schema: dict[str, Any], payload: dict[str, Any]) -> list[tuple[str, str]]:
    validate = compile_schema(schema)
    return [(e.path, e.message) for e in validate(payload, "$.payload")]


def _attrs(*attributes: dict[str, Any], additional: bool = True) -> dict[str, Any]:
    schema, errors = normalize_schema(list(attributes), None, additional)
    assert errors == []
    assert schema is not None
    return schema


@pytest.mark.parametrize(
    ("attribute", "value", "message"),
    [
        ({"type": "string"}, 1, "must be a string, got a number"),
        ({"type": "number"}, "1", "must be a number, got a string"),
        ({"type": "number"}, True, "must be a number, got a boolean"),
        ({"type": "integer"}, 2.5, "must be an integer, got 2.5"),
        ({"type": "boolean"}, 0, "must be a boolean, got a number"),
        ({"type": "enum", "values": ["a", 1]}, "b", "must be one of 'a', 1; got 'b'"),
        ({"type": "enum", "values": [1]}, True, "must be one of 1; got True"),
        ({"type": "datetime"}, "soon", "'soon' is not " + ISO_EXPECTED),
        ({"type": "datetime"}, 5, "must be an ISO 8601 date-time string, got a number"),
        ({"type": "email"}, "a@b", "must be an email address, got 'a@b'"),
        ({"type": "email"}, "a@b.co\n", "must be an email address, got 'a@b.co\\n'"),
        ({"type": "array"}, {}, "must be an array, got an object"),
        ({"type": "object"}, [], "must be an object, got an array"),
    ],
)
def test_attribute_type_messages(attribute: dict[str, Any], value: Any, message: str) -> None:
    schema = _attrs({"name": "x", **attribute})
    assert _check(schema, {"x": value}) == [("$.payload.x", message)]


@pytest.mark.parametrize(
    ("attribute", "value"),
    [
        ({"type": "integer"}, 2.0),
        ({"type": "number"}, -1e300),
        ({"type": "enum", "values": ["a", 1]}, 1),
        ({"type": "datetime"}, "2026-11-23T10:00:00+01:00"),
        ({"type": "email"}, "first.last+tag@sub.example.org"),
    ],
)
def test_attribute_types_accept_good_values(attribute: dict[str, Any], value: Any) -> None:
    assert _check(_attrs({"name": "x", **attribute}), {"x": value}) == []


def test_required_and_additional_attributes() -> None:
    schema = _attrs({"name": "a b", "type": "string", "required": True}, additional=False)
    assert _check(schema, {}) == [('$.payload["a b"]', "is required")]
    assert _check(schema, {"a b": None}) == [('$.payload["a b"]', "is required")]
    assert _check(schema, {"a b": "x", "other": 1}) == [
        ("$.payload.other", "is not an attribute of this trigger, and it allows no others")
    ]
    optional = _attrs({"name": "a", "type": "string"})
    assert _check(optional, {"a": None, "other": 1}) == []


def test_no_schema_accepts_anything() -> None:
    assert _check({}, {"anything": [1, {"x": None}]}) == []
    assert compile_schema(None)({"a": 1}, "$") == []


def test_json_schema_errors_point_into_the_payload() -> None:
    schema = {
        "json_schema": {
            "type": "object",
            "properties": {
                "items": {"type": "array", "items": {"type": "object", "required": ["sku"]}},
                "email": {"type": "string", "format": "email"},
            },
        }
    }
    problems = _check(schema, {"items": [{"sku": 1}, {}], "email": "nope"})
    assert problems == [
        ("$.payload.email", "'nope' is not a 'email'"),
        ("$.payload.items[1]", "'sku' is a required property"),
    ]


def test_json_schema_reports_at_most_fifty_errors() -> None:
    schema = {"json_schema": {"additionalProperties": {"type": "string"}}}
    problems = _check(schema, {f"k{i}": i for i in range(80)})
    assert len(problems) == 50


# --- ids -----------------------------------------------------------------------------------


def test_ids_have_a_prefix_and_26_crockford_characters() -> None:
    value = ids.new_id("evt")
    prefix, _, body = value.partition("_")
    assert prefix == "evt"
    assert len(body) == 26
    assert set(body) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert ids.is_valid_id(value, "evt")
    assert not ids.is_valid_id(value, "key")


def test_ids_are_strictly_increasing() -> None:
    made = [ids.new_id("evt") for _ in range(10_000)]
    assert all(a < b for a, b in itertools.pairwise(made))


def test_ids_stay_increasing_when_the_clock_goes_back() -> None:
    first = ids.new_ulid()
    earlier = ids.new_ulid(now_ms=1_000)
    assert earlier > first


def test_an_id_starts_with_its_time() -> None:
    before = datetime.now(UTC)
    body = ids.new_id("evt")[4:]
    ms = 0
    for char in body[:10]:
        ms = ms * 32 + "0123456789ABCDEFGHJKMNPQRSTVWXYZ".index(char)
    assert abs(ms - before.timestamp() * 1000) < 60_000


@pytest.mark.parametrize(
    "value",
    ["evt_" + "0" * 25, "evt_" + "0" * 27, "evt_" + "U" * 26, "evt_" + "a" * 26, "evt" + "0" * 26],
)
def test_malformed_ids_are_not_valid(value: str) -> None:
    assert not ids.is_valid_id(value, "evt")


# --- settings ------------------------------------------------------------------------------


def test_settings_default_without_variables() -> None:
    assert Settings.from_env({}) == Settings()
    assert Settings.from_env({"EVENTYARD_PORT": "", "HOME": "/x", "PORT": "1"}) == Settings()


def test_settings_are_read_from_eventyard_variables() -> None:
    s = Settings.from_env(
        {
            "EVENTYARD_DATABASE_URL": "postgresql://u@db:5432/ey",
            "EVENTYARD_PORT": "9000",
            "EVENTYARD_MAX_BATCH_EVENTS": "10",
            "EVENTYARD_HOST": "0.0.0.0",
        }
    )
    assert s.database_url == "postgresql://u@db:5432/ey"
    assert s.port == 9000
    assert s.max_batch_events == 10
    assert s.host == "0.0.0.0"
    assert s.max_event_bytes == Settings().max_event_bytes


def test_settings_read_the_process_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTYARD_CACHE_SECONDS", "7")
    assert Settings.from_env().cache_seconds == 7


def test_flags_override_variables() -> None:
    s = Settings.from_env({"EVENTYARD_PORT": "9000"}, port=9001, host=None)
    assert s.port == 9001
    assert s.host == "127.0.0.1"
    with pytest.raises(SettingsError, match="unknown setting 'colour'"):
        Settings.from_env({}, colour="red")


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("EVENTYARD_PORT", "eighty"),
        ("EVENTYARD_PORT", "0"),
        ("EVENTYARD_MAX_EVENT_BYTES", "-5"),
        ("EVENTYARD_DATABASE_URL", "mysql://x/y"),
    ],
)
def test_a_bad_value_names_its_variable(name: str, raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: raw})
    assert str(caught.value).startswith(f"{name}={raw!r}: ")


def test_every_setting_has_a_variable_and_a_field() -> None:
    defaults = Settings()
    for setting in SETTINGS:
        assert setting.env_var == "EVENTYARD_" + setting.name.upper()
        assert getattr(defaults, setting.name) == setting.default
        assert setting.doc.strip()


@pytest.mark.parametrize(
    ("value", "expected"),
    [(5, 5), (5.0, 5), (-3.0, -3), (5.5, None), (True, None), ("5", None), (None, None)],
)
def test_a_whole_number_may_come_as_an_integral_float_but_not_as_a_bool(
    value: object, expected: int | None
) -> None:
    assert whole_number(value) == expected
