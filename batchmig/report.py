"""The run report: ``report.json`` in the run directory and the closing summary.

Built from the journal (not from memory), so ``batchmig status`` of a run that was
killed shows the same picture a finished run reports. Every instance appears with
an explicit status; failures carry the cloud's code, message and request id.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from batchmig.credentials import REDACTOR
from batchmig.journal import Journal


def build_report(journal: Journal, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    meta = journal.meta()
    steps: dict[str, list[dict[str, Any]]] = {}
    for instance, index, name, started, ended, status in journal.steps():
        steps.setdefault(instance, []).append(
            {"index": index, "name": name, "status": status, "started": started, "ended": ended}
        )
    instances = []
    counts: Counter[str] = Counter()
    for record in journal.instances().values():
        counts[record.status] += 1
        entry: dict[str, Any] = {
            "id": record.id,
            "provider": record.provider,
            "wave": record.wave,
            "status": record.status,
            "step": record.step_name,
            "remote_ids": record.outputs,
            "steps": steps.get(record.id, []),
        }
        if record.error:
            entry["error"] = record.error
        instances.append(entry)
    report = {
        "run": meta.get("run_id"),
        "plan": meta.get("plan_path"),
        "plan_sha256": meta.get("plan_sha256"),
        "started": meta.get("created"),
        "counts": dict(sorted(counts.items())),
        "instances": instances,
    }
    report.update(extra or {})
    return report


def render_report(report: dict[str, Any]) -> str:
    """JSON with one instance per line: readable, diffable, and fast to write for 10,000
    instances (an indented dump goes through the pure-Python encoder)."""
    head = {key: value for key, value in report.items() if key != "instances"}
    lines = [json.dumps(entry, default=str, separators=(",", ":")) for entry in report.get("instances", [])]
    body = json.dumps(head, indent=2, default=str)
    instances = '"instances": [\n    ' + ",\n    ".join(lines) + "\n  ]" if lines else '"instances": []'
    return body[:-2] + ",\n  " + instances + "\n}\n" if head else "{\n  " + instances + "\n}\n"


def write_report(path: Path, report: dict[str, Any]) -> None:
    text = REDACTOR(render_report(report))
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
