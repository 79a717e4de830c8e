"""The benchmark's method: figures from what the plan requires and what the sandbox saw.

Nothing here trusts the runner's own counts for a verdict:

* ``worst_seconds``: each throttle key's busiest sliding second, from the sandbox's
  audit log — by the stamp the sandbox's throttle decided on (``decided``: what a
  cloud gateway counts) and by arrival (``arrived``: the client's own pace) — next
  to that key's cap as the sandbox applied it (``cap``).
* ``plan_bound``: how fast the plan can finish, from the plan alone — the calls each
  instance must make (its provider's steps) and the emulated durations — so wasted
  calls cannot raise it. Two figures: per rate key, the work that must precede its
  first call, its calls evenly spaced at the cap and the work that must follow its
  last call (the largest over all keys: no client can be faster); and the ideal run
  of the plan as written — instances started in plan order, every key serving its
  callers first come first served exactly at its cap, every answer and every
  completion seen the instant it happens, no poll spent (an event simulation). The
  bound is the larger of the two: what batchmig would take with no overhead at all.
* ``detection_delays``: how long after a job finished batchmig noticed it: each wait
  step's length minus the emulated duration of the work it waited for.
"""

from __future__ import annotations

import heapq
import math
import sqlite3
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchmig.dryrun import Placeholders
from batchmig.engine.runner import instance_view
from batchmig.plan.model import Plan
from batchmig.plugin import DEFAULT_RATE, CallStep
from batchmig.registry import Registry
from batchmig.sandbox.machinery import max_admitted_per_window, max_per_window


@dataclass(frozen=True)
class KeySecond:
    """One throttle key's busiest second as the sandbox saw it."""

    key: str
    cap: float
    admitted: int
    """The most requests admitted in any sliding second (by the throttle's decision stamps)."""
    sent: int
    """The most requests that arrived in any sliding second, throttled ones included."""
    throttled: int

    @property
    def within_cap(self) -> bool:
        return self.admitted <= math.floor(self.cap + 1e-9) and self.throttled == 0


def worst_seconds(audit: Sequence[Mapping[str, Any]]) -> list[KeySecond]:
    """Every throttle key's worst sliding second against its cap, busiest first."""
    entries = [dict(entry) for entry in audit]
    admitted = max_admitted_per_window(entries)
    sent = max_per_window(entries)
    caps: dict[tuple[str, str, str, str], float] = {}
    throttled: dict[tuple[str, str, str, str], int] = {}
    for entry in entries:
        if "decided" not in entry:
            continue
        key = (entry["emulator"], entry.get("credential", ""), entry.get("region", ""), entry["action"])
        caps[key] = min(caps.get(key, math.inf), float(entry.get("cap", math.inf)))
        throttled[key] = throttled.get(key, 0) + (entry.get("outcome") == "throttled")
    rows = [
        KeySecond("/".join(key), cap, admitted.get(key, 0), sent.get((key[0], key[1], key[3]), 0), throttled[key])
        for key, cap in caps.items()
    ]
    return sorted(rows, key=lambda row: (-row.admitted / row.cap, row.key))


@dataclass(frozen=True)
class Bound:
    """The rate-cap bound of a plan and the key that sets it."""

    seconds: float
    """The larger of ``key_seconds`` and ``ideal_seconds``."""
    key_seconds: float
    """Calls evenly spaced at each key's cap: (n - 1) / cap, plus the work before and after."""
    ideal_seconds: float
    """The plan run in order at exactly the caps, completions seen at once (simulated)."""
    strict_floor: float
    """The same with the calls in bursts of floor(cap) per second: no client can be faster."""
    key: str
    calls: int
    cap: float
    critical_work: float


@dataclass
class _KeyLoad:
    calls: int = 0
    cap: float = DEFAULT_RATE
    head: float = math.inf
    tail: float = math.inf


