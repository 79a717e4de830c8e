"""Read a plan file into plain Python data, and find where any key path is written.

Safe YAML only, and built here from the parser's *events* (libyaml's C parser when
present) rather than by PyYAML's composer and constructor. Doing it ourselves lets us
report duplicate keys (PyYAML silently keeps the last one), refuse tags that are not
plain YAML (``!!binary``, ``!!set``, application tags), bound what aliases may expand
to (a "billion laughs" file would otherwise hang validation) and nesting depth, and do
it in one pass without keeping a node tree: composing a 100,000-instance plan into
nodes (each with two marks) cost most of `validate`'s time and memory.

Where things are written is only needed when something is wrong, so the ``Locator``
keeps the text and finds the positions of the problems' key paths with one more pass
over the events, all paths at once, when asked.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterable, Iterator
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

_TAG = "tag:yaml.org,2002:"
_STR, _MERGE = _TAG + "str", _TAG + "merge"
#: Tags a plan may carry: what the YAML core schema means by plain values.
#: Timestamps are only resolved implicitly (an unquoted 2024-01-31) and refused
#: by the models where a string is expected.
_PLAIN_TAGS = frozenset(_TAG + name for name in ("str", "int", "float", "bool", "null", "map", "seq"))
_SCALAR_TAGS = frozenset(_TAG + name for name in ("str", "int", "float", "bool", "null"))
_TIMESTAMP, _VALUE = _TAG + "timestamp", _TAG + "value"
_IMPLICIT = _Loader.yaml_implicit_resolvers
_constructor = yaml.SafeLoader("")  # only its scalar constructors are used


def _resolve(value: str) -> str:
    """The tag of a plain (unquoted, untagged) scalar, as PyYAML's resolver decides it."""
    for tag, pattern in _IMPLICIT.get(value[:1], ()):
        if pattern.match(value):
            return str(tag)
    return _STR


def _key_text(value: Any) -> str:
    """A mapping key as the plan's key paths spell it."""
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _short_tag(tag: str) -> str:
    return "!!" + tag.removeprefix(_TAG) if tag.startswith(_TAG) else tag


