"""The dry run as a change-window plan: the simulation, its totals, every format, bounded memory."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc

import pytest

from batchmig.dryrun import ChangeWindow, dry_run
from batchmig.errors import PlanError
from batchmig.estimate import Timing
from batchmig.plan.loader import load_plan
from batchmig.registry import Registry
from batchmig.window import print_change_window

CLOUD = Timing(time_scale=1.0, call_seconds=0.0)


def plan_text(count: int, *, waves: str = "", defaults: str = "", settings: str = "{}") -> str:
    lines = ["version: 1", "providers: {tc: {type: testcloud, region: r}}",
             "defaults: {provider: tc, settings: {testcloud: {duration: 60}}" + defaults + "}", waves, "instances:"]
    lines += [f"  - {{id: db-{i:04d}, settings: {settings}}}" for i in range(count)]
    return "\n".join(line for line in lines if line) + "\n"


def estimate(plan_file, registry: Registry, text: str, timing: Timing = CLOUD):
    plan = load_plan(str(plan_file(text)), registry)
    window = ChangeWindow(plan, registry, "window-test", timing)
    items = list(window)
    return window.estimate, items


def test_the_caps_then_the_cloud_work_then_a_poll(plan_file, registry: Registry) -> None:
    result, items = estimate(plan_file, registry, plan_text(40))
    # 40 creates then 40 starts at 20/s spaced 1.05/20 s; then 60 s of work; a poll notices after 0.5 s on average
    assert result.rate_bound == pytest.approx(2.0)
    assert result.makespan == pytest.approx(40 * 1.05 / 20 + 60 + 0.5, abs=0.1)
    assert len(items) == 40 and all(0 <= i.start <= i.end <= result.makespan for i in items)
    (wave,) = result.waves
    assert (wave.instances, wave.calls, wave.mutating, wave.manual_gates) == (40, 80, 80, 0)
    assert {a.key[3]: (a.calls, a.rate) for a in result.actions} == {"CreateJob": (40, 20.0), "StartJob": (40, 20.0)}


def test_canaries_waves_and_concurrency_follow_the_engine(plan_file, registry: Registry) -> None:
    waves = "waves: [{name: one, canary: 1}, {name: two, max_concurrency: 10}]"
    text = plan_text(0, waves=waves).replace("instances:\n", "instances:\n" + "".join(
        f"  - {{id: i{i}, wave: {'one' if i < 5 else 'two'}}}\n" for i in range(25)))
    result, _ = estimate(plan_file, registry, text)
    one, two = result.waves
    assert one.seconds == pytest.approx(2 * 60.5, abs=0.5)  # the canary alone, then the other four together
    assert two.start == pytest.approx(one.end) and two.seconds == pytest.approx(2 * 60.5, abs=1.0)  # 20 by 10


def test_sandbox_time_the_plans_estimates_and_manual_gates(plan_file, registry: Registry) -> None:
    text = plan_text(3, defaults=", cutover: manual, estimates: {wait-job: 10m}", settings="{incremental: true}")
    result, items = estimate(plan_file, registry, text, Timing(time_scale=60, call_seconds=0.0))
    # 10 min of cloud work is 10 s in a sandbox at 60x, completing the emulator's 5 cloud seconds; polls
    # every 0.2 s (the poller's 1 s scaled, at least 0.2 s) notice each after 0.1 s; 9 calls at 20/s
    assert result.makespan == pytest.approx(10 + 5 / 60 + 2 * 0.1 + 0.1, abs=0.05)
    assert {i.instance.gate for i in items} == {"manual"} and result.waves[0].manual_gates == 3


def test_an_estimate_for_a_step_no_instance_has_is_located(plan_file, registry: Registry) -> None:
    with pytest.raises(PlanError) as caught:
        load_plan(str(plan_file(plan_text(1, defaults=", estimates: {wait-jobs: 5m}"))), registry)
    assert "defaults.estimates.wait-jobs" in str(caught.value.problems[0])


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_text_plan_fits_a_terminal_and_says_what_it_holds_back(plan_file, registry, monkeypatch) -> None:
    monkeypatch.setenv("LINES", "40")
    monkeypatch.setenv("COLUMNS", "160")
    plan = load_plan(str(plan_file(plan_text(300))), registry)
    out = Terminal()
    print_change_window(plan, registry, "text", CLOUD, "window-test", out=out)
    text = out.getvalue()
    assert len(text.splitlines()) <= 40 + 2, text
    assert "more (" in text and "in wave default) — use --all or --format json|csv" in text
    assert "db-0000" in text and "estimated makespan: " in text and "per wave" in text and "CreateJob" in text
    piped = io.StringIO()
    print_change_window(plan, registry, "text", CLOUD, "window-test", out=piped)
    assert piped.getvalue().count("db-") == 300 and "more" not in piped.getvalue()


def test_json_keeps_every_call_and_csv_every_instance(plan_file, registry: Registry) -> None:
    plan = load_plan(str(plan_file(plan_text(5, settings="{incremental: true}"))), registry)
    out = io.StringIO()
    print_change_window(plan, registry, "json", CLOUD, "window-test", out=out)
    data = json.loads(out.getvalue())
    first = data["instances"][0]
    assert [c["action"] for c in first["calls"]] == ["CreateJob", "StartJob", "DescribeJobs", "CompleteJob",
                                                     "DescribeJobs"]
    assert first["calls"][0]["params"]["Name"].startswith("bm-db-") and first["calls"][3]["cutover"] is True
    assert data["estimate"]["makespan_seconds"] > data["estimate"]["rate_bound_seconds"] > 0
    assert [w["wave"] for w in data["waves"]] == ["default"] and len(data["actions"]) == 3
    out = io.StringIO()
    print_change_window(plan, registry, "csv", CLOUD, "window-test", out=out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert len(rows) == 5 and rows[0]["mutating"] == "3" and rows[0]["gate"] == "auto"


def test_memory_stays_bounded_by_what_is_in_flight(plan_file, registry: Registry) -> None:
    def peak(count: int) -> int:
        text = plan_text(count).replace("defaults:", "run: {max_concurrency: 50}\ndefaults:")
        plan = load_plan(str(plan_file(text, name=f"p{count}.yaml")), registry)
        tracemalloc.start()
        try:
            for _ in ChangeWindow(plan, registry, "window-test", CLOUD):
                pass
            return tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    small, large = peak(500), peak(4000)
    assert large < 1.5 * small + 200_000, (small, large)  # not eight times as much: only 50 are held


def test_dry_run_in_memory_for_small_plans(plan_file, registry: Registry) -> None:
    plan = load_plan(str(plan_file(plan_text(2))), registry)
    listing, result = dry_run(plan, registry, "window-test")
    assert sorted(listing) == ["db-0000", "db-0001"] and result.instances == 2
