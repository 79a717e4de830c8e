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


def write_report(path: Path, report: dict[str, Any]) -> None:
    text = REDACTOR(json.dumps(report, indent=2, default=str)) + "\n"
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(tmp, path)
