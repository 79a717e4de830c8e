"""Read a plan file into plain Python data while keeping where every key was.

Safe YAML only: the file is *composed* into nodes (libyaml's C parser when present,
so 10,000-instance plans load quickly) and the nodes are turned into dicts, lists and
scalars here rather than by PyYAML's constructor. Doing it ourselves lets us report
duplicate keys (PyYAML silently keeps the last one), bound what aliases may expand to
(a "billion laughs" file would otherwise hang validation), and keep the node tree so
any key path can be turned into ``line:column`` when a problem is found later.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import yaml

from batchmig.errors import PlanProblem

try:
    _Loader: type[yaml.SafeLoader] = yaml.CSafeLoader  # type: ignore[attr-defined,assignment]
except AttributeError:  # pragma: no cover - libyaml missing
    _Loader = yaml.SafeLoader

MAX_PLAN_BYTES = 64 * 1024 * 1024
MAX_NODES = 2_000_000
MAX_DEPTH = 100
_MERGE_TAG = "tag:yaml.org,2002:merge"
_scalar_constructor = yaml.SafeLoader("")  # only its scalar constructors are used


class Locator:
    """Maps dotted key paths (``instances.3.settings.bucket``) to YAML positions."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def position(self, path: str) -> tuple[int, int]:
        node = self.root
        if node is None:
            return (1, 1)
        best = node.start_mark
        for part in path.split(".") if path else []:
            child = _child(node, part)
            if child is None:
                break
            key_node, node = child
            best = key_node.start_mark if key_node is not None else node.start_mark
        return (best.line + 1, best.column + 1)


def _child(node: yaml.Node, part: str) -> tuple[yaml.Node | None, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if isinstance(key_node, yaml.ScalarNode) and str(key_node.value) == part:
                return key_node, value_node
        return None
    if isinstance(node, yaml.SequenceNode) and part.isdigit() and int(part) < len(node.value):
        item = node.value[int(part)]
        return item, item
    return None


class _Builder:
    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[PlanProblem] = []
        self.nodes = 0

    def problem(self, node: yaml.Node, path: str, message: str) -> None:
        self.problems.append(
            PlanProblem(self.file, node.start_mark.line + 1, node.start_mark.column + 1, path, message)
        )

    def build(self, node: yaml.Node, path: str, depth: int = 0) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            raise _TooBig(node)
        if depth > MAX_DEPTH:
            raise _TooDeep(node)
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path, depth)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, _join(path, str(i)), depth + 1) for i, item in enumerate(node.value)]
        try:
            return _scalar_constructor.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            self.problem(node, path, f"cannot read this value: {getattr(exc, 'problem', exc)}")
            return None
        except ValueError as exc:  # a date like 2021-02-30, an integer of thousands of digits
            self.problem(node, path, f"cannot read this value: {_value_error(exc)}")
            return None

    def _mapping(self, node: yaml.MappingNode, path: str, depth: int) -> dict[str, Any]:
        result: dict[str, Any] = {}
        seen: dict[str, yaml.Node] = {}
        merged: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.update(self._merge_source(value_node, path, depth))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_node, path, "a key must be a plain value, not a list or mapping")
                continue
            try:
                key = _scalar_constructor.construct_object(key_node)
            except (yaml.YAMLError, ValueError) as exc:  # e.g. a key that reads as the date 2021-02-30
                reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else _value_error(exc)
                self.problem(key_node, path, f"cannot read this key: {reason}")
                continue
            key = "null" if key is None else str(key).lower() if isinstance(key, bool) else str(key)
            if key in seen:
                first = seen[key].start_mark.line + 1
                self.problem(key_node, _join(path, key), f"duplicate key (first defined on line {first})")
                continue
            seen[key] = key_node
            result[key] = self.build(value_node, _join(path, key), depth + 1)
        return {**merged, **result}

    def _merge_source(self, node: yaml.Node, path: str, depth: int) -> dict[str, Any]:
        sources = node.value if isinstance(node, yaml.SequenceNode) else [node]
        merged: dict[str, Any] = {}
        for source in reversed(sources):
            value = self.build(source, path, depth + 1)
            if not isinstance(value, dict):
                self.problem(source, path, "'<<' merges only mappings")
                continue
            merged.update(value)
        return merged


class _TooBig(Exception):
    def __init__(self, node: yaml.Node) -> None:
        self.node = node


