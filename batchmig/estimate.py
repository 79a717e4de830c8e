"""How long a plan takes: a simulation of the run against the rate caps and the cloud's work.

The dry run replays the plan the way the engine runs it, on a simulated clock:

* waves one after the other; in a wave, its canaries first and the rest once they are
  done; at most ``max_concurrency`` instances in flight (the wave's and the run's);
* every call passes its key's limiter — (provider, account, region, action), evenly
  spaced at ``(1 + margin) / floor(cap)`` seconds, first come first served, as
  ``batchmig.ratelimit`` does (its margin is the largest recent round trip, so here
  the round trip itself) — and takes ``call_seconds`` on the wire;
* a wait lasts the cloud's work (``Provider.step_estimates``, or the plan's
  ``defaults.estimates``; divided by the sandbox's time scale in a rehearsal) plus the
  time until a poll notices: half the poll interval, or more when the waiters of one
  poller outnumber what the describe action's cap can poll in an interval.

Manual cutovers count as released the moment an instance reaches them; nothing fails
or is throttled. Only the instances in flight are held, so a 100,000-instance plan is
estimated in bounded memory. The result says which action bounds each wave.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from batchmig.engine.polling import MIN_SCALED_INTERVAL
from batchmig.plan.model import Plan, PlannedInstance
from batchmig.plugin import Poller

Key = tuple[str, str, str, str]
"""(provider, account, region, action), as the limiter keys calls."""


@dataclass(frozen=True)
class Timing:
    """What the estimate assumes about time."""

    time_scale: float = 1.0
    """Cloud seconds per real second: 60 for the sandbox's default, 1 for a cloud."""
    call_seconds: float = 0.2
    """One API call on the wire (a cloud: about 0.1 to 0.5 s; the sandbox on loopback: a few ms)."""
    margin: float = 0.05
    """The limiter's spacing margin (``batchmig.ratelimit`` measures it: about one round trip)."""
    poll_interval: float | None = None
    """The plan's ``run.poll_interval`` (taken as given), else each poller's own, scaled."""


def run_timing(time_scale: float, poll_interval: float | None = None) -> Timing:
    """The assumptions for a run at ``time_scale`` (1: a cloud; the sandbox's otherwise)."""
    call = 0.2 if time_scale == 1 else 0.01
    return Timing(time_scale=time_scale, call_seconds=call, margin=max(0.005, call), poll_interval=poll_interval)


@dataclass(frozen=True)
class StepCost:
    """What one step costs: a call on ``key`` at ``rate`` (a call step), or ``work``
    seconds of the cloud's own work watched by ``poller``, whose polls spend ``key``
    (a wait step)."""

    key: Key
    rate: float
    mutating: bool = False
    work: float = 0.0
    poller: Poller | None = None
    poll_queue: Hashable = None
    """Waiters of one (connection, poller) share its polls."""
    step: str = ""


class Costed(Protocol):
    @property
    def costs(self) -> tuple[StepCost, ...]: ...

    @property
    def mutating(self) -> int: ...

    @property
    def gate(self) -> str: ...


T = TypeVar("T", bound=Costed)


@dataclass
class ActionTotal:
    key: Key
    rate: float
    calls: int = 0
    mutating: int = 0

    @property
    def seconds(self) -> float:
        """The calls at the cap, back to back: no run does this key's calls faster."""
        return self.calls / max(1.0, math.floor(self.rate + 1e-9))

    @property
    def name(self) -> str:
        return "/".join(self.key)


@dataclass
class WaveTotal:
    name: str
    instances: int = 0
    calls: int = 0
    mutating: int = 0
    manual_gates: int = 0
    start: float = 0.0
    end: float = 0.0
    actions: dict[Key, ActionTotal] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def busiest(self) -> ActionTotal | None:
        """The action whose calls at its cap take longest in this wave."""
        return max(self.actions.values(), key=lambda a: a.seconds, default=None)


@dataclass
class PlanEstimate:
    makespan: float
    waves: list[WaveTotal]
    actions: list[ActionTotal]
    """Over the whole plan, by key."""
    timing: Timing

    @property
    def rate_bound(self) -> float:
        """The makespan if only the rate caps counted: each wave's busiest action, summed."""
        return sum(wave.busiest.seconds for wave in self.waves if wave.busiest)

    @property
    def instances(self) -> int:
        return sum(wave.instances for wave in self.waves)


