"""Trigger schemas: typed attributes or a raw JSON Schema, compiled once per trigger.

A trigger's schema is stored as one of two JSON objects:

* `{"attributes": [{"name", "type", "required", "values"?, "description"?}, ...],
  "additional_attributes": bool}` — the typed attribute list the dashboard edits (modelled
  on the CDP seed's table). Validation is a loop over the attributes written here: fast, and
  every error names the field by JSON path.
* `{"json_schema": {...}}` — any JSON Schema (draft 2020-12), checked with `jsonschema`.

`compile_schema` turns either into a `PayloadValidator`, a callable returning the list of
problems (empty when the payload is valid). Callers cache the compiled validator with the
trigger, so a schema is compiled once, not per event.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import jsonschema
import jsonschema.exceptions

from eventyard.domain.timeparse import TimeParseError, parse_iso, type_name
from eventyard.errors import FieldError, json_path

PayloadValidator = Callable[[dict[str, Any], str], list[FieldError]]

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
MAX_ATTRIBUTES = 200
MAX_ATTRIBUTE_NAME = 128


class AttributeType(StrEnum):
    STRING = "string"
    NUMBER = "number"
    INTEGER = "integer"
    BOOLEAN = "boolean"
    ENUM = "enum"
    DATETIME = "datetime"
    EMAIL = "email"
    ARRAY = "array"
    OBJECT = "object"


# --- checking a schema definition (on trigger create/update) -------------------------------


def normalize_schema(
    attributes: Any, json_schema: Any, additional_attributes: Any
) -> tuple[dict[str, Any] | None, list[FieldError]]:
    """Check a schema as a client sent it; return the stored form, or the problems."""
    if attributes is not None and json_schema is not None:
        return None, [
            FieldError("$.json_schema", "give either attributes or json_schema, not both")
        ]
    if json_schema is not None:
        return _normalize_json_schema(json_schema)
    if attributes is not None:
        return _normalize_attributes(attributes, additional_attributes)
    if additional_attributes is not None:
        return None, [
            FieldError("$.additional_attributes", "only applies together with attributes")
        ]
    return None, []


def _normalize_json_schema(schema: Any) -> tuple[dict[str, Any] | None, list[FieldError]]:
    if not isinstance(schema, dict):
        return None, [FieldError("$.json_schema", f"must be an object, got {type_name(schema)}")]
    try:
        jsonschema.Draft202012Validator.check_schema(schema)
    except jsonschema.exceptions.SchemaError as exc:
        path = json_path("$.json_schema", *exc.absolute_path)
        return None, [FieldError(path, f"is not a valid JSON Schema: {exc.message}")]
    return {"json_schema": schema}, []


def _normalize_attributes(
    attributes: Any, additional: Any
) -> tuple[dict[str, Any] | None, list[FieldError]]:
    errors: list[FieldError] = []
    if not isinstance(attributes, list):
        return None, [FieldError("$.attributes", f"must be an array, got {type_name(attributes)}")]
    if len(attributes) > MAX_ATTRIBUTES:
        return None, [
            FieldError(
                "$.attributes",
                f"has {len(attributes)} attributes; the limit is {MAX_ATTRIBUTES}",
            )
        ]
    if additional is not None and not isinstance(additional, bool):
        errors.append(
            FieldError("$.additional_attributes", f"must be a boolean, got {type_name(additional)}")
        )
    seen: set[str] = set()
    normalized: list[dict[str, Any]] = []
    allowed_keys = {"name", "type", "required", "values", "description"}
    for index, attr in enumerate(attributes):
        base = f"$.attributes[{index}]"
        if not isinstance(attr, dict):
            errors.append(FieldError(base, f"must be an object, got {type_name(attr)}"))
            continue
        for unknown in sorted(set(attr) - allowed_keys):
            errors.append(
                FieldError(
                    json_path(base, unknown),
                    "is not a known attribute field (name, type, required, values, description)",
                )
            )
        name = attr.get("name")
        if not isinstance(name, str) or not name or len(name) > MAX_ATTRIBUTE_NAME:
            errors.append(
                FieldError(
                    base + ".name",
                    f"must be a string of 1 to {MAX_ATTRIBUTE_NAME} characters",
                )
            )
            continue
        if name in seen:
            errors.append(FieldError(base + ".name", f"{name!r} appears more than once"))
        seen.add(name)
        raw_type = attr.get("type")
        try:
            attr_type = AttributeType(str(raw_type))
        except ValueError:
            choices = ", ".join(t.value for t in AttributeType)
            errors.append(FieldError(base + ".type", f"must be one of {choices}; got {raw_type!r}"))
            continue
        required = attr.get("required", False)
        if not isinstance(required, bool):
            errors.append(
                FieldError(base + ".required", f"must be a boolean, got {type_name(required)}")
            )
        description = attr.get("description", "")
        if not isinstance(description, str):
            errors.append(FieldError(base + ".description", "must be a string"))
        entry: dict[str, Any] = {"name": name, "type": attr_type.value, "required": required}
        if description:
            entry["description"] = description
        values = attr.get("values")
        if attr_type is AttributeType.ENUM:
            if (
                not isinstance(values, list)
                or not values
                or not all(
                    isinstance(v, str | int | float) and not isinstance(v, bool) for v in values
                )
            ):
                errors.append(
                    FieldError(
                        base + ".values",
                        "an enum attribute needs a non-empty array of strings or numbers",
                    )
                )
            else:
                entry["values"] = values
        elif values is not None:
            errors.append(FieldError(base + ".values", "only enum attributes take values"))
        normalized.append(entry)
    if errors:
        return None, errors
    return {
        "attributes": normalized,
        "additional_attributes": True if additional is None else additional,
    }, []


# --- validating payloads -------------------------------------------------------------------


def compile_schema(schema: dict[str, Any] | None) -> PayloadValidator:
    if not schema:
        return _accept_anything
    if "json_schema" in schema:
        return _compile_json_schema(schema["json_schema"])
    return _compile_attributes(schema["attributes"], schema.get("additional_attributes", True))


def _accept_anything(payload: dict[str, Any], base: str) -> list[FieldError]:
    return []


def _compile_json_schema(schema: dict[str, Any]) -> PayloadValidator:
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )

    def validate(payload: dict[str, Any], base: str) -> list[FieldError]:
        errors = sorted(validator.iter_errors(payload), key=lambda e: list(e.absolute_path))
        return [FieldError(json_path(base, *e.absolute_path), e.message) for e in errors[:50]]

    return validate


def _type_check(attr_type: AttributeType, values: Sequence[Any]) -> Callable[[Any], str | None]:
    """A function returning why a value does not fit the type, or None."""

    def expect(what: str) -> Callable[[Any], str | None]:
        return lambda value: f"must be {what}, got {type_name(value)}"

    if attr_type is AttributeType.STRING:
        return lambda v: None if isinstance(v, str) else expect("a string")(v)
    if attr_type is AttributeType.NUMBER:
        return lambda v: (
            None
            if isinstance(v, int | float) and not isinstance(v, bool)
            else expect("a number")(v)
        )
    if attr_type is AttributeType.INTEGER:

        def check_integer(v: Any) -> str | None:
            if isinstance(v, bool) or not isinstance(v, int | float):
                return expect("an integer")(v)
            if isinstance(v, float) and not v.is_integer():
                return f"must be an integer, got {v}"
            return None

        return check_integer
    if attr_type is AttributeType.BOOLEAN:
        return lambda v: None if isinstance(v, bool) else expect("a boolean")(v)
    if attr_type is AttributeType.ENUM:
        allowed = list(values)
        shown = ", ".join(repr(x) for x in allowed[:20])

        def check_enum(v: Any) -> str | None:
            if isinstance(v, bool) or v not in allowed:
                return f"must be one of {shown}; got {v!r}"
            return None

        return check_enum
    if attr_type is AttributeType.DATETIME:

        def check_datetime(v: Any) -> str | None:
            if not isinstance(v, str):
                return expect("an ISO 8601 date-time string")(v)
            try:
                parse_iso(v)
            except TimeParseError as exc:
                return str(exc)
            return None

        return check_datetime
    if attr_type is AttributeType.EMAIL:

        def check_email(v: Any) -> str | None:
            if not isinstance(v, str):
                return expect("an email address string")(v)
            if not _EMAIL.fullmatch(v):
                return f"must be an email address, got {v!r}"
            return None

        return check_email
    if attr_type is AttributeType.ARRAY:
        return lambda v: None if isinstance(v, list) else expect("an array")(v)
    return lambda v: None if isinstance(v, dict) else expect("an object")(v)


def _compile_attributes(attributes: list[dict[str, Any]], additional: bool) -> PayloadValidator:
    checks = [
        (
            a["name"],
            bool(a.get("required")),
            _type_check(AttributeType(a["type"]), a.get("values") or ()),
        )
        for a in attributes
    ]
    known = {a["name"] for a in attributes}

    def validate(payload: dict[str, Any], base: str) -> list[FieldError]:
        errors: list[FieldError] = []
        for name, required, check in checks:
            value = payload.get(name)
            if value is None:
                if required:
                    errors.append(FieldError(json_path(base, name), "is required"))
                continue
            problem = check(value)
            if problem:
                errors.append(FieldError(json_path(base, name), problem))
        if not additional:
            for name in payload:
                if name not in known:
                    errors.append(
                        FieldError(
                            json_path(base, name),
                            "is not an attribute of this trigger, and it allows no others",
                        )
                    )
        return errors

    return validate
