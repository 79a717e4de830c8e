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
    "complete",
    "is_english",
    "struct",
    "unflatten",
]


class ApiError(Exception):
    """A Tencent error answer: ``Response.Error.Code``, and its ``Message`` in both
    languages the API speaks (``X-TC-Language``: ``en-US``, or the default ``zh-CN``)."""

    def __init__(self, code: str, message: str, message_zh: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.message_zh = message_zh

    def message_in(self, language: str) -> str:
        return self.message if is_english(language) else self.message_zh


def is_english(language: str) -> bool:
    """Whether an ``X-TC-Language`` value asks for English; anything else gets zh-CN, the default."""
    return language.lower() == "en-us"


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
            raise ApiError("InvalidParameterValue", f"`{path}` must be an array", f"参数 `{path}` 必须是数组")
        return [coerce(item, kind.item, f"{path}.{index}") for index, item in enumerate(value)]
    if kind.kind == "string":
        if not isinstance(value, str):
            raise ApiError("InvalidParameterValue", f"`{path}` must be a string", f"参数 `{path}` 必须是字符串")
        return value
    number = _integer(value)
    if number is None or (kind.kind == "uint" and number < 0):
        sign, sign_zh = ("a non-negative", "非负") if kind.kind == "uint" else ("an", "")
        raise ApiError(
            "InvalidParameterValue",
            f"`{path}` must be {sign} integer",
            f"参数 `{path}` 必须是{sign_zh}整数",
        )
    return number


def _coerce_struct(value: Any, kind: Struct, path: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ApiError(
            "InvalidParameterValue", f"`{path or 'the request'}` must be an object", f"`{path or '请求'}` 必须是对象"
        )
    prefix = f"{path}." if path else ""
    for name in value:
        if name not in kind.fields:
            raise ApiError(
                "UnknownParameter",
                f"The parameter `{prefix}{name}` is not recognized",
                f"参数 `{prefix}{name}` 无法识别",
            )
    for name in sorted(kind.required):
        if value.get(name) is None:
            raise ApiError(
                "MissingParameter",
                f"The request is missing a required parameter `{prefix}{name}`",
                f"缺少必填参数 `{prefix}{name}`",
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


def complete(value: Mapping[str, Any] | None, kind: Struct) -> dict[str, Any]:
    """``value`` with every field of ``kind``: what a request left out gets its type's
    empty value (``""``, ``0``, ``[]``, an object of empty values), as the API's
    answers show fields that were never set."""
    given = value or {}
    return {name: _completed(given.get(name), field_kind) for name, field_kind in kind.fields.items()}


def _completed(value: Any, kind: ParamType) -> Any:
    if isinstance(kind, Struct):
        return complete(value, kind)
    if isinstance(kind, ListOf):
        return [_completed(item, kind.item) for item in value or []]
    if value is not None:
        return value
    return "" if kind.kind == "string" else 0


def unflatten(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """GET parameters (``DBNames.0=a&Obj.Field=b``) back into nested values."""
    root: dict[str, Any] = {}
    for key, item in pairs:
        node = root
        parts = key.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ApiError(
                    "InvalidParameter", f"`{key}` conflicts with another parameter", f"参数 `{key}` 与其他参数冲突"
                )
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