class Simulation(Generic[T]):
    """Iterate for ``(item, start, end)`` of every instance in the order the simulated run
    finishes them; ``result()`` afterwards. ``describe`` turns a planned instance into
    the item (its costs, gate and mutating calls)."""

    def __init__(
        self, plan: Plan, timing: Timing, describe: Callable[[PlannedInstance], T],
        skip: Callable[[str], bool] | None = None,
    ) -> None:
        """``skip`` leaves instances out (e.g. those a running run has finished)."""
        self.plan = plan
        self.timing = timing
        self.describe = describe
        self.skip = skip
        self._free: dict[Key, float] = {}
        self._waiting: dict[Hashable, int] = {}
        self._order = itertools.count()
        self._result: PlanEstimate | None = None

    def result(self) -> PlanEstimate:
        if self._result is None:
            for _ in self:
                pass
        assert self._result is not None
        return self._result

    def __iter__(self) -> Iterator[tuple[T, float, float]]:
        clock = 0.0
        waves: list[WaveTotal] = []
        actions: dict[Key, ActionTotal] = {}
        run_slots = self.plan.document.run.max_concurrency
        for wave in self.plan.waves:
            total = WaveTotal(wave.name, start=clock)
            waves.append(total)
            slots = min(run_slots, wave.max_concurrency or run_slots)
            groups = [wave.instances[: wave.canary], wave.instances[wave.canary:]]
            if self.skip is not None:
                groups = [tuple(iid for iid in group if not self.skip(iid)) for group in groups]
            for group in groups:
                if not group:
                    continue
                for item, start, end in self._run_group(group, clock, slots, total, actions):
                    clock = max(clock, end)
                    yield item, start, end
            total.end = clock
        self._result = PlanEstimate(clock, waves, sorted(actions.values(), key=lambda a: a.name), self.timing)

    def _run_group(
        self, ids: tuple[str, ...], start: float, slots: int, wave: WaveTotal, actions: dict[Key, ActionTotal]
    ) -> Iterator[tuple[T, float, float]]:
        pending = iter(ids)
        events: list[tuple[float, int, int, float, T]] = []  # (time, order, next step, started, item)

        def begin(at: float) -> bool:
            iid = next(pending, None)
            if iid is None:
                return False
            item = self.describe(self.plan.instance(iid))
            self._count(item, wave, actions)
            heapq.heappush(events, (at, next(self._order), 0, at, item))
            return True

        for _ in range(slots):
            if not begin(start):
                break
        while events:
            now, _, index, started, item = heapq.heappop(events)
            costs = item.costs
            if index > 0 and costs[index - 1].poll_queue is not None:
                self._waiting[costs[index - 1].poll_queue] -= 1
            if index == len(costs):
                yield item, started, now
                begin(now)
                continue
            heapq.heappush(events, (self._step(costs[index], now), next(self._order), index + 1, started, item))

    def _step(self, cost: StepCost, now: float) -> float:
        """When a step begun at ``now`` ends."""
        if cost.poller is not None:
            waiting = self._waiting[cost.poll_queue] = self._waiting.get(cost.poll_queue, 0) + 1
            return now + cost.work / self.timing.time_scale + self._poll_lag(cost, waiting)
        allowed = max(1, math.floor(cost.rate + 1e-9))
        slot = max(now, self._free.get(cost.key, 0.0))
        self._free[cost.key] = slot + (1.0 + self.timing.margin) / allowed
        return slot + self.timing.call_seconds

    def _poll_lag(self, cost: StepCost, waiting: int) -> float:
        """How long, on average, until a poll notices that the work is done."""
        assert cost.poller is not None
        interval = self.timing.poll_interval
        if interval is None:
            interval = max(MIN_SCALED_INTERVAL, cost.poller.min_interval / self.timing.time_scale)
        batch = cost.poller.max_batch if cost.poller.group.__name__ == "_no_group" else 1
        cycle = waiting / (max(1.0, math.floor(cost.rate)) * max(1, batch))  # every waiter polled once
        return max(interval, cycle) / 2 + self.timing.call_seconds

    @staticmethod
    def _count(item: Costed, wave: WaveTotal, actions: dict[Key, ActionTotal]) -> None:
        wave.instances += 1
        wave.mutating += item.mutating
        wave.manual_gates += item.gate == "manual"
        for cost in item.costs:
            if cost.poller is not None:
                continue  # polls: as many as it takes, paced by the poller (see _poll_lag)
            wave.calls += 1
            for table in (wave.actions, actions):
                entry = table.get(cost.key) or table.setdefault(cost.key, ActionTotal(cost.key, cost.rate))
                entry.calls += 1
                entry.mutating += cost.mutating
