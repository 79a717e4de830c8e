"""``report.json``: writing the report into the run directory and reading it back.

One instance per line: readable, diffable, and fast to write for 10,000 instances (an
indented dump goes through the pure-Python encoder). Known secret values are redacted
from the text before it reaches the disk; the file is private to its owner (0600).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from batchmig.credentials import REDACTOR
from batchmig.errors import UsageError
from batchmig.report.model import RunReport


def render_report(document: dict[str, Any]) -> str:
    """The JSON text of a report document (``RunReport.to_json_dict()``)."""
    head = {key: value for key, value in document.items() if key != "instances"}
    lines = [json.dumps(entry, separators=(",", ":")) for entry in document.get("instances", [])]
    body = json.dumps(head, indent=2)
    instances = '"instances": [\n    ' + ",\n    ".join(lines) + "\n  ]" if lines else '"instances": []'
    return body[:-2] + ",\n  " + instances + "\n}\n" if head else "{\n  " + instances + "\n}\n"


def write_report(path: Path, document: dict[str, Any]) -> None:
    """Write ``document`` to ``path`` atomically (0600); raises OSError."""
    text = REDACTOR(render_report(document))
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)


def read_report(path: Path) -> RunReport:
    """A ``report.json`` read back into the model."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read the report {path}: {exc}") from None
    if not isinstance(data, dict) or data.get("schema_version") != 1:
        raise UsageError(f"{path} is not a batchmig run report of schema version 1")
    return RunReport.load(data)
