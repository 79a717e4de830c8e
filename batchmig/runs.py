"""The runs under a runs root (``batchmig runs``, the dashboard's list), a run's plan, and
its report as it stands (``batchmig status``).

Nothing here imports the engine, the HTTP client or the plan loader until a plan must
be loaded again (a journal of an older batchmig): ``status`` and ``runs`` start fast.

Each entry comes from the run's journal (plan, creation time, instance counts) and its
lock (whether a runner works on it now). A run whose first start failed before
anything was sent says so (``not_started``, with the reason) instead of looking like a
run that never finished; a journal that cannot be read is listed as such, never
skipped.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from batchmig.errors import BatchmigError
from batchmig.journal import Journal
from batchmig.listing import Column
from batchmig.report import RunReport, build_run_report, run_state
from batchmig.report.rows import JournalStep, StepSpan, step_rows, step_spans
from batchmig.rundir import JOURNAL_NAME, find_run_dir, run_directories, run_is_active

if TYPE_CHECKING:
    from batchmig.plan.model import Plan
    from batchmig.registry import Registry

RUN_COLUMNS = (
    Column("run", "run"), Column("plan", "plan"), Column("created", "created"), Column("state", "state"),
    Column("instances", "instances", "right"), Column("counts", "counts"), Column("sandbox", "sandbox"),
    Column("detail", "detail"),
)


@dataclass(frozen=True)
class RunEntry:
    """One run in a listing."""

    run: str
    path: Path
    plan: str
    """The plan file the run was started from."""
    created: str
    state: str
    instances: int
    counts: dict[str, int]
    sandbox: bool
    detail: str = ""
    """Why it never started, or why its journal cannot be read."""

    def as_json(self) -> dict[str, Any]:
        """For the dashboard's API (no filesystem path)."""
        return {"run": self.run, "plan": self.plan, "created": self.created, "state": self.state,
                "instances": self.instances, "counts": self.counts, "sandbox": self.sandbox, "detail": self.detail}

    def row(self) -> dict[str, Any]:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts.items(), key=lambda kv: -kv[1]))
        return {"run": self.run, "plan": Path(self.plan).name, "created": self.created, "state": self.state,
                "instances": self.instances, "counts": counts, "sandbox": "yes" if self.sandbox else "",
                "detail": self.detail, "path": str(self.path)}


def list_runs(runs_root: Path, directories: Sequence[Path] | None = None) -> list[RunEntry]:
    """Every run under ``runs_root`` (or in ``directories``), newest first."""
    runs = [summarize(path) for path in (run_directories(runs_root) if directories is None else directories)]
    return sorted(runs, key=lambda r: (r.created, r.run), reverse=True)


def summarize(run_dir: Path) -> RunEntry:
    try:
        journal = Journal.open(run_dir / JOURNAL_NAME, read_only=True)
    except BatchmigError as exc:
        return RunEntry(run_dir.name, run_dir, "", "", "unreadable", 0, {}, False, str(exc))
    try:
        meta = journal.meta()
        counts = journal.status_counts()
    finally:
        journal.close()
    start_error = meta.get("start_error") or None
    state = run_state(list(counts), active=run_is_active(run_dir), start_error=start_error)
    return RunEntry(
        meta.get("run_id", run_dir.name), run_dir, meta.get("plan_path", ""), meta.get("created", ""), state,
        sum(counts.values()), dict(sorted(counts.items())), meta.get("sandbox") == "1" or bool(meta.get("sandbox_at")),
        start_error or "",
    )


def run_rows(runs: list[RunEntry]) -> Iterator[dict[str, Any]]:
    return (run.row() for run in runs)


def run_plan(run_dir: Path, meta: Mapping[str, str], registry: Registry) -> Plan | None:
    """The plan the run works on — its file if unchanged, else the copy in the run
    directory if that is the one — or None when neither loads (e.g. a plugin is gone)."""
    from batchmig.plan.loader import load_plan

    for path in (meta.get("plan_path", ""), str(run_dir / "plan.yaml")):
        if not path or not os.path.exists(path):
            continue
        try:
            plan = load_plan(path, registry)
        except BatchmigError:
            continue
        if plan.sha256 == meta.get("plan_sha256"):
            return plan
    return None


def plan_for_report(journal: Journal, run_dir: Path, registry: Callable[[], Registry] | None) -> Plan | None:
    """The plan a report of ``journal`` needs: None when the journal keeps every instance's
    tags and cutover policy (schema version 2 on: nothing is parsed again), else the run's
    plan if it loads (``registry`` is called only then)."""
    if registry is None or journal.keeps_plan_details:
        return None
    return run_plan(run_dir, journal.meta(), registry())


class RunStatus(NamedTuple):
    run_dir: Path
    report: RunReport
    spans: dict[str, StepSpan] | None
    """Each instance's steps in one line, when asked for (``run_status``'s ``spans``)."""
    rows: dict[str, list[JournalStep]] | None
    """Each instance's steps as the journal's rows, when asked for (``run_status``'s ``rows``)."""


def run_status(
    reference: str, runs_root: Path, registry: Callable[[], Registry] | None = None, *, steps: bool = True,
    spans: bool = False, rows: bool = False, figures: bool = False,
) -> RunStatus:
    """The report of a run as it stands (``steps``: with the instances' step records;
    ``spans``: with each instance's steps in one line, ``step_spans``, which costs a third
    of the records; ``rows``: with the steps as the journal's rows, ``step_rows``, for a
    renderer that formats them itself; ``figures``: with what the runner wrote of its
    limiter keys, polls and webhooks). Tags and cutover policies are journaled; for a
    journal of an older batchmig they come from its plan, loaded with ``registry()``."""
    run_dir = find_run_dir(reference, runs_root)
    # the journal's checks run on a second core while it is read; their verdict comes
    # before anything read is shown, and explains a read that fails
    journal = Journal.open(run_dir / JOURNAL_NAME, read_only=True, check_meanwhile=True)
    try:
        try:
            plan = plan_for_report(journal, run_dir, registry)
            process = None
            if figures:
                from batchmig.report.files import FIGURES_NAME, read_figures

                process = read_figures(run_dir / FIGURES_NAME)
            report = build_run_report(journal, plan=plan, active=run_is_active(run_dir), figures=process,
                                      steps=steps)
            status = RunStatus(run_dir, report, step_spans(journal) if spans else None,
                               step_rows(journal) if rows else None)
        except Exception:
            journal.verified()
            raise
        journal.verified()
        return status
    finally:
        journal.close()
