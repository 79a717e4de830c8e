"""The report as CSV: one row per instance, for spreadsheets.

Every instance is a row, whatever its status, with its steps' first start and last
end, the error split into kind, code, message and request id, the cloud's ids and
the plan's tags. A cell that a spreadsheet would take for a formula (it starts with
``=``, ``+``, ``-``, ``@``, a tab or a carriage return: an error message from a cloud
can) is prefixed with ``'`` so opening the file never runs anything.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable

from batchmig.redaction import REDACTOR
from batchmig.report.model import InstanceReport, RunReport

COLUMNS = ("instance", "provider", "wave", "status", "step", "started", "ended", "duration_seconds", "cutover",
           "error_kind", "error_code", "error_message", "request_id", "error_step", "remote_ids", "tags")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def instance_row(instance: InstanceReport) -> list[str]:
    starts = [s.started for s in instance.steps if s.started]
    ends = [s.ended for s in instance.steps if s.ended]
    error = instance.error
    values: list[object] = [
        instance.id, instance.provider, instance.wave, instance.status, instance.step,
        min(starts).isoformat() if starts else None, max(ends).isoformat() if ends else None,
        round(sum(s.duration_seconds or 0.0 for s in instance.steps), 3), instance.cutover,
        error.kind if error else None, error.code if error else None, error.message if error else None,
        error.request_id if error else None, error.step if error else None,
        json.dumps(instance.remote_ids, sort_keys=True, default=str) if instance.remote_ids else None,
        ";".join(f"{k}={v}" for k, v in sorted(instance.tags.items())) or None,
    ]
    return [safe_cell(v) for v in values]


def render_csv(report: RunReport) -> str:
    return render_instances_csv(report.instances)


def render_instances_csv(instances: Iterable[InstanceReport]) -> str:
    """The CSV of some instances (``batchmig status --format csv`` of a selection)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    writer.writerows(instance_row(instance) for instance in instances)
    return REDACTOR(out.getvalue())
