"""Request parameter schemas, and the checks the cloud makes against them.

Each emulated action declares its parameters as a small type tree (``Struct`` of
``Scalar`` / ``ListOf`` / ``Struct``) transcribed from the API reference. ``coerce``
walks a request against it and raises the cloud's codes: ``MissingParameter``,
``UnknownParameter`` and ``InvalidParameterValue``. Numbers sent as JSON strings
(as the official examples show) are accepted; so are GET requests, whose flattened
``Name.0`` / ``Obj.Field`` keys ``unflatten`` turns back into lists and objects.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = [
    "INT",
    "STRING",
    "UINT",
    "ApiError",
    "ListOf",
    "Scalar",
    "Struct",
    "coerce",
    "struct",
    "unflatten",
]


class ApiError(Exception):
    """A Tencent error answer: ``Response.Error.Code`` and ``Message``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


@dataclass(frozen=True)
class Scalar:
    kind: Literal["string", "int", "uint"]


@dataclass(frozen=True)
class ListOf:
    item: ParamType


@dataclass(frozen=True)
class Struct:
    fields: Mapping[str, ParamType]
    required: frozenset[str] = field(default_factory=frozenset)


ParamType = Scalar | ListOf | Struct

STRING = Scalar("string")
INT = Scalar("int")
UINT = Scalar("uint")


def struct(required: Iterable[str] = (), **fields: ParamType) -> Struct:
    """Shorthand: ``struct(["InstanceId"], InstanceId=STRING, Limit=INT)``."""
    required = frozenset(required)
    unknown = required - fields.keys()
    if unknown:
        raise ValueError(f"required but not declared: {sorted(unknown)}")
    return Struct(fields, required)


def coerce(value: Any, kind: ParamType, path: str = "") -> Any:
    """``value`` checked against ``kind`` (numbers parsed from strings)."""
    if isinstance(kind, Struct):
        return _coerce_struct(value, kind, path)
    if isinstance(kind, ListOf):
        if not isinstance(value, list):
            raise ApiError("InvalidParameterValue", f"`{path}` must be an array")
        return [coerce(item, kind.item, f"{path}.{index}") for index, item in enumerate(value)]
    if kind.kind == "string":
        if not isinstance(value, str):
            raise ApiError("InvalidParameterValue", f"`{path}` must be a string")
        return value
    number = _integer(value)
    if number is None or (kind.kind == "uint" and number < 0):
        sign = "a non-negative" if kind.kind == "uint" else "an"
        raise ApiError("InvalidParameterValue", f"`{path}` must be {sign} integer")
    return number


def _coerce_struct(value: Any, kind: Struct, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ApiError("InvalidParameterValue", f"`{path or 'the request'}` must be an object")
    prefix = f"{path}." if path else ""
    for name in value:
        if name not in kind.fields:
            raise ApiError("UnknownParameter", f"The parameter `{prefix}{name}` is not recognized")
    for name in sorted(kind.required):
        if value.get(name) is None:
            raise ApiError(
                "MissingParameter", f"The request is missing a required parameter `{prefix}{name}`"
            )
    return {
        name: coerce(item, kind.fields[name], f"{prefix}{name}")
        for name, item in value.items()
        if item is not None
    }


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            return None
    return None


def unflatten(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """GET parameters (``DBNames.0=a&Obj.Field=b``) back into nested values."""
    root: dict[str, Any] = {}
    for key, item in pairs:
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ApiError("InvalidParameter", f"`{key}` conflicts with another parameter")
        node[parts[-1]] = item
    result: dict[str, Any] = _listify(root)
    return result


def _listify(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _listify(value) for key, value in node.items()}
    if items and all(key.isdigit() for key in items):
        return [items[key] for key in sorted(items, key=int)]
    return items
