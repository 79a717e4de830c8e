"""``report.json``: writing the report into the run directory and reading it back.

One instance per line: readable, diffable, and fast to write for 100,000 instances
(an indented dump goes through the pure-Python encoder; each instance's line is
pydantic's own JSON of the record, written in Rust without a tree of Python data in
between). The document is ``RunReport.to_json_dict``'s, every registered secret
masked: the text is scanned once, in pieces of whole instance lines (the redactor
knows each secret's JSON-escaped forms), which are written as they come. The file is
private to its owner (0600) and replaced atomically.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import replace
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import orjson
from pydantic import TypeAdapter

from batchmig.errors import UsageError
from batchmig.private_files import write_private_chunks, write_private_file
from batchmig.redaction import REDACTOR
from batchmig.report.build import ProcessFigures
from batchmig.report.model import InstanceReport, RunReport

Item = TypeVar("Item")


def render_report(
    report: RunReport, instances: Iterable[InstanceReport] | None = None, extra: Mapping[str, Any] | None = None
) -> str:
    """The JSON text of ``report`` (``RunReport.to_json_dict()``'s document) with
    ``instances`` instead of all of its instances and the keys of ``extra`` added,
    every registered secret masked."""
    return "".join(report_chunks(report, instances, extra))


def report_chunks(
    report: RunReport, instances: Iterable[InstanceReport] | None = None, extra: Mapping[str, Any] | None = None,
    line: Callable[[InstanceReport], str] | None = None,
) -> Iterator[str]:
    """``render_report``'s text in pieces of up to ``CHUNK_LINES`` instances, each masked
    (a secret never spans two instances' lines), so that writing a large report never
    holds its whole text (80 MB at 100,000 instances, several times over while it was
    joined, masked and encoded). ``line``: what writes an instance's line instead of
    ``instance_json`` (the same text, e.g. with its steps from the journal's rows)."""
    head = replace(report, instances=()).to_json_dict()
    del head["instances"]
    head.update(extra or {})
    opening = json.dumps(head, indent=2)[:-2] + ",\n  " if head else "{\n  "
    separator = ",\n    "
    pieces = batches(map(line or instance_json, report.instances if instances is None else instances))
    first = next(pieces, None)
    if first is None:
        yield REDACTOR(opening + '"instances": []\n}\n')
        return
    yield REDACTOR(opening + '"instances": [\n    ' + separator.join(first))
    for piece in pieces:
        yield REDACTOR(separator + separator.join(piece))
    yield "\n  ]\n}\n"


CHUNK_LINES = 500
"""Instances per piece of a report file's text: large enough that masking and writing a
piece costs no more than it did whole, small enough that a piece is a few hundred KB."""


def batches(items: Iterable[Item]) -> Iterator[list[Item]]:
    """``items`` in lists of ``CHUNK_LINES`` (the last one shorter)."""
    iterator = iter(items)
    while batch := list(islice(iterator, CHUNK_LINES)):
        yield batch


def instance_json(instance: InstanceReport) -> str:
    """One instance's compact JSON, as ``to_json_dict`` has it: pydantic's (several times
    faster than a dict per instance at 100,000 instances), non-ASCII text escaped by
    json as before. Not masked yet: ``report_chunks`` masks a piece of lines at once."""
    line = _instance_adapter().dump_json(instance).decode()
    return line if line.isascii() else json.dumps(orjson.loads(line), separators=(",", ":"))


@cache
def _instance_adapter() -> TypeAdapter[InstanceReport]:
    return TypeAdapter(InstanceReport)


def write_report(path: Path, report: RunReport) -> None:
    """Write ``report.json`` of ``report`` to ``path`` atomically (0600); raises OSError."""
    write_private_chunks(path, report_chunks(report))  # masked as it is rendered


def write_private_text(path: Path, text: str) -> None:
    """Write ``text``, every registered secret masked, to ``path`` atomically, readable by its owner
    only (0600); raises OSError."""
    write_private_file(path, REDACTOR(text))


def read_report(path: Path) -> RunReport:
    """A ``report.json`` read back into the model."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the report {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema_version") != 1:
        raise UsageError(f"{path} is not a batchmig run report of schema version 1")
    return RunReport.load(data)


FIGURES_NAME = "figures.json"
"""In the run directory: what only the runner process knows (limiter keys and their traffic,
polls, webhook deliveries, its invocation), rewritten every few seconds while it runs, so
``batchmig report``, ``batchmig serve`` and metrics show it from another process."""


@cache
def _figures_adapter() -> TypeAdapter[ProcessFigures]:
    return TypeAdapter(ProcessFigures)


def write_figures(path: Path, figures: ProcessFigures) -> None:
    """Write the runner's figures (0600, atomic); raises OSError."""
    write_private_text(path, _figures_adapter().dump_json(figures).decode())


def read_figures(path: Path) -> ProcessFigures | None:
    """The figures a runner wrote, or None if there are none (or they cannot be read)."""
    try:
        return _figures_adapter().validate_json(path.read_bytes())
    except (OSError, ValueError):
        return None
