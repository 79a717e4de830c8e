"""``report.json``: writing the report into the run directory and reading it back.

One instance per line: readable, diffable, and fast to write for 10,000 instances (an
indented dump goes through the pure-Python encoder). The document comes from
``RunReport.to_json_dict``, which masks every registered secret in every string; the
file is private to its owner (0600) and replaced atomically.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import orjson
from pydantic import TypeAdapter

from batchmig.errors import UsageError
from batchmig.private_files import write_private_file
from batchmig.redaction import REDACTOR
from batchmig.report.build import ProcessFigures
from batchmig.report.model import RunReport


def render_report(document: dict[str, Any]) -> str:
    """The JSON text of a report document (``RunReport.to_json_dict()``)."""
    head = {key: value for key, value in document.items() if key != "instances"}
    lines = [_compact(entry) for entry in document.get("instances", [])]
    body = json.dumps(head, indent=2)
    instances = '"instances": [\n    ' + ",\n    ".join(lines) + "\n  ]" if lines else '"instances": []'
    return body[:-2] + ",\n  " + instances + "\n}\n" if head else "{\n  " + instances + "\n}\n"


def _compact(entry: Any) -> str:
    """One instance's JSON: orjson's (several times faster at 100,000 instances), or —
    where it would write non-ASCII text — json's, which escapes it as before."""
    line = orjson.dumps(entry).decode()
    return line if line.isascii() else json.dumps(entry, separators=(",", ":"))


def write_report(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` (``RunReport.to_json_dict()``) to ``path`` atomically (0600); raises OSError."""
    write_private_text(path, render_report(document))


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
