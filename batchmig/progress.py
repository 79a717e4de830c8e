"""The live view of a run on a terminal.

What a person watching a long change window needs at a glance: which wave runs and how
far it is, how long the run has taken and how long it will still take, which instances
are slowest (and which look stuck) with the step each is in, and, per limiter key, the
current call rate against its cap, the throttles, and the reduced rate while the
limiter backs off after one.

The ETA does not extrapolate "done so far / elapsed", which swings wildly while a
canary runs. It comes from the same simulation as the dry run (``batchmig.estimate``):
the remaining instances replayed against the rate caps, with each step's duration
taken from what this run has observed (the providers' estimates until a step was
seen), recomputed now and then in a worker thread. The shown value counts down with
the clock and moves only part of the way toward each new estimate, so it settles
instead of jumping.
"""

from __future__ import annotations

import dataclasses
import time
from collections import deque
from collections.abc import Mapping
from typing import Any

import anyio
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from batchmig.dryrun import InstancePlan, InstancePlanner
from batchmig.engine.observer import RunObserver
from batchmig.engine.pipeline import Pipeline
from batchmig.engine.runner import Engine
from batchmig.errors import Failure
from batchmig.estimate import Simulation, StepCost, Timing
from batchmig.journal import AWAITING_CUTOVER, FINAL_STATUSES
from batchmig.plan.model import Plan
from batchmig.registry import Registry
from batchmig.report.tables import human_seconds

STATUS_ORDER = ("pending", "running", "awaiting_cutover", "succeeded", "failed", "skipped", "interrupted")
REFRESH_SECONDS = 0.5
RATE_WINDOW_SECONDS = 5.0
SMOOTHING = 0.15
"""How far the shown ETA moves toward a new estimate per refresh."""
STUCK_FACTOR = 3.0
"""An instance in a step this many times longer than the step's typical duration looks stuck."""
SLOWEST_SHOWN = 5
KEYS_SHOWN = 6


class LiveState(RunObserver):
    """What the engine tells the view: the wave, each instance's step, steps' durations."""

    def __init__(self, clock: Any = time.monotonic) -> None:
        self.clock = clock
        self.wave = ""
        self.wave_size = 0
        self.wave_number = 0
        self.wave_settled: set[str] = set()
        self.wave_of: dict[str, str] = {}
        self.in_step: dict[str, tuple[str, str, float]] = {}  # instance -> (provider, step, since)
        self.durations: dict[tuple[str, str], tuple[int, float]] = {}  # (provider, step) -> (count, mean)

    def wave_started(self, wave: str, instances: int) -> None:
        self.wave, self.wave_size = wave, instances
        self.wave_number += 1
        self.wave_settled = set()

    def instance_changed(self, instance: str, wave: str, old: str | None, new: str,
                         error: Failure | None) -> None:
        if new in FINAL_STATUSES or new == AWAITING_CUTOVER:
            self.in_step.pop(instance, None)
            if wave == self.wave:
                self.wave_settled.add(instance)

    def step_started(self, instance: str, provider: str, step: str) -> None:
        self.in_step[instance] = (provider, step, self.clock())

    def step_finished(self, instance: str, provider: str, step: str, seconds: float, status: str) -> None:
        self.in_step.pop(instance, None)
        if status == "succeeded":
            count, mean = self.durations.get((provider, step), (0, 0.0))
            self.durations[(provider, step)] = (count + 1, mean + (seconds - mean) / (count + 1))

    def typical(self, provider: str, step: str) -> float | None:
        found = self.durations.get((provider, step))
        return found[1] if found else None


class EtaModel:
    """Remaining time from a simulation of the remaining work, smoothed for display."""

    def __init__(self, plan: Plan, registry: Registry, timing: Timing, engine: Engine, state: LiveState) -> None:
        self.plan = plan
        self.planner = InstancePlanner(plan, registry, engine.run_id)
        self.timing = timing
        self.engine = engine
        self.state = state
        self.estimate: float | None = None
        self.estimated_at = 0.0
        self.shown: float | None = None
        self.computing = False
        self.cost = 0.0  # seconds the last simulation took: re-simulate less often when it is dear

    def due(self, now: float) -> bool:
        return not self.computing and (self.estimate is None or now - self.estimated_at >= max(10.0, 5 * self.cost))

    def snapshot(self) -> tuple[dict[str, str], dict[str, tuple[str, str, float]],
                                dict[tuple[str, str], tuple[int, float]], float]:
        """What the simulation needs, taken on the event loop (the engine keeps changing it)."""
        return dict(self.engine.status), dict(self.state.in_step), dict(self.state.durations), self.state.clock()

    def simulate(self, status: dict[str, str], in_step: dict[str, tuple[str, str, float]],
                 durations: dict[tuple[str, str], tuple[int, float]], now: float) -> float:
        """Seconds the remaining work takes (run in a worker thread, on a ``snapshot``)."""
        started = time.monotonic()

        def describe(inst: Any) -> InstancePlan:
            item = self.planner(inst)
            costs = [self._observed(cost, item.provider, durations) for cost in item.costs]
            current = in_step.get(inst.id)
            if current is not None:  # in flight: from its current step, less the time already spent in it
                _, step, since = current
                names = [cost.step for cost in costs]
                index = names.index(step) if step in names else 0
                costs = costs[index:]
                if costs and costs[0].poller is not None:
                    done = (now - since) * self.timing.time_scale
                    costs[0] = dataclasses.replace(costs[0], work=max(0.0, costs[0].work - done))
            return dataclasses.replace(item, costs=tuple(costs))

        def finished(iid: str) -> bool:
            return status.get(iid) in FINAL_STATUSES or status.get(iid) == AWAITING_CUTOVER

        remaining = Simulation(self.plan, self.timing, describe, skip=finished).result().makespan
        self.cost = time.monotonic() - started
        return remaining

    def _observed(self, cost: StepCost, provider: str, durations: Mapping[tuple[str, str], tuple[int, float]]
                  ) -> StepCost:
        seen = durations.get((provider, cost.step))
        if cost.poller is None or seen is None:
            return cost
        return dataclasses.replace(cost, work=seen[1] * self.timing.time_scale)

    def update(self, remaining: float, at: float) -> None:
        self.estimate, self.estimated_at = remaining, at

    def shown_seconds(self, now: float, dt: float) -> float | None:
        """The value to show now: counts down with the clock, eases toward the estimate."""
        if self.estimate is None:
            return None
        target = max(0.0, self.estimate - (now - self.estimated_at))
        self.shown = target if self.shown is None else max(0.0, self.shown - dt)
        self.shown += SMOOTHING * (target - self.shown)
        return self.shown


