"""The live view: wave progress, slowest and stuck instances, rates against caps, a steady ETA."""

from __future__ import annotations

import collections
import io
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from rich.console import Console

from batchmig.engine.runner import Progress
from batchmig.estimate import Timing
from batchmig.plan.loader import load_plan
from batchmig.progress import EtaModel, KeyRates, LiveState, render
from batchmig.ratelimit import LimitKey, RateLimiter
from batchmig.registry import Registry
from batchmig.testing import FakeClock

PLAN = """\
version: 1
providers: {tc: {type: testcloud, region: r}}
defaults: {provider: tc, settings: {testcloud: {duration: 60}}}
instances:
""" + "".join(f"  - {{id: db-{i}}}\n" for i in range(10))


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_state_follows_waves_steps_and_durations() -> None:
    clock = Clock()
    state = LiveState(clock)
    state.wave_started("main", 3)
    state.step_started("a", "tc", "wait-job")
    state.step_started("b", "tc", "wait-job")
    clock.now += 40
    state.step_finished("a", "tc", "wait-job", 40.0, "succeeded")
    state.step_finished("c", "tc", "wait-job", 60.0, "succeeded")
    state.instance_changed("a", "main", "running", "succeeded", None)
    assert state.in_step == {"b": ("tc", "wait-job", 100.0)} and state.wave_settled == {"a"}
    assert state.typical("tc", "wait-job") == pytest.approx(50.0) and state.typical("tc", "other") is None


def engine_for(plan, statuses: dict[str, str]) -> SimpleNamespace:
    counts: dict[str, int] = {}
    for status in statuses.values():
        counts[status] = counts.get(status, 0) + 1
    return SimpleNamespace(plan=plan, status=statuses, run_id="r-1",
                           progress=SimpleNamespace(by_status=counts, total=len(statuses)))


def test_the_eta_is_the_remaining_work_from_observed_durations(plan_file, registry: Registry) -> None:
    plan = load_plan(str(plan_file(PLAN)), registry)
    clock = Clock()
    state = LiveState(clock)
    statuses = {inst.id: "pending" for inst in plan.instances}
    model = EtaModel(plan, registry, Timing(time_scale=1.0, call_seconds=0.0), engine_for(plan, statuses), state)
    fresh = model.simulate(*model.snapshot())
    assert fresh == pytest.approx(10 * 1.05 / 20 + 60 + 0.5, abs=0.2)  # as the dry run says
    # half of them done, the rest half-way through a job the run has seen take 30 s, not 60
    for index, inst in enumerate(plan.instances):
        if index < 5:
            statuses[inst.id] = "succeeded"
        else:
            statuses[inst.id] = "running"
            state.step_started(inst.id, "testcloud", "wait-job")
    state.durations[("testcloud", "wait-job")] = (5, 30.0)
    clock.now += 15
    remaining = model.simulate(*model.snapshot())
    assert remaining == pytest.approx(30 - 15 + 0.5, abs=0.2)


def test_the_shown_eta_counts_down_and_eases_toward_a_new_estimate(plan_file, registry: Registry) -> None:
    plan = load_plan(str(plan_file(PLAN)), registry)
    model = EtaModel(plan, registry, Timing(), engine_for(plan, {}), LiveState())
    assert model.shown_seconds(0.0, 0.5) is None
    model.update(100.0, at=0.0)
    assert model.shown_seconds(0.0, 0.5) == pytest.approx(100.0)
    assert model.shown_seconds(10.0, 10.0) == pytest.approx(90.0)  # the clock alone
    model.update(300.0, at=10.0)  # a worse estimate: shown moves a part of the way, not all at once
    jumps = [model.shown_seconds(10.0 + 0.5 * i, 0.5) for i in range(1, 6)]
    assert all(90 < value < 300 for value in jumps) and jumps == sorted(jumps)
    assert jumps[0] - 90.0 < 0.2 * (300 - 90)


def test_key_rates_over_the_last_seconds() -> None:
    rates = KeyRates()
    assert rates.sample(0.0, {"k": 0}) == {"k": 0.0}
    rates.sample(1.0, {"k": 20})
    assert rates.sample(2.0, {"k": 40}) == {"k": pytest.approx(20.0)}
    assert rates.sample(9.0, {"k": 40}) == {"k": 0.0}  # nothing in the last five seconds


def test_the_view_shows_wave_slowest_stuck_and_backed_off_keys(plan_file, registry: Registry) -> None:
    plan = load_plan(str(plan_file(PLAN)), registry)
    fake = FakeClock()
    limiter = RateLimiter(lambda key: 20.0, clock=fake)
    key = LimitKey("testcloud", "acct", "r", "CreateJob")
    for _ in range(5):
        limiter.reserve(key)
    limiter.penalize(key)  # the cloud throttled: every caller of the key slows down
    clock = Clock()
    state = LiveState(clock)
    state.wave_started("default", 10)
    state.durations[("testcloud", "wait-job")] = (3, 60.0)
    state.step_started("db-1", "testcloud", "wait-job")
    clock.now += 400
    state.step_started("db-2", "testcloud", "wait-job")
    statuses = {inst.id: "running" for inst in plan.instances}
    group = render(engine_for(plan, statuses), SimpleNamespace(limiter=limiter), state, 3725.0, 95.0,
                   {str(key): 4.5}, clock.now)
    out = io.StringIO()
    Console(file=out, width=200).print(group)
    text = out.getvalue()
    assert "wave default (1/1): 0/10 settled" in text and "elapsed 1h02m" in text and "ETA 1m35s" in text
    assert "db-1" in text and "stuck?" in text.split("db-1")[1].split("\n")[0]
    assert "stuck?" not in text.split("db-2")[1].split("\n")[0]
    assert "testcloud/acct/r/CreateJob" in text and "backed off to 10.0/s" in text


@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from(["pending", "running", "succeeded", "failed"]))))
def test_the_counts_by_wave_follow_every_move(moves: list[tuple[int, str]]) -> None:
    """The monitor's metrics read ``Progress.instances()`` (kept as instances move) rather
    than counting every instance at each tick: they must agree with a count."""
    wave_of = {0: "a", 1: "a", 2: "b", 3: "b"}  # 4 and 5: in the journal, no longer in the plan
    progress = Progress(total=4)
    status: dict[int, str] = {}
    for instance, new in moves:
        if status.get(instance) != new:
            progress.move(status.get(instance), new, wave_of.get(instance))
            status[instance] = new
    counted: dict[tuple[str, str], int] = {}
    for instance, now in status.items():
        if instance in wave_of:
            counted[(wave_of[instance], now)] = counted.get((wave_of[instance], now), 0) + 1
    assert progress.instances() == counted
    assert {k: v for k, v in progress.by_status.items() if v} == dict(collections.Counter(status.values()))
