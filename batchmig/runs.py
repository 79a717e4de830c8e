"""``batchmig runs``: the runs under a runs root, newest first, with their state.

Each row comes from the run's journal (plan, creation time, instance counts) and its
lock (whether a runner works on it now). A run whose first start failed before
anything was sent says so (``not_started``, with the reason) instead of looking like a
run that never finished; a journal that cannot be read is listed as such, never
skipped.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchmig.errors import BatchmigError
from batchmig.journal import Journal
from batchmig.listing import Column
from batchmig.report import run_state
from batchmig.rundir import JOURNAL_NAME, run_directories, run_is_active

RUN_COLUMNS = (
    Column("run", "run"), Column("plan", "plan"), Column("created", "created"), Column("state", "state"),
    Column("instances", "instances", "right"), Column("counts", "counts"), Column("sandbox", "sandbox"),
    Column("detail", "detail"),
)


@dataclass(frozen=True)
class RunSummary:
    run: str
    path: Path
    plan: str
    created: str
    state: str
    instances: int
    counts: dict[str, int]
    sandbox: bool
    detail: str = ""

    def row(self) -> dict[str, Any]:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(self.counts.items(), key=lambda kv: -kv[1]))
        return {"run": self.run, "plan": self.plan, "created": self.created, "state": self.state,
                "instances": self.instances, "counts": counts, "sandbox": "yes" if self.sandbox else "",
                "detail": self.detail, "path": str(self.path)}


def list_runs(runs_root: Path) -> list[RunSummary]:
    """Every run under ``runs_root``, newest first."""
    runs = [summarize(path) for path in run_directories(runs_root)]
    return sorted(runs, key=lambda r: (r.created, r.run), reverse=True)


def summarize(run_dir: Path) -> RunSummary:
    try:
        journal = Journal.open(run_dir / JOURNAL_NAME)
    except BatchmigError as exc:
        return RunSummary(run_dir.name, run_dir, "", "", "unreadable", 0, {}, False, str(exc))
    try:
        meta = journal.meta()
        counts = journal.status_counts()
    finally:
        journal.close()
    start_error = meta.get("start_error") or None
    state = run_state(list(counts), active=run_is_active(run_dir), start_error=start_error)
    plan = Path(meta.get("plan_path", "")).name
    return RunSummary(
        meta.get("run_id", run_dir.name), run_dir, plan, meta.get("created", ""), state, sum(counts.values()),
        counts, meta.get("sandbox") == "1" or bool(meta.get("sandbox_at")), start_error or "",
    )


def run_rows(runs: list[RunSummary]) -> Iterator[dict[str, Any]]:
    return (run.row() for run in runs)
