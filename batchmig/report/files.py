"""``report.json``: writing the report into the run directory and reading it back.

One instance per line: readable, diffable, and fast to write for 100,000 instances
(an indented dump goes through the pure-Python encoder; each instance's line is
pydantic's own JSON of the record, written in Rust without a tree of Python data in
between). The document is ``RunReport.to_json_dict``'s, every registered secret
masked: the whole text is scanned once (the redactor knows each secret's JSON-escaped
forms), the last thing before it is returned. The file is private to its owner (0600)
and replaced atomically.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from batchmig.errors import UsageError
from batchmig.private_files import write_private_file
from batchmig.redaction import REDACTOR
from batchmig.report.build import ProcessFigures
from batchmig.report.model import InstanceReport, RunReport


def render_report(
    report: RunReport, instances: Sequence[InstanceReport] | None = None, extra: Mapping[str, Any] | None = None
) -> str:
    """The JSON text of ``report`` (``RunReport.to_json_dict()``'s document) with
    ``instances`` instead of all of its instances and the keys of ``extra`` added,
    every registered secret masked."""
    head = replace(report, instances=()).to_json_dict()
    del head["instances"]
    head.update(extra or {})
    lines = [_instance_line(instance) for instance in (report.instances if instances is None else instances)]
    body = json.dumps(head, indent=2)
    entries = '"instances": [\n    ' + ",\n    ".join(lines) + "\n  ]" if lines else '"instances": []'
    return REDACTOR(body[:-2] + ",\n  " + entries + "\n}\n" if head else "{\n  " + entries + "\n}\n")


def _instance_line(instance: InstanceReport) -> str:
    """One instance's compact JSON, as ``to_json_dict`` has it: pydantic's (several times
    faster than a dict per instance at 100,000 instances), non-ASCII text escaped by
    json as before. Not masked yet: ``render_report`` masks the whole text at once."""
    line = _instance_adapter().dump_json(instance).decode()
    return line if line.isascii() else json.dumps(orjson.loads(line), separators=(",", ":"))


@cache
def _instance_adapter() -> TypeAdapter[InstanceReport]:
    return TypeAdapter(InstanceReport)


def write_report(path: Path, report: RunReport) -> None:
    """Write ``report.json`` of ``report`` to ``path`` atomically (0600); raises OSError."""
    write_private_file(path, render_report(report))  # masked as it was rendered


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