class _Refused(Exception):
    """Stops the build: the file cannot be read further (size, depth, YAML syntax)."""

    def __init__(self, mark: Any, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


class _Frame:
    """An open mapping or sequence while its events stream in."""

    __slots__ = ("anchor", "index", "is_map", "key", "key_mark", "merged", "seen", "start_nodes", "value")

    def __init__(self, is_map: bool, anchor: str | None, nodes: int) -> None:
        self.is_map = is_map
        self.anchor = anchor
        self.start_nodes = nodes
        self.value: Any = {} if is_map else []
        self.index = 0  # sequences: the next item's index
        self.key: Any = None  # mappings: the pending key (str), _BAD_KEY, _MERGE_KEY, or None (expecting a key)
        self.key_mark: Any = None
        self.seen: dict[str, int] = {}  # key -> line of its first definition
        self.merged: dict[str, Any] | None = None


_BAD_KEY = object()
_MERGE_KEY = object()


class _Builder:
    """Turns one document's events into dicts, lists and scalars, collecting problems."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[PlanProblem] = []
        self.nodes = 0
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.stack: list[_Frame] = []

    def problem(self, mark: Any, message: str, extra: str | None = None) -> None:
        path = ".".join(self._path() + ([extra] if extra is not None else []))
        self.problems.append(PlanProblem(self.file, mark.line + 1, mark.column + 1, path, message))

    def _path(self) -> list[str]:
        parts = []
        for frame in self.stack:
            if frame.is_map:
                if isinstance(frame.key, str):
                    parts.append(frame.key)
            else:
                parts.append(str(frame.index))
        return parts

    def _count(self, nodes: int, mark: Any) -> None:
        """Count values (an alias counts what it repeats); checked at every collection and alias,
        so plain values between two checks are bounded by the file's size."""
        self.nodes += nodes
        if self.nodes > MAX_NODES:
            raise _Refused(mark, f"the YAML expands to more than {MAX_NODES:,} values (aliases that multiply?)")

    def build(self, events: Iterator[Any]) -> tuple[Any, bool]:
        """(data, whether the stream held a document)."""
        root: Any = None
        documents = 0
        scalar, alias = yaml.ScalarEvent, yaml.AliasEvent
        start_map, start_seq = yaml.MappingStartEvent, yaml.SequenceStartEvent
        stack = self.stack
        for event in events:
            kind = type(event)
            if kind is scalar:
                value = event.value
                if event.tag is None and event.anchor is None and (
                        not event.implicit[0] or value[:1] not in _IMPLICIT or _resolve(value) == _STR):
                    self.nodes += 1  # the common case: text
                else:
                    value = self._scalar(event)
                    if value is _BAD_KEY:
                        continue
            elif kind is start_map or kind is start_seq:
                self._tag_allowed(event, _TAG + ("map" if kind is start_map else "seq"))
                if len(stack) > MAX_DEPTH:
                    raise _Refused(event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
                self._count(1, event.start_mark)
                stack.append(_Frame(kind is start_map, event.anchor, self.nodes))
                continue
            elif kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                frame = stack.pop()
                value = frame.value
                if frame.merged:
                    value = {**frame.merged, **value}
                if frame.anchor is not None:
                    self.anchors[frame.anchor] = (value, self.nodes - frame.start_nodes + 1)
            elif kind is alias:
                if event.anchor not in self.anchors:
                    self.problem(event.start_mark, f"the alias *{event.anchor} names no anchor defined before it")
                    value = None
                else:
                    value, size = self.anchors[event.anchor]
                    self._count(size, event.start_mark)
            elif kind is yaml.DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise _Refused(event.start_mark, "a plan file holds one YAML document; another starts here")
                continue
            else:  # stream start/end, document end
                continue
            if not stack:
                root = value
                continue
            # ``_add``'s common cases inline (an item, a value, a text key seen for the first time)
            frame = stack[-1]
            if not frame.is_map:
                frame.value.append(value)
                frame.index += 1
                continue
            key = frame.key
            if key is None:
                if type(value) is str and value not in frame.seen:
                    frame.key_mark = mark = event.start_mark
                    frame.seen[value] = mark.line + 1
                    frame.key = value
                    continue
            elif key is not _BAD_KEY and key is not _MERGE_KEY:
                frame.value[key] = value
                frame.key = None
                continue
            self._add(value, event)
        return root, documents > 0

    def _tag_allowed(self, event: Any, implied: str) -> None:
        tag = event.tag
        if tag is None or tag == "!" or tag == implied:
            return
        if tag in _PLAIN_TAGS:
            self.problem(event.start_mark, f"the tag {_short_tag(tag)} does not fit this value")
        else:
            self.problem(event.start_mark, f"the tag {_short_tag(tag)} is not allowed in a plan; write a plain value")

    def _scalar(self, event: Any) -> Any:
        self.nodes += 1
        value, tag = event.value, event.tag
        if tag is None:
            tag = _resolve(value) if event.implicit[0] else _STR
            if tag == _MERGE and not self._expecting_key():
                tag = _STR  # '<<' merges only as a key
        elif tag == "!":
            tag = _STR
        result: Any = value
        if tag == _MERGE:
            result = _MERGE_KEY
        elif tag in _SCALAR_TAGS or (tag == _TIMESTAMP and event.tag is None):
            if tag != _STR:
                result = self._construct(event, tag)
        elif tag != _VALUE:  # '=' alone resolves to the 'value' tag: it is just text
            self._tag_allowed(event, _STR)
            result = None
        if event.anchor is not None and result is not _BAD_KEY:
            self.anchors[event.anchor] = (result, 1)
        return result

    def _construct(self, event: Any, tag: str) -> Any:
        node = yaml.ScalarNode(tag, event.value, event.start_mark, event.end_mark, event.style)
        try:
            return _constructor.construct_object(node)
        except (yaml.YAMLError, ValueError) as exc:  # a date like 2021-02-30, a number of thousands of digits
            reason = exc.problem if isinstance(exc, yaml.MarkedYAMLError) else _value_error(exc)
            if self._expecting_key():
                self.problem(event.start_mark, f"cannot read this key: {reason}")
                self.stack[-1].key = _BAD_KEY
                return _BAD_KEY
            self.problem(event.start_mark, f"cannot read this value: {reason}")
            return None

    def _expecting_key(self) -> bool:
        return bool(self.stack) and self.stack[-1].is_map and self.stack[-1].key is None

    def _add(self, value: Any, event: Any) -> None:
        frame = self.stack[-1]
        if not frame.is_map:
            frame.value.append(value)
            frame.index += 1
            return
        if frame.key is None:  # this node is a key
            frame.key_mark = event.start_mark
            if value is _MERGE_KEY:
                frame.key = _MERGE_KEY
            elif isinstance(value, dict | list):
                self.problem(event.start_mark, "a key must be a plain value, not a list or mapping")
                frame.key = _BAD_KEY
            else:
                key = value if type(value) is str else _key_text(value)
                if key in frame.seen:
                    self.problem(event.start_mark, f"duplicate key (first defined on line {frame.seen[key]})", key)
                    frame.key = _BAD_KEY
                else:
                    frame.seen[key] = event.start_mark.line + 1
                    frame.key = key
            return
        key, frame.key = frame.key, None
        if key is _MERGE_KEY:
            self._merge(frame, value)
        elif key is not _BAD_KEY:
            frame.value[key] = value

    def _merge(self, frame: _Frame, value: Any) -> None:
        sources = value if isinstance(value, list) else [value]
        merged = frame.merged if frame.merged is not None else {}
        for source in reversed(sources):
            if not isinstance(source, dict):
                self.problem(frame.key_mark, "'<<' merges only mappings")
                continue
            merged.update(source)
        frame.merged = merged


def _value_error(exc: BaseException) -> str:
    if "integer string conversion" in str(exc):
        return "the number has too many digits"
    return str(exc)


_FLOW_TOKENS = re.compile(r"\"(?:[^\"\\]|\\.)*\"|'(?:[^']|'')*'|(?:^|(?<=\s))#[^\n]*|[\[\]{}]", re.MULTILINE)


def _flow_too_deep(text: str, end: int) -> int | None:
    """Index of the first bracket nested deeper than ``MAX_DEPTH`` before ``end``, or None.

    Used only when the C parser refused the file: some libyaml builds refuse deep
    flow nesting themselves, and their scanner reads ahead to its own (deeper) limit
    before we see the event at ours. Counting brackets outside quotes and comments
    finds our limit's position without a second, slow, pure-Python parse.
    """
    depth = 0
    for match in _FLOW_TOKENS.finditer(text, 0, end):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                return match.start()
        elif token in "]}":
            depth = max(0, depth - 1)
    return None


def _mark_at(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index)
    return line, index - (text.rfind("\n", 0, index) + 1)


class Locator:
    """Finds where dotted key paths (``instances.3.settings.bucket``) are written.

    A path that does not exist (a missing key) is located at its deepest existing
    ancestor: the instance or section the key is missing from.
    """

    def __init__(self, text: str | None) -> None:
        self.text = text

    def position(self, path: str) -> tuple[int, int]:
        return self.positions([path])[path]

    def positions(self, paths: Iterable[str]) -> dict[str, tuple[int, int]]:
        """(line, column), 1-based, of every path, found in one pass over the file."""
        wanted = set(paths)
        found: dict[str, tuple[int, int]] = {}
        if self.text is not None and wanted:
            found = _scan(self.text, wanted)
        result = {}
        for path in wanted:
            best = found.get("", (0, 0))
            parts = path.split(".") if path else []
            for end in range(len(parts), 0, -1):
                prefix = ".".join(parts[:end])
                if prefix in found:
                    best = found[prefix]
                    break
            result[path] = (best[0] + 1, best[1] + 1)
        return result


def _event_key(event: Any) -> str:
    """The key a scalar event spells, as ``_Builder`` turns it into text (``True`` -> ``true``)."""
    if event.tag is None and event.implicit[0] and (tag := _resolve(event.value)) not in (_STR, _MERGE, _VALUE):
        try:
            return _key_text(_constructor.construct_object(yaml.ScalarNode(tag, event.value)))
        except (yaml.YAMLError, ValueError):
            pass
    return str(event.value)


def _at(event: Any) -> tuple[int, int]:
    return event.start_mark.line, event.start_mark.column


def _scan(text: str, wanted: set[str]) -> dict[str, tuple[int, int]]:
    """Marks (0-based) of the wanted paths and of their ancestors, from the parser's events.

    Stops as soon as every wanted path is settled: found, or its deepest existing
    ancestor has ended without it.
    """
    under: dict[str, list[str]] = {}  # prefix -> the wanted paths it is a prefix of (itself included)
    for wanted_path in wanted:
        parts = wanted_path.split(".") if wanted_path else []
        for end in range(len(parts) + 1):
            under.setdefault(".".join(parts[:end]), []).append(wanted_path)
    found: dict[str, tuple[int, int]] = {}
    pending = set(wanted)

    def settle(path: str) -> bool:
        for done in under[path]:
            pending.discard(done)
        return not pending

    # One frame per open collection: [its path (None: not on a wanted path), is a mapping,
    # next item index, expecting a key, the path of the value to come]
    stack: list[list[Any]] = []
    node_events = (yaml.ScalarEvent, yaml.AliasEvent, yaml.MappingStartEvent, yaml.SequenceStartEvent)
    starts = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
    try:
        events: Iterator[Any] = yaml.parse(text, Loader=_Loader)
        for event in events:
            if isinstance(event, node_events):
                path: str | None = None
                if not stack:
                    path = "" if "" not in found else None
                    if path == "":
                        found[""] = _at(event)
                else:
                    frame = stack[-1]
                    parent = frame[0]
                    if not frame[1]:  # a sequence item
                        if parent is not None:
                            child = f"{parent}.{frame[2]}" if parent else str(frame[2])
                            if child in under:
                                path = child
                                found[child] = _at(event)
                        frame[2] += 1
                    elif frame[3]:  # a key: remember where the value's path starts
                        frame[3] = False
                        frame[4] = None
                        if parent is not None and isinstance(event, yaml.ScalarEvent):
                            key = _event_key(event)
                            child = f"{parent}.{key}" if parent else key
                            if child in under and child not in found:  # the first of duplicate keys counts
                                found[child] = _at(event)
                                frame[4] = child
                        if isinstance(event, starts):
                            stack.append([None, isinstance(event, yaml.MappingStartEvent), 0, True, None])
                        continue
                    else:  # a mapping value
                        path, frame[3] = frame[4], True
                if isinstance(event, starts):
                    stack.append([path, isinstance(event, yaml.MappingStartEvent), 0, True, None])
                elif path is not None and settle(path):
                    break
            elif isinstance(event, yaml.CollectionEndEvent):
                closed = stack.pop()[0]
                if closed is not None and settle(closed):
                    break
    except yaml.YAMLError:
        pass  # what was found before the syntax error still locates
    return found


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
    builder = _Builder(path)
    loader = _Loader(text)
    try:
        # The parser's events without ``yaml.parse``'s generator around them (a tenth of the read)
        data, has_document = builder.build(iter(loader.get_event, None))
    except _Refused as exc:
        return raw, None, Locator(text), [PlanProblem(path, exc.mark.line + 1, exc.mark.column + 1, "", exc.message)]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        deep = _flow_too_deep(text, mark.index + 1 if mark else len(text))
        if deep is not None:
            line, column = _mark_at(text, deep)
            return raw, None, Locator(None), [PlanProblem(path, line + 1, column + 1, "",
                                                          f"nested more than {MAX_DEPTH} levels deep")]
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = f"not valid YAML: {exc.problem or exc.context}"
        return raw, None, Locator(None), [PlanProblem(path, line, column, "", message)]
    except yaml.YAMLError as exc:
        return raw, None, Locator(None), [PlanProblem(path, 1, 1, "", f"not valid YAML: {exc}")]
    finally:
        loader.dispose()
    if not has_document:
        return raw, None, Locator(None), [PlanProblem(path, 1, 1, "", "the plan file has no content")]
    return raw, data, Locator(text), builder.problems
