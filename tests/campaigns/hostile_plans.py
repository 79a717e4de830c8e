"""Hypothesis strategies for plans that must be refused (campaign 3).

Every strategy here builds an input that is invalid *by construction* — a valid
plan with at least one guaranteed mistake, or bytes no plan can be — so the
property under test can be strict: exit code 2, a located message, nothing else.
The starting point is a real mixed fleet (one instance of every kind in
``fleet.KINDS``), so mistakes land inside real provider settings too.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import yaml
from hypothesis import strategies as st

from .fleet import KINDS, fleet_plan

BASE: dict[str, Any] = yaml.safe_load(fleet_plan(len(KINDS), name="hostile"))
PROVIDER_NAMES = list(BASE["providers"])

# Text with the awkward parts of Unicode: control characters, surrogate-free astral
# characters, right-to-left marks, NUL. Keys made of it are never valid keys.
nasty_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], min_codepoint=0, max_codepoint=0x10FFFF),
    min_size=1, max_size=40,
)
huge_numbers = st.sampled_from([10**30, -(10**30), 2**63, -(2**63) - 1, 10**18, -1, 0, float("inf"),
                                float("-inf"), float("nan"), 1e308, -1e-308])


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


not_a_string = st.one_of(st.integers(), st.floats(allow_nan=False), st.lists(st.integers(), max_size=3),
                         st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=3),
                         st.none(), st.booleans(), huge_numbers)
not_a_positive_int = st.one_of(huge_numbers.filter(lambda v: not (isinstance(v, int) and 0 < v <= 1000)),
                               st.integers(max_value=0), st.integers(min_value=10**6),
                               nasty_text, st.lists(st.integers(), min_size=1, max_size=3),
                               st.builds(nested, st.integers(2, 60), st.just(1)))
not_a_duration = st.one_of(st.sampled_from(["2 hours", "-5s", "0s", "forever", "1y", "99999999999999999999h",
                                            "", "5", "\x07"]),
                           st.lists(st.text(max_size=3), max_size=2), st.integers(max_value=0), huge_numbers)


def _instance_index(kind_prefix: str) -> int:
    return next(i for i, inst in enumerate(BASE["instances"]) if inst["id"].startswith(kind_prefix))


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _delete(doc: dict[str, Any], path: tuple[Any, ...]) -> None:
    target = doc
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]


# (path, strategy of values that are wrong there)
WRONG_VALUES: list[tuple[tuple[Any, ...], st.SearchStrategy[Any]]] = [
    (("version",), st.one_of(not_a_string, nasty_text).filter(lambda v: v is not True and v != 1)),
    (("providers", "tencent-dts", "region"), not_a_string.filter(lambda v: v is not None)),
    (("run", "max_concurrency"), not_a_positive_int),
    (("run", "call_timeout"), not_a_duration),
    (("waves", 0, "max_concurrency"), not_a_positive_int),
    (("defaults", "timeouts", "default"), not_a_duration),
    (("instances",), st.one_of(nasty_text, huge_numbers, st.dictionaries(nasty_text, st.integers(), min_size=1))),
    (("instances", _instance_index("dts-incremental"), "settings", "migrate_type"),
     st.one_of(nasty_text.filter(lambda v: v not in ("structure", "full", "full-incremental")), not_a_string)),
    (("instances", _instance_index("tc-full-"), "settings", "instance_id"),
     st.one_of(nasty_text.filter(lambda v: not v.startswith("mssql-")), not_a_string.filter(lambda v: v is not None))),
    (("instances", _instance_index("drs-obs"), "settings", "files"),
     st.one_of(nasty_text, huge_numbers, st.builds(nested, st.integers(3, 150), nasty_text))),
    (("instances", 0, "id"), st.one_of(st.lists(st.integers(), max_size=2), st.dictionaries(nasty_text, st.none(),
                                                                                            min_size=1))),
    (("instances", 0, "cutover"), nasty_text.filter(lambda v: v not in ("auto", "manual"))),
]
REQUIRED: list[tuple[Any, ...]] = [
    ("version",), ("instances",), ("providers",), ("instances", 0, "id"),
    ("instances", _instance_index("drs-obs"), "settings", "target_instance_id"),
    ("instances", _instance_index("tc-full-"), "settings", "instance_id"),
    ("providers", "huawei-drs", "region"),
]
KNOWN_PLACES: list[tuple[Any, ...]] = [(), ("run",), ("providers", "tencent-sqlserver"), ("instances", 0),
                                       ("instances", _instance_index("drs-chain"), "settings"),
                                       ("defaults", "settings", "tencent-dts", "job", "source")]


@st.composite
def broken_document(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A deep copy of the base plan with one to three guaranteed mistakes; returns (doc, what was done)."""
    doc = copy.deepcopy(BASE)
    done: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        family = draw(st.sampled_from(["wrong", "missing", "unknown"]))
        try:
            if family == "wrong":
                path, values = draw(st.sampled_from(WRONG_VALUES))
                _set(doc, path, draw(values))
                done.append(f"wrong {'.'.join(map(str, path))}")
            elif family == "missing":
                path = draw(st.sampled_from(REQUIRED))
                _delete(doc, path)
                done.append(f"missing {'.'.join(map(str, path))}")
            else:
                place = draw(st.sampled_from(KNOWN_PLACES))
                target: Any = doc
                for part in place:
                    target = target[part]
                key = "x-" + draw(nasty_text)  # never a real key
                target[key] = draw(st.one_of(nasty_text, huge_numbers, st.builds(nested, st.integers(0, 30),
                                                                                 st.none())))
                done.append(f"unknown key under {'.'.join(map(str, place)) or 'top'}")
        except (KeyError, IndexError, TypeError):  # an earlier mistake removed the place: still broken
            done.append(f"{family} skipped")
    return doc, done


def dump(doc: Any, style: str) -> str:
    if style == "json":
        return json.dumps(doc, ensure_ascii=False)
    return yaml.safe_dump(doc, allow_unicode=style == "yaml-unicode", sort_keys=False, width=120)


ALIAS_BOMB = "".join(
    [f"bomb{i}: &bomb{i} [{', '.join([f'*bomb{i - 1}'] * 9)}]\n" for i in range(1, 9)]
)

@st.composite
def hostile_file(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """File content no plan loader may accept, with a description for failure messages."""
    doc, done = draw(broken_document())
    style = draw(st.sampled_from(["yaml", "yaml-unicode", "json"]))
    data = dump(doc, style).encode("utf-8", "surrogatepass")
    raw = draw(st.sampled_from(["none", "none", "non-utf8", "control", "bomb", "deep", "bom"]))
    if raw != "none":
        at = draw(st.integers(0, len(data)))
        if raw == "non-utf8":
            data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])) + data[at:]
        elif raw == "control":
            char = draw(st.sampled_from([0, 1, 7, 8, 0x0B, 0x0C, 0x1B, 0x7F]))
            data = data[:at] + bytes([char]) + data[at:]
        elif raw == "bomb" and style != "json":
            data = b"bomb0: &bomb0 [x, x, x, x, x, x, x, x, x]\n" + ALIAS_BOMB.encode() + data
        elif raw == "deep":
            depth = draw(st.integers(101, 60_000))
            data += b"\nzz-deep: " + b"[" * depth + b"]" * depth + b"\n" if style != "json" else b""
        elif raw == "bom":
            data = b"\xef\xbb\xbf" + data
        done.append(raw)
    return data, done
