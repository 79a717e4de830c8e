"""Build the ``RunReport`` of a run from its journal.

From the journal, not from a runner's memory, so ``batchmig status`` of a run that was
killed shows the same picture a finished run reports, and the report covers every
start, resume and retry of the run (the journal's invocations: each runner process's
calls, retries and throttles, recorded as it goes, so a killed one counts too). Only
what is never journaled — the limiter's per-key counters and poll counts of the
process writing the report — comes from ``ProcessFigures``.
"""

from __future__ import annotations

import contextlib
import gc
import json
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from batchmig.errors import Failure
from batchmig.journal import (
    AWAITING_CUTOVER,
    FAILED,
    INTERRUPTED,
    NEEDS_ATTENTION,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
    InstanceRecord,
    Invocation,
    OperatorRequestRow,
)
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
    RunState,
    StepRecord,
    WaveSummary,
    made,
    moment,
    span,
    timestamp,
)

if TYPE_CHECKING:  # only a journal of an older batchmig needs its plan (loaded by the caller)
    from batchmig.plan.model import Plan


@dataclass(frozen=True)
class ProcessFigures:
    """What only the process writing the report knows: it is not journaled."""

    rate_limits: Mapping[str, LimiterKeyRecord] = field(default_factory=dict)
    polls: Mapping[str, int] = field(default_factory=dict)
    invocation: InvocationRecord | None = None
    """This process's own invocation, for journals that do not keep invocations."""
    notifications: Sequence[NotificationRecord] = ()


@runtime_checkable
class InvocationSource(Protocol):
    """A journal that keeps one row per runner invocation (the SQLite journal does)."""

    def invocations(self) -> list[Invocation]: ...


class ReportSource(Protocol):
    """What a report is built from: a run's SQLite journal, or its rows in the shared store."""

    def meta(self) -> dict[str, str]: ...

    def steps(self) -> Iterable[tuple[str, int, str, float | None, float | None, str]]: ...

    def instances(self) -> dict[str, InstanceRecord]: ...

    def requests(self) -> list[OperatorRequestRow]: ...

    def released_cutover_times(self) -> dict[str, float]: ...


def build_run_report(
    journal: ReportSource,
    *,
    plan: Plan | None = None,
    active: bool = False,
    figures: ProcessFigures | None = None,
    steps: bool = True,
) -> RunReport:
    """The report of the run ``journal`` records.

    Each instance's tags and cutover policy come from the journal; ``plan`` gives them
    for a journal that does not keep them (from before schema version 2). ``active``
    says a runner is working on the run now (its state is then ``running``). Without
    ``steps`` the instances' steps are left out (for a view that does not show them,
    like ``status``'s table: they are most of a large run's journal).
    """
    figures = figures or ProcessFigures()
    meta = journal.meta()
    words: dict[str, str] = {}  # one copy of each name and status, not one per step and instance
    by_instance = _step_records(journal, words) if steps else {}
    instances = [_instance(record, by_instance.pop(record.id, ()), plan, words)
                 for record in journal.instances().values()]
    if isinstance(journal, InvocationSource):
        invocations = [invocation_record(row) for row in journal.invocations()]
    else:
        invocations = [figures.invocation] if figures.invocation else []
    requests = [
        OperatorRequest(row.id, row.kind, moment(row.at), row.user, row.host, row.selection,
                        len(row.instances))
        for row in journal.requests()
    ]
    by_wave = Counter((i.wave, i.status) for i in instances)  # counted in C
    statuses: Counter[str] = Counter()
    for (_, status), count in by_wave.items():
        statuses[status] += count
    start_error = meta.get("start_error") or None
    first = _epoch(meta.get("created"))
    last = max((i.ended.timestamp() for i in invocations if i.ended), default=None)
    return RunReport(
        schema_version=SCHEMA_VERSION,
        run=meta.get("run_id", ""),
        plan=meta.get("plan_path", ""),
        plan_sha256=meta.get("plan_sha256", ""),
        sandbox=meta.get("sandbox") == "1" or bool(meta.get("sandbox_at")),
        state=run_state(list(statuses), active=active, start_error=start_error),
        started=timestamp(first),
        ended=None if active else timestamp(last),
        duration_seconds=round(sum(i.duration_seconds or 0.0 for i in invocations), 3),
        elapsed_seconds=span(first, last),
        counts=dict(sorted(statuses.items())),
        calls=sum_calls(i.calls for i in invocations),
        invocations=tuple(invocations),
        waves=_waves(by_wave, _wave_order(meta, plan)),
        requests=tuple(requests),
        cutovers=tuple(_cutovers(journal)),
        rate_limits=dict(figures.rate_limits),
        polls=dict(figures.polls),
        notifications=tuple(figures.notifications),
        start_error=start_error,
        instances=tuple(instances),
    )


