"""Is this a JSON schema? A structural check of the keywords the providers read, made before a request is queued.

Our own check, not the `jsonschema` package's meta-schema validation: `schemas` is imported by every caller,
and `jsonschema` would bring four packages (referencing, rpds-py, attrs, jsonschema-specifications) into the
base install for what is a walk over a few keywords. The tests hold this check to `jsonschema`'s
`Draft202012Validator.check_schema` on the same schemas: what it refuses here, the meta-schema refuses too.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["schema_problem"]

_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_SCHEMA = (
    *("additionalProperties", "items", "not", "contains", "propertyNames", "if", "then", "else"),
    *("unevaluatedProperties", "unevaluatedItems", "additionalItems"),
)
_SCHEMA_MAPS = ("properties", "patternProperties", "$defs", "definitions", "dependentSchemas")
_SCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_COUNTS = ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minContains")
_NUMBERS = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_TEXTS = ("title", "description", "format", "$ref", "$id", "$schema", "$comment", "$anchor")
_DEPTH = 32


def schema_problem(schema: object, where: str = "schema") -> str | None:
    """What makes `schema` no JSON schema, as `where.path: what`; None when it is one."""
    return _problem(schema, where, 0)


def _problem(schema: object, where: str, depth: int) -> str | None:
    if isinstance(schema, bool):
        return None
    if not isinstance(schema, dict):
        return f"{where}: a schema is an object (or true/false), not {type(schema).__name__}"
    if depth > _DEPTH:
        return f"{where}: nested more than {_DEPTH} deep"
    for check in (_type_problem, _keyword_problem, _nested_problem):
        problem = check(schema, where, depth)
        if problem:
            return problem
    return None


def _type_problem(schema: dict[str, Any], where: str, _depth: int) -> str | None:
    if "type" not in schema:
        return None
    kind = schema["type"]
    kinds = kind if isinstance(kind, list) else [kind]
    if not kinds or any(not isinstance(k, str) or k not in _TYPES for k in kinds) or len(set(kinds)) < len(kinds):
        return f"{where}.type: {kind!r} is not a JSON type ({', '.join(sorted(_TYPES))}) or a list of distinct ones"
    return None


def _keyword_problem(schema: dict[str, Any], where: str, _depth: int) -> str | None:
    required = schema.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        return f"{where}.required: a list of property names"
    if len(set(required)) < len(required):
        return f"{where}.required: names a property twice"
    if "enum" in schema and not isinstance(schema["enum"], list):
        return f"{where}.enum: a list of values"
    for key in _COUNTS:
        value = schema.get(key, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            return f"{where}.{key}: a whole number, 0 or more"
    for key in _NUMBERS:
        value = schema.get(key, 1)
        if not isinstance(value, int | float) or isinstance(value, bool):
            return f"{where}.{key}: a number"
    if isinstance(schema.get("multipleOf"), int | float) and schema["multipleOf"] <= 0:
        return f"{where}.multipleOf: more than 0"
    for key in _TEXTS:
        if not isinstance(schema.get(key, ""), str):
            return f"{where}.{key}: a string"
    return _pattern_problem(schema.get("pattern"), f"{where}.pattern")


def _pattern_problem(pattern: object, where: str) -> str | None:
    if pattern is None:
        return None
    if not isinstance(pattern, str):
        return f"{where}: a regular expression, as a string"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"{where}: not a regular expression ({exc})"
    return None


def _nested_problem(schema: dict[str, Any], where: str, depth: int) -> str | None:
    for key in _SCHEMA:
        if key in schema and (problem := _problem(schema[key], f"{where}.{key}", depth + 1)):
            return problem
    for key in _SCHEMA_MAPS:
        if key in schema and (problem := _map_problem(key, schema[key], f"{where}.{key}", depth + 1)):
            return problem
    for key in _SCHEMA_LISTS:
        if key in schema and (problem := _list_problem(schema[key], f"{where}.{key}", depth + 1)):
            return problem
    return None


def _map_problem(key: str, members: object, where: str, depth: int) -> str | None:
    if not isinstance(members, dict):
        return f"{where}: an object of schemas"
    for name, member in members.items():
        if key == "patternProperties" and (problem := _pattern_problem(name, where)):
            return problem
        if problem := _problem(member, f"{where}.{name}", depth):
            return problem
    return None


def _list_problem(members: object, where: str, depth: int) -> str | None:
    if not isinstance(members, list) or not members:
        return f"{where}: a non-empty list of schemas"
    for index, member in enumerate(members):
        if problem := _problem(member, f"{where}[{index}]", depth):
            return problem
    return None
