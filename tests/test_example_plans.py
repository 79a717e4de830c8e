"""Every plan in plans/ is true: it validates, passes the JSON Schema, dry-runs, and
rehearses to the end in the sandbox, so the templates never rot."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batchmig.dryrun import dry_run
from batchmig.plan.loader import load_plan
from batchmig.plan.schema import plan_schema
from batchmig.registry import Registry

jsonschema = pytest.importorskip("jsonschema")
yaml = pytest.importorskip("yaml")

PLANS = sorted((Path(__file__).resolve().parent.parent / "plans").glob("*.yaml"))
NEEDED = ("tencent-sqlserver", "tencent-dts", "huawei-drs")


@pytest.fixture
def registry(installed_registry: Registry) -> Registry:
    missing = [p for p in NEEDED if p not in installed_registry.providers]
    if missing:
        pytest.skip(f"providers not installed: {missing}")
    return installed_registry


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_example_plan_is_valid_and_dry_runs(path: Path, registry: Registry) -> None:
    plan = load_plan(str(path), registry)
    listing, estimate = dry_run(plan, registry, "example")
    assert len(listing) == len(plan.instances) > 0
    assert estimate.rate_bound > 0 and estimate.makespan > estimate.rate_bound
    validator = jsonschema.Draft202012Validator(plan_schema(registry))
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}"
              for e in validator.iter_errors(yaml.safe_load(path.read_text(encoding="utf-8")))]
    assert not errors, errors


def batchmig(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "batchmig", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300)


def report(runs: Path) -> dict[str, Any]:
    (run_dir,) = runs.iterdir()
    data: dict[str, Any] = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    return data


@pytest.mark.slow
@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_example_plan_rehearses_to_the_end_in_the_sandbox(path: Path, registry: Registry, tmp_path: Path) -> None:
    """`run --sandbox` as a user would; a plan that stops at a manual cutover is released."""
    runs = tmp_path / "runs"
    result = batchmig("run", str(path), "--sandbox", "--time-scale", "3000", "--runs-root", str(runs),
                      "--no-progress", cwd=tmp_path)
    assert result.returncode in (0, 4), result.stderr[-3000:]
    if result.returncode == 4:
        (run_dir,) = runs.iterdir()
        result = batchmig("cutover", run_dir.name, "--all", "--runs-root", str(runs), cwd=tmp_path)
        assert result.returncode == 0, result.stderr[-3000:]
    statuses = {entry["id"]: entry["status"] for entry in report(runs)["instances"]}
    assert set(statuses.values()) == {"succeeded"}, statuses


def test_the_demo_fleet_exists() -> None:
    assert any(p.name == "demo-fleet.yaml" for p in PLANS)