def _step_records(journal: ReportSource, words: dict[str, str]) -> dict[str, list[StepRecord]]:
    """Every instance's step records. A 100,000-instance run has over 300,000 steps, and
    their records were most of its report's cost: what ``made``, ``moment`` and ``span``
    do is written out here (the same records, a fifth faster; ``test_report_rows`` compares
    them), and the steps of an instance, which come together, are appended to its list
    without a look-up each."""
    by_instance: dict[str, list[StepRecord]] = {}
    new, fill, kind, from_epoch = object.__new__, object.__setattr__, StepRecord, datetime.fromtimestamp
    current, records = None, []
    previous_end, previous_moment = None, None  # a step starts when the one before it ended: one datetime for both
    for instance, index, name, started, ended, status in journal.steps():
        if instance != current:
            current, records = instance, by_instance.setdefault(instance, [])
        if started is None:
            begun = duration = None
        elif started == previous_end:
            begun, duration = previous_moment, None if ended is None else round(max(0.0, ended - started), 3)
        else:
            scaled = started * 1000.0
            milliseconds = round(scaled)
            begun = (from_epoch(milliseconds / 1000, UTC) if -0.49 < scaled - milliseconds < 0.49
                     and -1e13 < scaled < 1e13 else moment(started))
            duration = None if ended is None else round(max(0.0, ended - started), 3)
        if ended is None:
            previous_moment = None
        else:
            scaled = ended * 1000.0
            milliseconds = round(scaled)
            previous_moment = (from_epoch(milliseconds / 1000, UTC) if -0.49 < scaled - milliseconds < 0.49
                               and -1e13 < scaled < 1e13 else moment(ended))
        previous_end = ended
        record = new(kind)
        fill(record, "__dict__", {
            "index": index, "name": words.setdefault(name, name), "status": words.setdefault(status, status),
            "started": begun, "ended": previous_moment, "duration_seconds": duration})
        records.append(record)
    return by_instance


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a report is built and rendered in a short-lived
    command (``status``, ``report``) or at a runner's end: it allocates millions of objects
    in trees without cycles, which reference counting frees, and the collector's passes
    over them were a third of the build's time at 100,000 instances (the runner freezes its
    long-lived objects out of the collector for the same reason, and unfreezes them as it
    returns). What was allocated meanwhile is frozen too before the collector comes back:
    its first pass would otherwise walk all of it at once (0.16 s at 100,000 instances),
    only to free nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.freeze()
            gc.enable()


def run_state(statuses: Sequence[str], *, active: bool, start_error: str | None = None) -> RunState:
    """What a run's instance statuses add up to (the first that applies)."""
    if active:
        return "running"
    if start_error and all(s == PENDING for s in statuses):
        return "not_started"
    if any(s in (INTERRUPTED, PENDING, RUNNING) for s in statuses):
        return "interrupted"
    if NEEDS_ATTENTION in statuses:
        return "needs_attention"
    if any(s in (FAILED, SKIPPED) for s in statuses):
        return "failed"
    if AWAITING_CUTOVER in statuses:
        return "awaiting_cutover"
    return "succeeded"