class _TooDeep(_TooBig):
    pass


def _value_error(exc: BaseException) -> str:
    if "integer string conversion" in str(exc):
        return "the number has too many digits"
    return str(exc)


def _too_deep(text: str) -> Any:
    """The mark where the YAML first nests deeper than ``MAX_DEPTH`` (from the parser's events), or None.

    Checked before composing: libyaml's composer recurses in C, and a few ten
    thousand ``[`` crash the interpreter (SIGSEGV) before ``_Builder`` could count
    levels. The event parser keeps its own stack and costs a fraction of composing.

    Some libyaml builds refuse deep nesting themselves, and their scanner reads ahead,
    so their refusal can come before the event at our limit and name another column.
    When the fast parser refuses the text, the pure-Python parser (no nesting limit of
    its own, an explicit stack, no recursion) looks again, so the operator always gets
    batchmig's message at the first level too deep. A syntax error is then left for
    ``yaml.compose`` to report.
    """
    try:
        return _first_too_deep(text, _Loader)
    except yaml.YAMLError:
        if _Loader is yaml.SafeLoader:
            return None
        try:
            return _first_too_deep(text, yaml.SafeLoader)
        except yaml.YAMLError:
            return None


def _first_too_deep(text: str, loader: type[yaml.SafeLoader]) -> Any:
    depth = -1  # levels below the document's root collection, as ``_Builder`` counts them
    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_DEPTH:
                return event.start_mark
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1
    return None


def _join(path: str, part: str) -> str:
    return f"{path}.{part}" if path else part


def read_plan_source(path: str) -> tuple[bytes, Any, Locator, list[PlanProblem]]:
    """Read and parse ``path``: (raw bytes, data or None, locator, problems)."""
    def fail(message: str, line: int = 1, column: int = 1) -> tuple[bytes, Any, Locator, list[PlanProblem]]:
        return b"", None, Locator(None), [PlanProblem(path, line, column, "", message)]

    try:
        info = os.stat(path)
    except FileNotFoundError:
        return fail("no such file")
    except OSError as exc:
        return fail(f"cannot read the file: {exc.strerror}")
    if stat.S_ISDIR(info.st_mode):
        return fail("this is a directory; give the path of a plan file")
    if not stat.S_ISREG(info.st_mode):
        return fail("not a regular file")
    if info.st_size > MAX_PLAN_BYTES:
        return fail(f"the file is larger than {MAX_PLAN_BYTES // (1024 * 1024)} MiB")
    try:
        with open(path, "rb") as handle:
            raw = handle.read(MAX_PLAN_BYTES + 1)
    except OSError as exc:
        return fail(f"cannot read the file: {exc.strerror}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        return raw, None, Locator(None), [PlanProblem(path, line, column, "", "the file is not valid UTF-8")]
    if not text.strip():
        return raw, None, Locator(None), [PlanProblem(path, 1, 1, "", "the plan file is empty")]
    try:
        deep = _too_deep(text)
        if deep is not None:
            problem = PlanProblem(path, deep.line + 1, deep.column + 1, "", f"nested more than {MAX_DEPTH} levels deep")
            return raw, None, Locator(None), [problem]
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"not valid YAML: {exc.problem or exc.context}"
        return raw, None, Locator(None), [PlanProblem(path, line, column, "", message)]
    except yaml.YAMLError as exc:
        return raw, None, Locator(None), [PlanProblem(path, 1, 1, "", f"not valid YAML: {exc}")]
    except RecursionError:
        return raw, None, Locator(None), [PlanProblem(path, 1, 1, "", "the YAML is nested too deeply")]
    if root is None:
        return raw, None, Locator(None), [PlanProblem(path, 1, 1, "", "the plan file has no content")]
    builder = _Builder(path)
    try:
        data = builder.build(root, "")
    except _TooDeep as exc:
        mark = exc.node.start_mark
        problem = PlanProblem(path, mark.line + 1, mark.column + 1, "", f"nested more than {MAX_DEPTH} levels deep")
        return raw, None, Locator(root), [problem]
    except _TooBig as exc:
        mark = exc.node.start_mark
        message = f"the YAML expands to more than {MAX_NODES:,} values (aliases that multiply?)"
        return raw, None, Locator(root), [PlanProblem(path, mark.line + 1, mark.column + 1, "", message)]
    return raw, data, Locator(root), builder.problems
