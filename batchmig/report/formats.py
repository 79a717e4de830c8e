"""Every file format of the report, by name, and writing them all into a run directory.

``batchmig report RUN --format NAME`` renders one; a runner that finishes or stops
writes them all beside ``report.json`` (0600, known secrets redacted, each file
replaced atomically so a reader never sees half of one). Every renderer masks the
secrets of its own text (once: a second pass over a large report found nothing and
cost as much as the rendering). The large ones (JSON, JUnit, CSV) give their text in
pieces of whole instances, each masked and written as it comes: whole, the texts of a
100,000-instance report held half a gigabyte at the end of a run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path

from batchmig.private_files import write_private_chunks
from batchmig.report.csv import csv_chunks, instances_csv_chunks
from batchmig.report.files import report_chunks
from batchmig.report.html import html_chunks
from batchmig.report.junit import junit_chunks
from batchmig.report.markdown import render_markdown
from batchmig.report.model import SCHEMA_VERSION, CallSummary, ErrorRecord, InstanceReport, RunReport, StepRecord
from batchmig.report.rows import JournalStep, lines_with_steps, spans_of_rows

FORMATS: dict[str, tuple[str, Callable[[RunReport], Iterable[str]]]] = {
    "json": ("report.json", report_chunks),
    "html": ("report.html", html_chunks),
    "junit": ("report.junit.xml", junit_chunks),
    "markdown": ("report.md", lambda report: (render_markdown(report),)),
    "csv": ("report.csv", csv_chunks),
}
"""Format name -> (file name in the run directory, renderer: its text in pieces, secrets masked)."""
WITHOUT_STEPS = ("markdown",)
"""Formats that show no step: ``batchmig report`` reads no step for them."""


def chunks_from_rows(fmt: str, report: RunReport, rows: dict[str, list[JournalStep]]) -> Iterable[str]:
    """``FORMATS[fmt]``'s text of a report built without its step records, its steps given
    as the journal's rows (``batchmig report``: the same text, without 650,000 datetimes)."""
    if fmt == "json":
        return report_chunks(report, line=lines_with_steps(rows))
    if fmt == "html":
        return html_chunks(report, rows=rows)
    if fmt == "junit":
        return junit_chunks(report, rows)
    return FORMATS[fmt][1](report)


def write_run_files(run_dir: Path, report: RunReport, rows: dict[str, list[JournalStep]],
                    formats: tuple[str, ...] = tuple(FORMATS)) -> list[Path]:
    """``write_report_files`` of a report built without its step records, its steps given as
    the journal's rows (a runner's files at its end: the same bytes, without 325,000 step
    records and 650,000 datetimes at 100,000 instances, 285 MB of its peak). Raises OSError."""
    written = []
    for fmt in formats:
        name, _ = FORMATS[fmt]
        chunks: Iterable[str]
        if fmt == "json":
            chunks = report_chunks(report, line=lines_with_steps(rows, take=False))
        elif fmt == "csv":
            chunks = instances_csv_chunks(report.instances, spans_of_rows(rows))
        else:
            chunks = chunks_from_rows(fmt, report, rows)
        write_private_chunks(run_dir / name, chunks)
        written.append(run_dir / name)
    return written


def render(report: RunReport, fmt: str) -> str:
    return "".join(FORMATS[fmt][1](report))


def write_report_files(run_dir: Path, report: RunReport, formats: tuple[str, ...] = tuple(FORMATS)) -> list[Path]:
    """Write ``formats`` of ``report`` into ``run_dir``; returns the paths. Raises OSError."""
    written = []
    for fmt in formats:
        name, renderer = FORMATS[fmt]
        write_private_chunks(run_dir / name, renderer(report))
        written.append(run_dir / name)
    return written


def prepare() -> None:
    """Render every format of a small made-up report once, so that what a first rendering
    pays only once (pydantic's serializers of the records, the HTML's script and
    stylesheet: 0.1-0.3 s) is paid now. A runner calls it in a thread while it waits on
    the cloud, not in the report at its end, which is on the run's critical path."""
    moment = datetime(2000, 1, 1, tzinfo=UTC)
    step = StepRecord(0, "step", "failed", moment, moment, 0.0)
    instance = InstanceReport("instance", "provider", "wave", "failed", "step", 0, moment, {"id": "x"}, (step,),
                              ErrorRecord("permanent", "Code", "message"), {"tag": "value"}, "auto")
    report = RunReport(SCHEMA_VERSION, "run", "plan.yaml", "", True, "failed", moment, moment, 0.0, 0.0,
                       {"failed": 1}, CallSummary(), instances=(instance,))
    for fmt in FORMATS:
        render(report, fmt)
