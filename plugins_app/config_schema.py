"""Validating plugin configs against their JSON Schema, with messages per field."""

from __future__ import annotations

import copy
from typing import Any

from jsonschema import Draft202012Validator


def _path(error: Any) -> str:
    parts = [str(part) for part in error.absolute_path]
    if error.validator == "required":
        missing = error.message.split("'")[1] if "'" in error.message else ""
        parts.append(missing)
    elif error.validator == "additionalProperties" and "'" in error.message:
        parts.append(error.message.split("'")[1])
    return ".".join(part for part in parts if part) or "non_field_errors"


def validate_config(schema: dict[str, Any], data: Any) -> dict[str, list[str]]:
    """{} when `data` is valid, else {"field.path": ["message", ...]}."""
    fields: dict[str, list[str]] = {}
    for error in sorted(Draft202012Validator(schema).iter_errors(data), key=lambda e: list(e.absolute_path)):
        fields.setdefault(_path(error), []).append(error.message)
    return fields


def apply_defaults(schema: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """Fill top-level (and nested object) `default`s the schema declares and the data omits."""
    result = copy.deepcopy(data) if isinstance(data, dict) else data
    if not isinstance(result, dict):
        return result
    for key, prop in (schema.get("properties") or {}).items():
        if not isinstance(prop, dict):
            continue
        if key not in result and "default" in prop:
            result[key] = copy.deepcopy(prop["default"])
        elif isinstance(result.get(key), dict) and prop.get("type") == "object":
            result[key] = apply_defaults(prop, result[key])
    return result
