"""What Tencent's Python SDK models declare, and how an emulator's answer compares.

The SDK has no schema file; each model documents its fields in ``__init__``'s
docstring (``:param _Name: text`` then ``:type Name: int | str | bool | float |
list of X | :class:`...X```) and holds one ``_Name`` attribute per field. The text
says ``注意：此字段可能返回 null`` where the cloud may send null. ``compare`` walks an
answer against a model recursively and lists every difference; ``Coverage`` keeps
which models were seen with content and which field paths were answered, so a test
can also demand that no nested model stayed empty throughout a scenario.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

__all__ = ["Coverage", "FieldSpec", "compare", "declared", "declared_paths"]

_CLASS = re.compile(r":class:`[\w.]+\.(\w+)`")
_SCALARS = {"int": (int,), "str": (str,), "bool": (bool,), "float": (int, float)}
NULL_NOTE = "可能返回 null"


@dataclass(frozen=True)
class FieldSpec:
    type_name: str
    """``int``, ``str``, ``bool``, ``float`` or the name of a nested model."""
    many: bool
    nullable: bool


def declared(model: type) -> dict[str, FieldSpec]:
    """The fields ``model`` declares, checked against the attributes it really holds."""
    doc = model.__init__.__doc__ or ""
    fields: dict[str, FieldSpec] = {}
    for block in doc.split(":param _")[1:]:
        name, _, rest = block.partition(":")
        found = re.search(rf":type {name}: (.+)", rest)
        assert found, f"{model.__name__}.{name} has no :type"
        text = _CLASS.sub(r"\1", found.group(1).strip())
        many = text.startswith("list of ")
        fields[name] = FieldSpec(text.removeprefix("list of "), many, NULL_NOTE in rest)
    attributes = {name.removeprefix("_") for name in vars(model())}
    assert attributes == set(fields), f"{model.__name__}: docstring and attributes disagree"
    return fields


def declared_paths(model: type, module: ModuleType, prefix: str = "") -> set[str]:
    """Every field path the model declares (``DBInstances[].ROFlag``), nested models expanded."""
    paths: set[str] = set()
    for name, spec in declared(model).items():
        path = f"{prefix}{name}{'[]' if spec.many else ''}"
        paths.add(path)
        if spec.type_name not in _SCALARS:
            paths |= declared_paths(getattr(module, spec.type_name), module, f"{path}.")
    return paths


@dataclass
class Coverage:
    """What a scenario's answers showed: models seen with content, field paths answered.

    ``strict``: also report fields the model does not declare. Only right for an SDK
    at least as new as the emulator's answers: an older one declares fewer fields,
    and ignores the newer ones the cloud sends."""

    strict: bool = True
    models: set[str] = field(default_factory=set)
    paths: dict[str, set[str]] = field(default_factory=dict)


def compare(
    value: Any, model: type, module: ModuleType, coverage: Coverage, action: str, prefix: str = ""
) -> list[str]:
    """Every way ``value`` (a JSON object) differs from ``model``; empty when it matches."""
    if not isinstance(value, Mapping):
        return [f"{prefix or action}: expected an object for {model.__name__}, got {value!r}"]
    coverage.models.add(model.__name__)
    answered = coverage.paths.setdefault(action, set())
    fields = declared(model)
    problems = [
        f"{prefix}{name}: not declared by {model.__name__}" for name in value if name not in fields and coverage.strict
    ]
    for name, spec in fields.items():
        path = f"{prefix}{name}{'[]' if spec.many else ''}"
        if name not in value:
            problems.append(f"{path}: missing ({model.__name__} declares it)")
            continue
        answered.add(path)
        item = value[name]
        if item is None:
            if not spec.nullable:
                problems.append(f"{path}: null, which the SDK does not say it may be")
            continue
        if spec.many:
            if not isinstance(item, list):
                problems.append(f"{path}: expected a list, got {item!r}")
                continue
            for element in item:
                problems += _compare_one(element, spec, module, coverage, action, f"{path}.")
        else:
            problems += _compare_one(item, spec, module, coverage, action, f"{path}.")
    return problems


def _compare_one(
    item: Any, spec: FieldSpec, module: ModuleType, coverage: Coverage, action: str, prefix: str
) -> list[str]:
    scalar = _SCALARS.get(spec.type_name)
    if scalar is None:
        return compare(item, getattr(module, spec.type_name), module, coverage, action, prefix)
    if isinstance(item, bool) != (spec.type_name == "bool") or not isinstance(item, scalar):
        return [f"{prefix.rstrip('.')}: expected {spec.type_name}, got {item!r}"]
    return []
