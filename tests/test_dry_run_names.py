"""A dry run lists the calls of the run that follows it: the same calls, names included.

Names of what batchmig creates derive from the run id. The dry run used to name
everything after the literal id ``dry-run``, so the names it printed were never the
names a run created; now it prints the run id it used and ``run --run-id`` takes it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchmig.cli import CliContext, main
from batchmig.dryrun import dry_run
from batchmig.plan.loader import load_plan
from batchmig.registry import Registry
from batchmig.testing import SandboxConfig, make_registry, record_calls, run_plan, unmatched_calls
from batchmig.testing.testcloud import TestcloudPlugin

DEMO = Path(__file__).resolve().parent.parent / "plans" / "demo-fleet.yaml"


def test_the_demo_fleets_dry_run_and_sandbox_run_make_the_same_calls(tmp_path: Path,
                                                                     installed_registry: Registry) -> None:
    if not {"tencent-sqlserver", "tencent-dts", "huawei-drs", "alibaba-rds-sqlserver"} <= set(
            installed_registry.providers):
        pytest.fail("the demo fleet needs the Tencent, Huawei and Alibaba plugins installed (tox installs them)")
    plan = load_plan(str(DEMO), installed_registry)
    listing, _ = dry_run(plan, installed_registry, "demo-rehearsal-1")
    with record_calls(installed_registry) as calls:
        result = run_plan(DEMO, installed_registry, tmp_path, run_id="demo-rehearsal-1",
                          sandbox_config=SandboxConfig(time_scale=600))
    assert result.outcome.run_id == "demo-rehearsal-1"
    assert set(result.statuses.values()) <= {"succeeded", "awaiting_cutover"}, result.statuses
    assert unmatched_calls(listing, calls) == []
    listed = sum(1 for steps in listing.values() for call in steps if call.mutating)
    assert listed == len({(c.action, json.dumps(c.params, sort_keys=True)) for c in calls if c.mutating})


def test_a_dry_run_under_another_run_id_names_differently(installed_registry: Registry) -> None:
    plan = load_plan(str(DEMO), installed_registry)
    first, _ = dry_run(plan, installed_registry, "run-a")
    second, _ = dry_run(plan, installed_registry, "run-b")
    assert first != second  # names differ: the listing is of one particular run


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), obj=CliContext(registry=make_registry(TestcloudPlugin())))
    return result.exit_code, result.stdout, result.stderr


def test_the_cli_prints_the_run_id_and_run_takes_it(plan_file, tmp_path: Path) -> None:
    plan = plan_file("version: 1\nproviders: {tc: {type: testcloud, region: r}}\ninstances: [{id: a, provider: tc}]\n")
    code, out, _ = invoke("run", str(plan), "--dry-run", "--format", "json")
    minted = json.loads(out)["run_id"]
    assert code == 0 and minted.startswith("plan-")
    code, out, _ = invoke("run", str(plan), "--dry-run", "--run-id", "rehearsed-7")
    assert code == 0 and f"`batchmig run {plan} --run-id rehearsed-7` makes exactly these calls" in out
    code, out, _ = invoke("run", str(plan), "--dry-run", "--run-id", "rehearsed-7", "--format", "json")
    document = json.loads(out)
    [instance] = document["instances"]
    assert document["run_id"] == "rehearsed-7"
    [name] = [c["params"]["Name"] for c in instance["calls"] if c["action"] == "CreateJob"]
    registry = make_registry(TestcloudPlugin())
    result = run_plan(plan, registry, tmp_path, run_id="rehearsed-7")
    assert result.statuses == {"a": "succeeded"}
    assert [e["resource"] for e in result.audit if e.get("changed") and e["action"] == "CreateJob"] == [name]


def test_a_run_id_is_checked_and_never_reused(plan_file, tmp_path: Path) -> None:
    plan = plan_file("version: 1\nproviders: {tc: {type: testcloud, region: r}}\ninstances: [{id: a, provider: tc}]\n")
    code, _, err = invoke("run", str(plan), "--run-id", "../escape", "--runs-root", str(tmp_path / "runs"))
    assert code == 2 and "invalid run id" in err
    run_plan(plan, make_registry(TestcloudPlugin()), tmp_path, run_id="once")
    runs = str(tmp_path / "runs")
    code, _, err = invoke("run", str(plan), "--sandbox", "--run-id", "once", "--runs-root", runs, "--no-progress")
    assert code == 2 and "already holds a run" in err
    code, _, err = invoke("run", str(plan), "--sandbox", "--run-id", "once", "--runs-root", runs, "--no-progress",
                          "--run-dir", str(tmp_path / "elsewhere"))
    assert code == 2 and "was used before" in err  # its names would adopt the first run's resources
