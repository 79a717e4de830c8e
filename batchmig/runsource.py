"""Where ``batchmig report`` and ``batchmig serve`` read runs from, and release cutovers.

Today a run lives in a run directory (its journal, plan copy and the runner's
``figures.json``); the scale-out work keeps runs in a shared PostgreSQL store. Both
sit behind ``RunSource``, the whole of what the report command and the dashboard
need: list the runs, build a run's report, an instance's journaled calls, release
cutovers, and a fingerprint that changes whenever the run does (so the dashboard
rebuilds a report only when there is something new). ``DirectorySource`` is the
run-directory implementation.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from batchmig.errors import UsageError
from batchmig.journal import AWAITING_CUTOVER, Journal, Requester
from batchmig.report import RunReport, build_run_report
from batchmig.report.files import FIGURES_NAME, read_figures
from batchmig.report.model import moment
from batchmig.rundir import find_run_dir, run_is_active
from batchmig.runs import RunEntry, list_runs, plan_for_report

if TYPE_CHECKING:
    from batchmig.plan.model import Plan
    from batchmig.registry import Registry

JOURNAL = "journal.sqlite"


@dataclass(frozen=True)
class CallRecord:
    """One journaled mutating call of an instance (reads and polls are not journaled)."""

    step: int
    action: str
    state: str
    """``done``, ``failed``, ``throttled``, ``unknown``, ``reconciled``, or ``intent`` (no outcome yet)."""
    sent: str
    seconds: float | None
    request_id: str | None
    error: dict[str, Any] | None


class CutoverRefused(UsageError):
    """The request names instances that are unknown or do not wait for a cutover."""


class RunSource(Protocol):
    def runs(self) -> list[RunEntry]:
        """Every run this source can show, newest first."""
        ...

    def report(self, run: str) -> RunReport:
        """The run's report as it stands (also while a runner works on it)."""
        ...

    def calls(self, run: str, instance: str) -> list[CallRecord]:
        """The instance's journaled calls, oldest first."""
        ...

    def release_cutover(self, run: str, instances: Sequence[str], requester: Requester, selection: str) -> int:
        """Release the cutover of ``instances`` (each must await it); returns the request's id."""
        ...

    def fingerprint(self, run: str) -> str:
        """A value that changes whenever anything of the run changes."""
        ...


class DirectorySource:
    """Runs in run directories: those under ``runs_root``, or only the ``runs`` named."""

    def __init__(
        self, runs_root: Path, runs: Sequence[str] = (), registry: Callable[[], Registry] | None = None
    ) -> None:
        self.runs_root = runs_root
        self._named = [find_run_dir(reference, runs_root) for reference in runs]
        self._registry = registry
        self._plans: dict[tuple[str, str], Plan | None] = {}
        self._lock = threading.Lock()

    def directory(self, run: str) -> Path:
        """The directory of ``run`` (an id, a unique prefix, or a path), if this source shows it."""
        if self._named:
            for path in self._named:
                if path.name == run:
                    return path
            raise UsageError(f"no run {run!r} here")
        return find_run_dir(run, self.runs_root)

    def runs(self) -> list[RunEntry]:
        return list_runs(self.runs_root, self._named or None)

    def report(self, run: str, *, steps: bool = True) -> RunReport:
        """``steps``: with the instances' steps (a view that shows none, like the Markdown
        summary, is built in a third of the time without them)."""
        path = self.directory(run)
        journal = Journal.open(path / JOURNAL, read_only=True)
        try:
            return build_run_report(journal, plan=self._plan(path, journal), active=run_is_active(path),
                                    figures=read_figures(path / FIGURES_NAME), steps=steps)
        finally:
            journal.close()

    def calls(self, run: str, instance: str) -> list[CallRecord]:
        journal = Journal.open(self.directory(run) / JOURNAL, read_only=True)
        try:
            rows = [row for row in journal.calls() if row[0] == instance]
        finally:
            journal.close()
        return [
            CallRecord(step, action, state, moment(sent).isoformat().replace("+00:00", "Z"),
                       None if finished is None else round(finished - sent, 3), request_id,
                       json.loads(error) if error else None)
            for _, step, action, _resource, state, sent, finished, request_id, error in rows
        ]

    def release_cutover(self, run: str, instances: Sequence[str], requester: Requester, selection: str) -> int:
        journal = Journal.open(self.directory(run) / JOURNAL)
        try:
            records = journal.instances()
            unknown = [iid for iid in instances if iid not in records]
            if unknown:
                raise CutoverRefused(f"no instance {', '.join(unknown[:5])} in run {run}")
            not_waiting = [iid for iid in instances if records[iid].status != AWAITING_CUTOVER]
            if not_waiting:
                raise CutoverRefused(f"{', '.join(not_waiting[:5])} do(es) not await a cutover "
                                     f"({records[not_waiting[0]].status})")
            if not instances:
                raise CutoverRefused("no instance awaits a cutover there")
            return journal.release_cutovers({iid: records[iid].status for iid in instances}, requester, selection)
        finally:
            journal.close()

    def fingerprint(self, run: str) -> str:
        path = self.directory(run)
        parts = []
        for name in (JOURNAL, JOURNAL + "-wal", FIGURES_NAME):
            try:
                stat = os.stat(path / name)
                parts.append(f"{stat.st_mtime_ns}:{stat.st_size}")
            except OSError:
                parts.append("-")
        parts.append("active" if run_is_active(path) else "idle")
        return "/".join(parts)

    def _plan(self, path: Path, journal: Journal) -> Plan | None:
        """The run's plan, for a journal that does not keep tags and cutover policies
        (``runs.plan_for_report``), loaded once per plan version."""
        registry = self._registry
        if registry is None or journal.keeps_plan_details:
            return None
        meta = journal.meta()
        key = (str(path), meta.get("plan_sha256", ""))
        with self._lock:
            if key not in self._plans:
                self._plans[key] = plan_for_report(journal, path, registry)
            return self._plans[key]
