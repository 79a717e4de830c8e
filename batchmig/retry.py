"""``batchmig retry``: run chosen failed or skipped instances again, inside the same run.

Each retried instance starts from the step where it stopped, with the remote ids it
had already journaled: a mutating call whose effect is journaled is never sent
again (the engine's ordinary resume rules apply — a call whose outcome was lost is
looked up before anything is re-sent), and a call the cloud refused is sent again,
since that is what the operator asks for. Instances that succeeded, or that a runner
still works on, are never touched.

A canary gates the rest of its wave (and later waves): skipped instances can only run
once it has succeeded. So retrying them also retries every failed canary of their
wave and of the waves before it — said out loud, and journaled with the request. A
failure budget that stays exhausted in an earlier wave would skip them again; that is
said too, before anything runs.

The request (who, when, from which host, how the instances were chosen, and each
one's status before) is journaled in one transaction with the reset, under the run
lock, and shows in the report's ``requests``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from batchmig.errors import UsageError
from batchmig.journal import FAILED, SKIPPED, Journal, Requester
from batchmig.plan.model import Plan
from batchmig.registry import Registry
from batchmig.report import build_run_report
from batchmig.report.model import InstanceReport
from batchmig.rundir import JOURNAL_NAME, run_lock
from batchmig.runs import run_plan
from batchmig.selection import Selection

RETRYABLE = frozenset({FAILED, SKIPPED})
DEFAULT_SELECTION = Selection(statuses=(FAILED, SKIPPED))


@dataclass
class RetryRequest:
    """What ``retry`` decided, before the run goes on."""

    retried: list[str] = field(default_factory=list)
    canaries: list[str] = field(default_factory=list)
    """Failed canaries retried because selected instances wait for them."""
    not_retried: dict[str, str] = field(default_factory=dict)
    """Selected instances left alone, with their status."""
    warnings: list[str] = field(default_factory=list)
    request: int | None = None


def request_retry(
    run_dir: Path, registry: Registry, selection: Selection, requester: Requester | None = None
) -> RetryRequest:
    """Make the selected failed/skipped instances of the run runnable again (journaled).

    Takes the run lock for the reset, so it is refused while a runner works on the run.
    """
    with run_lock(run_dir):
        journal = Journal.open(run_dir / JOURNAL_NAME)
        try:
            plan = run_plan(run_dir, journal.meta(), registry)
            if plan is None:
                raise UsageError(
                    f"the plan of run {run_dir.name} does not load as it was (changed, or a provider is missing)",
                    f"`batchmig resume {run_dir.name}` says why (--accept-changed-plan takes a new plan); "
                    "retry after that")
            report = build_run_report(journal, plan=plan)
            chosen = (selection or DEFAULT_SELECTION).choose(report.instances)
            decision = decide(chosen, report.instances, plan)
            if decision.retried or decision.canaries:
                statuses = {i.id: i.status for i in report.instances}
                ids = decision.canaries + decision.retried
                decision.request = journal.request_retry({iid: statuses[iid] for iid in ids}, requester,
                                                         (selection or DEFAULT_SELECTION).describe())
            return decision
        finally:
            journal.close()


def decide(chosen: Sequence[InstanceReport], instances: Sequence[InstanceReport], plan: Plan) -> RetryRequest:
    """Which of ``chosen`` to retry, which gating canaries with them, and what to warn about."""
    decision = RetryRequest()
    for instance in chosen:
        if instance.status in RETRYABLE:
            decision.retried.append(instance.id)
        else:
            decision.not_retried[instance.id] = instance.status
    if not decision.retried:
        return decision
    status = {i.id: i.status for i in instances}
    order = [wave.name for wave in plan.waves]
    last = max(order.index(plan.instance(iid).wave) for iid in decision.retried if plan.has_instance(iid))
    retrying = set(decision.retried)
    for wave in plan.waves[: last + 1]:
        for canary in wave.instances[: wave.canary]:
            if status.get(canary) in RETRYABLE and canary not in retrying:
                decision.canaries.append(canary)
                retrying.add(canary)
        budget = wave.failure_budget
        if budget is None or wave.name == order[last]:
            continue
        failed = sum(1 for iid in wave.instances if status.get(iid) == FAILED and iid not in retrying)
        if not budget.allows(failed, len(wave.instances)):
            decision.warnings.append(
                f"wave {wave.name}'s failure budget stays exhausted ({failed} failed, not retried): the instances "
                "of later waves will be skipped again — retry its failed instances too (--status failed)")
    return decision


def describe(decision: RetryRequest, shown: int = 10) -> list[str]:
    """What the operator is told before the run goes on."""

    def ids(items: Sequence[str]) -> str:
        return ", ".join(items[:shown]) + (f" and {len(items) - shown} more" if len(items) > shown else "")

    lines = []
    if decision.retried:
        lines.append(f"retrying {len(decision.retried)}: {ids(decision.retried)}")
    if decision.canaries:
        lines.append(f"also retrying {len(decision.canaries)} failed canary(ies) the selected instances wait for: "
                     f"{ids(decision.canaries)}")
    if decision.not_retried:
        by_status: dict[str, list[str]] = {}
        for iid, status in decision.not_retried.items():
            by_status.setdefault(status, []).append(iid)
        for status, members in by_status.items():
            lines.append(f"not retried ({status}: only failed and skipped instances are): {ids(members)}")
    lines += [f"warning: {warning}" for warning in decision.warnings]
    return lines