class KeyRates:
    """Calls per second per limiter key over the last few seconds."""

    def __init__(self) -> None:
        self.history: dict[str, deque[tuple[float, int]]] = {}

    def sample(self, now: float, admitted: Mapping[str, int]) -> dict[str, float]:
        rates = {}
        for key, count in admitted.items():
            history = self.history.setdefault(key, deque())
            history.append((now, count))
            while len(history) > 1 and history[0][0] < now - RATE_WINDOW_SECONDS:
                history.popleft()
            first_at, first = history[0]
            rates[key] = (count - first) / (now - first_at) if now > first_at else 0.0
        return rates


def render(engine: Engine, pipeline: Pipeline, state: LiveState, elapsed: float, eta: float | None,
           rates: Mapping[str, float], now: float) -> Group:
    counts = engine.progress.by_status
    total = engine.progress.total
    waves = len(engine.plan.waves)
    wave = (f"wave {state.wave} ({state.wave_number}/{waves}): {len(state.wave_settled)}/{state.wave_size} settled"
            if state.wave else "starting")
    finished = sum(counts.get(s, 0) for s in FINAL_STATUSES)
    eta_text = "—" if eta is None else human_seconds(eta)
    head = Text.assemble((f"batchmig · {engine.run_id}", "bold"), f"   {wave}   {finished}/{total} finished"
                         f"   elapsed {human_seconds(elapsed)}   ETA {eta_text}")
    tally = Table(box=None, pad_edge=False, show_edge=False)
    shown = [s for s in STATUS_ORDER if counts.get(s)]
    for status in shown:
        tally.add_column(status.replace("_", " "), justify="right")
    tally.add_row(*(str(counts.get(s, 0)) for s in shown))
    parts: list[Any] = [head, tally]
    slowest = sorted(state.in_step.items(), key=lambda kv: kv[1][2])[:SLOWEST_SHOWN]
    if slowest:
        table = Table(title="slowest in flight", title_justify="left", box=None, pad_edge=False)
        for column in ("instance", "step", "in it for", "typical", ""):
            table.add_column(column)
        for iid, (provider, step, since) in slowest:
            typical = state.typical(provider, step)
            spent = now - since
            flag = "stuck?" if typical and spent > STUCK_FACTOR * max(typical, 1.0) else ""
            table.add_row(iid, step, human_seconds(spent), human_seconds(typical) if typical else "—", flag)
        parts.append(table)
    stats = pipeline.limiter.stats()
    current = pipeline.limiter.rates()
    busiest = sorted(stats.items(), key=lambda kv: (-rates.get(kv[0], 0.0), -kv[1].admitted))[:KEYS_SHOWN]
    if busiest:
        table = Table(title="rate limits", title_justify="left", box=None, pad_edge=False)
        for column in ("key", "calls/s", "cap", "throttled", ""):
            table.add_column(column, justify="left" if column == "key" else "right")
        for key, key_stats in busiest:
            limit = current.get(key, key_stats.cap)
            backed = f"backed off to {limit:.1f}/s" if limit < key_stats.cap - 1e-6 else ""
            table.add_row(key, f"{rates.get(key, 0.0):.1f}", f"{key_stats.cap:g}/s", str(key_stats.throttled),
                          backed)
        parts.append(table)
    return Group(*parts)


async def show_progress(
    engine: Engine, pipeline: Pipeline, state: LiveState, eta: EtaModel | None = None, console: Any = None
) -> None:
    """Redraw the view every half second until cancelled."""
    console = console or Console(stderr=True)
    started = last = time.monotonic()
    key_rates = KeyRates()

    async def estimate() -> None:
        assert eta is not None
        eta.computing = True
        try:
            remaining = await anyio.to_thread.run_sync(eta.simulate, *eta.snapshot())
            eta.update(remaining, time.monotonic())
        finally:
            eta.computing = False

    async with anyio.create_task_group() as tg:
        with Live(console=console, refresh_per_second=4, transient=False) as live:
            while True:
                now = time.monotonic()
                if eta is not None and eta.due(now):
                    tg.start_soon(estimate)
                shown = eta.shown_seconds(now, now - last) if eta is not None else None
                admitted = {key: s.admitted for key, s in pipeline.limiter.stats().items()}
                live.update(render(engine, pipeline, state, now - started, shown, key_rates.sample(now, admitted),
                                   state.clock()))
                last = now
                await anyio.sleep(REFRESH_SECONDS)
