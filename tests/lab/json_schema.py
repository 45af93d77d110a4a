"""Enough of JSON Schema to hold a line against the schema ``describe``
publishes: $ref into $defs, type, anyOf, enum, properties, required,
minimum, maximum and pattern. It says why a value fails, or nothing."""

import re
from typing import Any, List

TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
    "integer": int, "number": (int, float),
}


def errors(schema: dict, value: Any, root: dict = None, path: str = "$") -> List[str]:
    root = root or schema
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[1]
        return errors(root["$defs"][name], value, root, path)
    if "anyOf" in schema:
        if any(not errors(option, value, root, path) for option in schema["anyOf"]):
            return []
        return [f"{path}: {value!r} matches none of {schema['anyOf']}"]
    found = []
    expected = schema.get("type")
    if expected and (not isinstance(value, TYPES[expected]) or
                     (expected in ("integer", "number") and isinstance(value, bool))):
        return [f"{path}: {value!r} is not of type {expected}"]
    if "enum" in schema and value not in schema["enum"]:
        found.append(f"{path}: {value!r} not one of {schema['enum']}")
    if "minimum" in schema and value < schema["minimum"]:
        found.append(f"{path}: {value!r} < minimum {schema['minimum']}")
    if "maximum" in schema and value > schema["maximum"]:
        found.append(f"{path}: {value!r} > maximum {schema['maximum']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        found.append(f"{path}: {value!r} does not match {schema['pattern']}")
    if isinstance(value, dict):
        for name in schema.get("required", []):
            if name not in value:
                found.append(f"{path}: missing {name}")
        for name, item in value.items():
            if name in schema.get("properties", {}):
                found += errors(schema["properties"][name], item, root, f"{path}.{name}")
            elif schema.get("additionalProperties") is False:
                found.append(f"{path}: unexpected {name}")
    return found
