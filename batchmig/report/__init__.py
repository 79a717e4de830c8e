"""The run report: one typed model of a whole run, built from its journal.

* ``model`` — the records (``RunReport``, ``InstanceReport``, ``StepRecord``,
  ``InvocationRecord``, ``CutoverRecord``...), versioned by ``SCHEMA_VERSION``;
* ``build`` — ``build_run_report(journal)``: the model of a run, live or finished;
* ``files`` — ``report.json`` written into the run directory and read back;
* ``schema`` — the report's JSON Schema (``docs/report-schema.json``).

Every surface renders from the model: the closing summary, ``batchmig status``,
``report.json``, and what later reads it.
"""

from __future__ import annotations

from batchmig.report.build import ProcessFigures, build_run_report, run_state, sum_calls
from batchmig.report.files import read_report, render_report, write_report
from batchmig.report.model import (
    SCHEMA_VERSION,
    CallSummary,
    CutoverRecord,
    ErrorRecord,
    InstanceReport,
    InvocationRecord,
    LimiterKeyRecord,
    NotificationRecord,
    OperatorRequest,
    RunReport,
    StepRecord,
    TrafficSeries,
    WaveSummary,
)
from batchmig.report.schema import report_schema

__all__ = [
    "SCHEMA_VERSION",
    "CallSummary",
    "CutoverRecord",
    "ErrorRecord",
    "InstanceReport",
    "InvocationRecord",
    "LimiterKeyRecord",
    "NotificationRecord",
    "OperatorRequest",
    "ProcessFigures",
    "RunReport",
    "StepRecord",
    "TrafficSeries",
    "WaveSummary",
    "build_run_report",
    "read_report",
    "render_report",
    "report_schema",
    "run_state",
    "sum_calls",
    "write_report",
]
