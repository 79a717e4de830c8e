"""What ``batchmig run``/``resume`` print at the end and what ``batchmig status`` prints.

Both render the run's ``RunReport`` through ``batchmig.listing``: every instance is
listed, or the table says how many rows it holds back and how to see them.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from typing import IO, Any

from batchmig.listing import Format, emit, terminal_rows
from batchmig.redaction import REDACTOR
from batchmig.report import InstanceReport, RunReport
from batchmig.report.csv import instances_csv_chunks
from batchmig.report.files import report_chunks
from batchmig.report.rows import JournalStep, StepSpan, lines_with_steps
from batchmig.report.tables import INSTANCE_COLUMNS, closing_line, instance_rows
from batchmig.selection import Selection

STATE_WORDS = {
    "running": "running now", "succeeded": "finished: every instance succeeded",
    "failed": "finished: some instances failed or were skipped", "interrupted": "stopped: resume continues it",
    "awaiting_cutover": "waiting for a manual cutover", "needs_attention": "stopped: instances need attention",
    "not_started": "never started",
}


def print_summary(report: RunReport, *, show_all: bool = False, out: IO[str] | None = None) -> None:
    """The table at the end of a run: every instance, or what fits and a count of the rest."""
    out = out or sys.stdout
    _table("batchmig summary", report.instances, show_all, out,
           more=f"see them with `batchmig status {report.run} --all` or --format json|csv")
    print(REDACTOR(closing_line(report)), file=out)


def print_status(
    report: RunReport, fmt: Format, selection: Selection, *, show_all: bool = False,
    extra: Mapping[str, Any] | None = None, spans: Mapping[str, StepSpan] | None = None,
    rows: dict[str, list[JournalStep]] | None = None, out: IO[str] | None = None,
) -> None:
    """``batchmig status``; ``extra`` adds keys to the JSON document (e.g. live runners);
    ``spans``: the instances' steps in one line for the CSV, ``rows``: their steps as the
    journal's rows for the JSON, if they were built without steps."""
    out = out or sys.stdout
    chosen = selection.choose(report.instances) if selection else list(report.instances)
    if fmt == "json":
        keys: dict[str, Any] = {"selection": selection.describe()} if selection else {}
        keys.update(active=report.state == "running", **(extra or {}))
        writer = None if rows is None else lines_with_steps(rows)
        out.writelines(report_chunks(report, chosen, keys, writer))  # masked as it is rendered
        return
    if fmt == "csv":
        out.writelines(instances_csv_chunks(chosen, spans))
        return
    _table(f"run {report.run}", chosen, show_all, out)
    line = closing_line(report)
    if selection:
        line = f"{len(chosen)} of {len(report.instances)} instances match {selection.describe()} · " + line
    print(REDACTOR(line), file=out)
    print(f"run {report.run}: {STATE_WORDS.get(report.state, report.state)}", file=out)


def _table(title: str, instances: Sequence[InstanceReport], show_all: bool, out: IO[str],
           more: str = "use --all or --format json|csv") -> None:
    """Every instance, or — on a terminal — what fits, those that need a look first."""
    limit = None if show_all else terminal_rows()
    attention_first = limit is not None and len(instances) > limit
    emit(title, INSTANCE_COLUMNS, instance_rows(instances, attention_first=attention_first), "text",
         limit=limit, more=more, out=out)