def invocation_record(row: Invocation) -> InvocationRecord:
    """A journaled invocation as the report shows it."""
    calls = CallSummary(row.calls, dict(sorted(row.calls_by_action.items())), row.retries, row.throttled,
                        row.unknown_outcomes, row.reconciled, dict(sorted(row.errors_by_code.items())))
    return InvocationRecord(row.command, moment(row.started), timestamp(row.ended), span(row.started, row.ended),
                            row.host, row.pid, row.version, calls, row.exit_code, row.stop_reason)


def sum_calls(summaries: Iterable[CallSummary]) -> CallSummary:
    """Several invocations' calls as one."""
    by_action: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    totals = Counter[str]()
    for summary in summaries:
        by_action.update(summary.calls_by_action)
        errors.update(summary.errors_by_code)
        totals.update(calls=summary.calls, retries=summary.retries, throttled=summary.throttled,
                      unknown_outcomes=summary.unknown_outcomes, reconciled=summary.reconciled)
    return CallSummary(
        calls=totals["calls"], calls_by_action=dict(sorted(by_action.items())), retries=totals["retries"],
        throttled=totals["throttled"], unknown_outcomes=totals["unknown_outcomes"],
        reconciled=totals["reconciled"], errors_by_code=dict(sorted(errors.items())),
    )


def _instance(record: InstanceRecord, steps: Sequence[StepRecord], plan: Plan | None,
              words: dict[str, str]) -> InstanceReport:
    tags, cutover = record.tags, record.cutover
    if tags is None or cutover is None:  # not journaled (an older journal): from the plan, if it loaded
        planned = plan.instance(record.id) if plan is not None and plan.has_instance(record.id) else None
        tags, cutover = (dict(planned.tags), planned.cutover) if planned else ({}, None)
    return made(InstanceReport, {
        "id": record.id,
        "provider": words.setdefault(record.provider, record.provider),
        "wave": words.setdefault(record.wave, record.wave),
        "status": words.setdefault(record.status, record.status),
        "step": record.step_name if record.status != SUCCEEDED else None,
        "step_index": record.step,
        "updated": timestamp(record.updated),
        "remote_ids": dict(record.outputs),
        "steps": tuple(steps),
        "error": error_record(record.error) if record.error else None,
        "tags": tags,
        "cutover": cutover if cutover in ("auto", "manual") else None,
    })


def error_record(error: Failure) -> ErrorRecord:
    """The journal's ``Failure`` of an instance as the report's record."""
    return ErrorRecord(kind=error.kind, code=error.code, message=error.message, request_id=error.request_id,
                       step=error.step)


def _wave_order(meta: Mapping[str, str], plan: Plan | None) -> list[str]:
    """The plan's waves in order, as journaled (or from ``plan``, for an older journal)."""
    try:
        journaled = json.loads(meta.get("waves") or "null")
    except ValueError:
        journaled = None
    if isinstance(journaled, list):
        return [str(name) for name in journaled]
    return [wave.name for wave in plan.waves] if plan else []


def _waves(by_wave: Mapping[tuple[str, str], int], order: Sequence[str]) -> tuple[WaveSummary, ...]:
    """The waves' summaries from the instances counted by (wave, status)."""
    counts: dict[str, Counter[str]] = {name: Counter() for name in order}
    for (wave, status), count in by_wave.items():
        counts.setdefault(wave, Counter())[status] += count
    return tuple(
        WaveSummary(name, sum(by_status.values()), dict(sorted(by_status.items())))
        for name, by_status in counts.items()
        if by_status
    )


def _cutovers(journal: ReportSource) -> Iterable[CutoverRecord]:
    released = journal.released_cutover_times()
    for request in journal.requests():
        if request.kind != "cutover":
            continue
        for instance, status in request.instances.items():
            at = released.get(instance)
            if at is not None:
                yield CutoverRecord(instance, moment(at), request.user, request.host, request.id,
                                    before_gate=status != AWAITING_CUTOVER)


def _epoch(iso: str | None) -> float | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso).timestamp()
    except ValueError:
        return None
