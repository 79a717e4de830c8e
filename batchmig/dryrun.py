"""Dry run: every instance's calls in order, and a change-window plan with a makespan estimate.

Structurally side-effect free: it needs only the plan and the providers' step lists.
No connection, transport or journal exists in a dry run, so no call can reach a
network, mutating or not.

It streams: ``ChangeWindow`` walks the plan wave by wave as a run would, keeping only
the instances a run would have in flight, and hands each instance's calls out as it is
scheduled; totals per wave and per action add up on the way. A 100,000-instance plan
is never held as 100,000 call lists (``batchmig.estimate`` says how the time is
estimated).

Names batchmig gives what it creates derive from the run id, so a dry run lists the
calls of one particular run: the one started with the same ``--run-id`` (the CLI
mints one and prints it when none is given).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from batchmig.engine.runner import instance_view
from batchmig.estimate import PlanEstimate, Simulation, StepCost, Timing
from batchmig.plan.model import Plan, PlannedInstance, step_value
from batchmig.plugin import DEFAULT_RATE, CallStep, WaitItem
from batchmig.registry import Registry


class Placeholders(dict[str, Any]):
    """Outputs for dry-run: any remote id a step needs reads as ``<Name>``."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


@dataclass(frozen=True)
class DryRunCall:
    step: str
    action: str
    mutating: bool
    params: Mapping[str, Any]
    cutover: bool = False
    wait: bool = False

    def as_json(self) -> dict[str, Any]:
        return {"step": self.step, "action": self.action, "mutating": self.mutating, "params": dict(self.params),
                "cutover": self.cutover, "wait": self.wait}


@dataclass(frozen=True)
class InstancePlan:
    """What one instance would do: its calls in order, and where it stops for a person."""

    id: str
    position: int
    """Its place in the plan (0-based)."""
    provider: str
    wave: str
    gate: str
    """``manual`` or ``auto`` (its cutover step's policy), or ``none`` (no cutover step)."""
    calls: tuple[DryRunCall, ...]
    costs: tuple[StepCost, ...] = field(repr=False)

    @property
    def mutating(self) -> int:
        return sum(1 for call in self.calls if call.mutating)

    @property
    def waits(self) -> int:
        return sum(1 for call in self.calls if call.wait)


@dataclass(frozen=True)
class ScheduledInstance:
    """An instance placed in the change window (seconds from its start)."""

    instance: InstancePlan
    start: float
    end: float

    def row(self) -> dict[str, Any]:
        i = self.instance
        return {"id": i.id, "provider": i.provider, "wave": i.wave, "calls": len(i.calls) - i.waits,
                "mutating": i.mutating, "waits": i.waits,
                "gate": i.gate, "start": _offset(self.start), "end": _offset(self.end),
                "start_seconds": round(self.start, 1), "end_seconds": round(self.end, 1)}

    def as_json(self) -> dict[str, Any]:
        row = self.row()
        return {**row, "call_count": row["calls"], "calls": [c.as_json() for c in self.instance.calls]}


class InstancePlanner:
    """Builds ``InstancePlan``s, remembering what all instances of a configuration share
    (rates, the plan's estimates), so a large plan costs little beyond its providers' steps."""

    def __init__(self, plan: Plan, registry: Registry, run_id: str) -> None:
        self.plan = plan
        self.registry = registry
        self.run_id = run_id
        self._rates: dict[tuple[str, str], float] = {}
        self._planned: dict[str, float | None] = {}

    def __call__(self, inst: PlannedInstance) -> InstancePlan:
        """The calls ``inst`` would make, built from placeholder outputs, and their costs."""
        provider = self.registry.provider(inst.provider)
        config = self.plan.document.providers[inst.connection]
        account = config.account or inst.connection
        calls: list[DryRunCall] = []
        costs: list[StepCost] = []
        gate = "none"
        view = instance_view(inst, self.run_id)
        for step in provider.steps(view):
            if isinstance(step, CallStep):
                call = step.build(Placeholders())
                calls.append(DryRunCall(step.name, call.action, call.mutating, call.params, step.cutover))
                if step.cutover:
                    gate = inst.cutover
                costs.append(StepCost((inst.provider, account, config.region, call.action),
                                      self._rate(inst, call.action), call.mutating, step=step.name))
                continue
            poller = step.poller
            example = poller.example(WaitItem(view, Placeholders(), step.context)) if poller.example else None
            calls.append(DryRunCall(step.name, poller.action, False, example.params if example else {}, wait=True))
            work = self._plan_estimate(step.name)
            if work is None:
                work = provider.estimated_seconds(view, step.name) or 0.0
            costs.append(StepCost((inst.provider, account, config.region, poller.action),
                                  self._rate(inst, poller.action), False, work, poller,
                                  (inst.connection, poller.name), step.name))
        return InstancePlan(inst.id, inst.index, inst.provider, inst.wave, gate, tuple(calls), tuple(costs))

    def _rate(self, inst: PlannedInstance, action: str) -> float:
        """The cap the run's limiter would use (``operations.rate_table``)."""
        key = (inst.connection, action)
        rate = self._rates.get(key)
        if rate is None:
            overrides = self.plan.document.providers[inst.connection].rate_limits
            defaults = self.registry.provider(inst.provider).default_rate_limits
            rate = self._rates[key] = float(overrides.get(action, overrides.get("*", defaults.get(action,
                                                                                                DEFAULT_RATE))))
        return rate

    def _plan_estimate(self, step: str) -> float | None:
        if step not in self._planned:
            self._planned[step] = step_value(self.plan.document.defaults.estimates, step)
        return self._planned[step]


class ChangeWindow:
    """The dry run of a plan: iterate it for the scheduled instances, then read ``estimate``.

    Instances come out in the order the simulated run finishes them (start and end
    are seconds from the window's start); ``estimate`` (totals per wave and per
    action, the makespan) is complete once the iteration is.
    """

    def __init__(self, plan: Plan, registry: Registry, run_id: str, timing: Timing | None = None) -> None:
        self.plan = plan
        self.registry = registry
        self.run_id = run_id
        self._simulation = Simulation(plan, timing or Timing(), InstancePlanner(plan, registry, run_id))

    def __iter__(self) -> Iterator[ScheduledInstance]:
        for item, start, end in self._simulation:
            yield ScheduledInstance(item, start, end)

    @property
    def estimate(self) -> PlanEstimate:
        return self._simulation.result()


def dry_run(
    plan: Plan, registry: Registry, run_id: str, timing: Timing | None = None
) -> tuple[dict[str, list[DryRunCall]], PlanEstimate]:
    """Every instance's calls (by id) in run ``run_id`` and the estimate, in memory: for
    tests and small plans."""
    window = ChangeWindow(plan, registry, run_id, timing)
    listing = {item.instance.id: list(item.instance.calls) for item in window}
    return listing, window.estimate


def _offset(seconds: float) -> str:
    seconds = round(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"+{hours}:{minutes:02d}:{secs:02d}"
