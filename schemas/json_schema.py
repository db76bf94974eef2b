"""Is this a JSON schema? A structural check of the keywords the providers read, made before a request is queued.

Our own check, not the `jsonschema` package's meta-schema validation: `schemas` is imported by every caller,
and `jsonschema` would bring four packages (referencing, rpds-py, attrs, jsonschema-specifications) into the
base install for what is a walk over a few keywords. The tests hold this check to `jsonschema`'s
`Draft202012Validator.check_schema` on the same schemas: what it refuses here, the meta-schema refuses too.

The walk looks at the keywords a schema has (one lookup each), not at every keyword there is: a tool's schema
costs a few microseconds (`python -m bench abstraction`, the tools cases).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

__all__ = ["schema_problem"]

_TYPES = frozenset({"object", "array", "string", "number", "integer", "boolean", "null"})
_DEPTH = 32

_Check = Callable[[str, Any, str, int], "str | None"]
"""(keyword, its value, where the schema is, its depth) -> what is wrong, or None."""


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
    for key, value in schema.items():
        check = _CHECKS.get(key)
        if check is not None and (problem := check(key, value, where, depth)):
            return problem
    return None


def _type(_key: str, kind: Any, where: str, _depth: int) -> str | None:
    if isinstance(kind, str) and kind in _TYPES:  # the usual case, at once
        return None
    kinds = kind if isinstance(kind, list) else [kind]
    if not kinds or any(not isinstance(k, str) or k not in _TYPES for k in kinds) or len(set(kinds)) < len(kinds):
        return f"{where}.type: {kind!r} is not a JSON type ({', '.join(sorted(_TYPES))}) or a list of distinct ones"
    return None


def _required(_key: str, names: Any, where: str, _depth: int) -> str | None:
    if not isinstance(names, list) or [r for r in names if not isinstance(r, str)]:
        return f"{where}.required: a list of property names"
    if len(set(names)) < len(names):
        return f"{where}.required: names a property twice"
    return None


def _enum(_key: str, values: Any, where: str, _depth: int) -> str | None:
    return None if isinstance(values, list) else f"{where}.enum: a list of values"


def _count(key: str, value: Any, where: str, _depth: int) -> str | None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        return f"{where}.{key}: a whole number, 0 or more"
    return None


def _number(key: str, value: Any, where: str, _depth: int) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return f"{where}.{key}: a number"
    if key == "multipleOf" and value <= 0:
        return f"{where}.multipleOf: more than 0"
    return None


def _text(key: str, value: Any, where: str, _depth: int) -> str | None:
    return None if isinstance(value, str) else f"{where}.{key}: a string"


def _pattern(key: str, pattern: Any, where: str, _depth: int) -> str | None:
    return _pattern_problem(pattern, f"{where}.{key}")


def _pattern_problem(pattern: Any, where: str) -> str | None:
    if not isinstance(pattern, str):
        return f"{where}: a regular expression, as a string"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"{where}: not a regular expression ({exc})"
    return None


def _schema(key: str, value: Any, where: str, depth: int) -> str | None:
    return _problem(value, f"{where}.{key}", depth + 1)


def _schema_map(key: str, members: Any, where: str, depth: int) -> str | None:
    if not isinstance(members, dict):
        return f"{where}.{key}: an object of schemas"
    for name, member in members.items():
        if key == "patternProperties" and (problem := _pattern_problem(name, f"{where}.{key}")):
            return problem
        if problem := _problem(member, f"{where}.{key}.{name}", depth + 1):
            return problem
    return None


def _schema_list(key: str, members: Any, where: str, depth: int) -> str | None:
    if not isinstance(members, list) or not members:
        return f"{where}.{key}: a non-empty list of schemas"
    for index, member in enumerate(members):
        if problem := _problem(member, f"{where}.{key}[{index}]", depth + 1):
            return problem
    return None


_CHECKS: dict[str, _Check] = {
    "type": _type,
    "required": _required,
    "enum": _enum,
    "pattern": _pattern,
    **dict.fromkeys(
        ("minLength", "maxLength", "minItems", "maxItems", "minProperties", "maxProperties", "minContains"), _count
    ),
    **dict.fromkeys(("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf"), _number),
    **dict.fromkeys(("title", "description", "format", "$ref", "$id", "$schema", "$comment", "$anchor"), _text),
    **dict.fromkeys(
        ("additionalProperties", "items", "not", "contains", "propertyNames", "if", "then", "else"), _schema
    ),
    **dict.fromkeys(("unevaluatedProperties", "unevaluatedItems", "additionalItems"), _schema),
    **dict.fromkeys(("properties", "patternProperties", "$defs", "definitions", "dependentSchemas"), _schema_map),
    **dict.fromkeys(("anyOf", "oneOf", "allOf", "prefixItems"), _schema_list),
}
