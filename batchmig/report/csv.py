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
from collections.abc import Iterable, Iterator, Mapping
from json.encoder import encode_basestring_ascii as _quoted  # json.dumps's own quoting
from typing import Any

from batchmig.redaction import REDACTOR
from batchmig.report.files import batches
from batchmig.report.model import InstanceReport, RunReport
from batchmig.report.rows import NO_STEPS, StepSpan, span_of_steps

COLUMNS = ("instance", "provider", "wave", "status", "step", "started", "ended", "duration_seconds", "cutover",
           "error_kind", "error_code", "error_message", "request_id", "error_step", "remote_ids", "tags")
_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: object) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA) else text


def instance_row(instance: InstanceReport, steps: StepSpan) -> list[str]:
    """The instance's cells; ``steps``: its steps in one line (``span_of_steps`` of its records)."""
    first, last, seconds = steps
    error, ids, tags = instance.error, instance.remote_ids, instance.tags
    values: list[object] = [instance.id, instance.provider, instance.wave, instance.status, instance.step, first, last]
    values.append(round(seconds, 3))
    values.append(instance.cutover)
    if error is None:
        values += _NO_ERROR
    else:
        values += (error.kind, error.code, error.message, error.request_id, error.step)
    values.append(ids_json(ids) if ids else None)
    values.append(";".join([f"{k}={v}" for k, v in sorted(tags.items())]) if tags else None)
    # safe_cell inlined for the usual cells (100,000 rows of 16 cells each)
    return ["" if v is None else ("'" + v if v.startswith(_FORMULA) else v) if type(v) is str else safe_cell(v)
            for v in values]


_NO_ERROR = (None,) * 5
"""An instance without an error: its five error cells."""


def ids_json(ids: dict[str, Any]) -> str:
    """``json.dumps(ids, sort_keys=True, default=str)``, written directly when every key is
    text and every value text, a boolean or None (the usual cloud ids and flags): the same
    characters, without the encoder's set-up."""
    if all(type(key) is str for key in ids) and set(map(type, ids.values())) <= _ID_TYPES:
        return "{" + ", ".join(f"{_quoted(key)}: {_quoted(value) if type(value) is str else _LITERALS[value]}"
                               for key, value in sorted(ids.items())) + "}"
    return json.dumps(ids, sort_keys=True, default=str)


_ID_TYPES = frozenset({str, bool, type(None)})
_LITERALS = {True: "true", False: "false", None: "null"}


def csv_chunks(report: RunReport) -> Iterator[str]:
    """The CSV of ``report`` in pieces of whole rows, each masked."""
    return instances_csv_chunks(report.instances)


def instances_csv_chunks(instances: Iterable[InstanceReport], spans: Mapping[str, StepSpan] | None = None
                         ) -> Iterator[str]:
    """The CSV of some instances (``batchmig status --format csv`` of a selection), in pieces.
    ``spans``: each instance's steps in one line, read from the journal (``step_spans``)
    for instances built without their steps; without it, from their step records."""
    rows = (instance_row(i, span_of_steps(i.steps)) for i in instances) if spans is None else (
        instance_row(i, spans.get(i.id, NO_STEPS)) for i in instances)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for batch in batches(rows):
        writer.writerows(batch)
        yield REDACTOR(out.getvalue())
        out.seek(0)
        out.truncate()
    if out.tell():  # no instances: the header alone
        yield REDACTOR(out.getvalue())
