"""``batchmig cutover``: release manual cutovers, with an honest answer for every instance.

An operator selects instances (``--select``, ``--wave``, ``--tag``, ``--all``); each one
gets exactly one answer:

``released``          it waits at its cutover gate: the runner cuts it over now;
``pre-approved``      its cutover is manual but it has not reached the gate yet: the
                      runner will cut it over without stopping when it gets there
                      (the report marks the release ``before_gate``);
``already released``  an earlier request released it (who and when is in the report);
``finished``          it succeeded, failed or was skipped: there is nothing to release;
``automatic``         its cutover policy is ``auto``: it never waits;
``no gate``           its workflow has no cutover step (e.g. a one-shot full restore).

Only the first two are journaled, in one request that records who asked, when, from
which host and how the instances were chosen (``Journal.release_cutovers``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from batchmig.engine.runner import instance_view
from batchmig.journal import AWAITING_CUTOVER, FINAL_STATUSES, Journal, Requester
from batchmig.listing import Column
from batchmig.plan.model import Plan
from batchmig.plugin import CallStep
from batchmig.registry import Registry
from batchmig.report import build_run_report
from batchmig.report.model import InstanceReport, RunReport
from batchmig.rundir import JOURNAL_NAME
from batchmig.runs import run_plan
from batchmig.selection import Selection

Outcome = Literal["released", "pre-approved", "already released", "finished", "automatic", "no gate"]
RELEASING: tuple[Outcome, ...] = ("released", "pre-approved")
ANSWER_COLUMNS = (Column("instance", "instance"), Column("outcome", "outcome"), Column("detail", "detail"))


@dataclass(frozen=True)
class CutoverAnswer:
    instance: str
    outcome: Outcome
    detail: str

    def row(self) -> dict[str, Any]:
        return {"instance": self.instance, "outcome": self.outcome, "detail": self.detail}


def gate_finder(plan: Plan | None, registry: Registry) -> Callable[[str], bool] | None:
    """Whether an instance's workflow has a cutover step (None: not known without the plan)."""
    if plan is None:
        return None

    def has_gate(instance_id: str) -> bool:
        if not plan.has_instance(instance_id):
            return True
        planned = plan.instance(instance_id)
        steps = registry.provider(planned.provider).steps(instance_view(planned, "cutover"))
        return any(isinstance(step, CallStep) and step.cutover for step in steps)

    return has_gate


def answer(
    report: RunReport, chosen: Sequence[InstanceReport], has_gate: Callable[[str], bool] | None = None
) -> list[CutoverAnswer]:
    """What releasing ``chosen`` would do to each of them."""
    released = {c.instance: c for c in report.cutovers}
    answers = []
    for instance in chosen:
        earlier = released.get(instance.id)
        if earlier is not None:
            when = earlier.released.isoformat(timespec="seconds").replace("+00:00", "Z")
            answers.append(CutoverAnswer(instance.id, "already released",
                                         f"by {earlier.user} on {earlier.host} at {when}"))
        elif instance.status == AWAITING_CUTOVER:
            answers.append(CutoverAnswer(instance.id, "released", f"was waiting at {instance.step or 'its gate'}"))
        elif instance.status in FINAL_STATUSES:
            answers.append(CutoverAnswer(instance.id, "finished", f"it {instance.status}: nothing to release"))
        elif instance.cutover == "auto":
            answers.append(CutoverAnswer(instance.id, "automatic", "its cutover is automatic: it never waits"))
        elif has_gate is not None and not has_gate(instance.id):
            answers.append(CutoverAnswer(instance.id, "no gate", "its workflow has no cutover step"))
        else:
            at = f" (now {instance.status}{f' at {instance.step}' if instance.step else ''})"
            answers.append(CutoverAnswer(instance.id, "pre-approved",
                                         "not at its gate yet" + at + ": it will not stop there"))
    return answers


def release(journal: Journal, report: RunReport, answers: Sequence[CutoverAnswer], selection: str,
            requester: Requester | None = None) -> int | None:
    """Journal the releasing answers as one request; its id, or None if nothing is released."""
    statuses = {i.id: i.status for i in report.instances}
    chosen = {a.instance: statuses[a.instance] for a in answers if a.outcome in RELEASING}
    if not chosen:
        return None
    return journal.release_cutovers(chosen, requester, selection)


def summary(answers: Sequence[CutoverAnswer], shown: int = 10) -> list[str]:
    """One line per outcome: how many, and the first few instance ids."""
    lines = []
    for outcome in ("released", "pre-approved", "already released", "finished", "automatic", "no gate"):
        ids = [a.instance for a in answers if a.outcome == outcome]
        if ids:
            more = f" and {len(ids) - shown} more" if len(ids) > shown else ""
            lines.append(f"{outcome}: {len(ids)} — {', '.join(ids[:shown])}{more}")
    return lines


def release_selected(
    run_dir: Path, registry: Registry, selection: Selection, *, select_all: bool = False,
    requester: Requester | None = None,
) -> tuple[list[CutoverAnswer], int | None]:
    """Answer for every selected instance of the run in ``run_dir`` and journal the releases."""
    journal = Journal.open(run_dir / JOURNAL_NAME)
    try:
        plan = run_plan(run_dir, journal.meta(), registry)
        report = build_run_report(journal, plan=plan)
        chosen = list(report.instances) if select_all else selection.choose(report.instances)
        answers = answer(report, chosen, gate_finder(plan, registry))
        request = release(journal, report, answers, "--all" if select_all else selection.describe(), requester)
        return answers, request
    finally:
        journal.close()