def plan_bound(plan: Plan, registry: Registry, work_seconds: Callable[[str, str], float]) -> Bound:
    """The rate-cap bound of ``plan``; ``work_seconds(instance id, wait step)`` gives the
    emulated duration (in wall seconds) of what the wait step waits for."""
    loads: dict[tuple[str, str, str], _KeyLoad] = {}
    chains: list[list[tuple[tuple[str, str, str] | None, float]]] = []  # per instance: (key, 0) or (None, work)
    polls: dict[tuple[str, str, str], tuple[int, int]] = {}  # key -> (waits, max batch)
    critical = 0.0
    for inst in plan.instances:
        provider = registry.provider(inst.provider)
        document = plan.document.providers[inst.connection]
        stages: list[tuple[str, float]] = []  # (action, work after which it can first happen)
        chain: list[tuple[tuple[str, str, str] | None, float]] = []
        done = 0.0
        for step in provider.steps(instance_view(inst, "bound")):
            if isinstance(step, CallStep):
                action = step.build(Placeholders()).action
                stages.append((action, done))
                chain.append(((inst.provider, document.region, action), 0.0))
            else:
                done += work_seconds(inst.id, step.name)
                chain.append((None, work_seconds(inst.id, step.name)))
                stages.append((step.poller.action, done))
                key = (inst.provider, document.region, step.poller.action)
                waits, _ = polls.get(key, (0, 1))
                polls[key] = (waits + 1, max(1, step.poller.max_batch))
        critical = max(critical, done)
        chains.append(chain)
        for action, head in stages:
            key = (inst.provider, document.region, action)
            load = loads.setdefault(key, _KeyLoad())
            load.calls += 1
            load.cap = float(document.rate_limits.get(action, document.rate_limits.get(
                "*", provider.default_rate_limits.get(action, DEFAULT_RATE))))
            load.head = min(load.head, head)
            load.tail = min(load.tail, done - head)
    for key, (waits, batch) in polls.items():  # a poll can ask about a whole batch of jobs
        loads[key].calls = loads[key].calls - waits + math.ceil(waits / batch)
    best: tuple[float, float, tuple[str, str, str]] | None = None
    for key, load in loads.items():
        spaced = load.head + (load.calls - 1) / load.cap + load.tail
        burst = load.head + math.floor((load.calls - 1) / max(1, math.floor(load.cap + 1e-9))) + load.tail
        if best is None or spaced > best[0]:
            best = (spaced, burst, key)
    assert best is not None, "a plan without calls has no bound"
    spaced, burst, key = best
    load = loads[key]
    ideal = _ideal_run(chains, {k: v.cap for k, v in loads.items()})
    return Bound(round(max(spaced, ideal, critical), 3), round(max(spaced, critical), 3), round(ideal, 3),
                 round(max(burst, critical), 3), "/".join(key), load.calls, load.cap, round(critical, 3))


def _ideal_run(chains: list[list[tuple[tuple[str, str, str] | None, float]]],
               caps: Mapping[tuple[str, str, str], float]) -> float:
    """The makespan of the plan run in order with no overhead: each key admits its
    callers first come first served, ``1 / cap`` apart; work takes exactly its time."""
    ready = [(0.0, index, 0) for index in range(len(chains))]  # (when, instance, stage)
    heapq.heapify(ready)
    free: dict[tuple[str, str, str], float] = {}
    end = 0.0
    while ready:
        when, index, stage = heapq.heappop(ready)
        chain = chains[index]
        if stage == len(chain):
            end = max(end, when)
            continue
        key, work = chain[stage]
        if key is None:
            heapq.heappush(ready, (when + work, index, stage + 1))
        else:
            at = max(when, free.get(key, 0.0))
            free[key] = at + 1 / caps[key]
            heapq.heappush(ready, (at, index, stage + 1))
    return end


@dataclass(frozen=True)
class Delays:
    median: float
    p95: float
    max: float
    count: int

    def as_dict(self) -> dict[str, float | int]:
        return {"median_s": self.median, "p95_s": self.p95, "max_s": self.max, "waits": self.count}


def summarise(delays: Sequence[float]) -> Delays:
    ordered = sorted(max(0.0, d) for d in delays)
    if not ordered:
        return Delays(0.0, 0.0, 0.0, 0)
    p95 = ordered[min(len(ordered) - 1, math.ceil(len(ordered) * 0.95) - 1)]
    return Delays(round(statistics.median(ordered), 3), round(p95, 3), round(ordered[-1], 3), len(ordered))


def detection_delays(journal: Path, work_seconds: Callable[[str, str], float], waits: set[str]) -> Delays:
    """Each finished wait step's length minus the emulated work it waited for.

    The wait starts when the call that started the work was answered (the work began
    on the server a few milliseconds earlier), so the figure errs on the short side by
    one response time."""
    db = sqlite3.connect(journal)
    try:
        rows = db.execute("SELECT instance, name, started, ended FROM steps WHERE status = 'succeeded'").fetchall()
    finally:
        db.close()
    return summarise([ended - started - work_seconds(instance, name)
                      for instance, name, started, ended in rows if name in waits and started and ended])


def per_job_polls(report: Mapping[str, Any], waits: int) -> float:
    """How often each waited-for job was asked about (a batched describe asks about many)."""
    return round(sum(report.get("polls", {}).values()) / max(1, waits), 2)
