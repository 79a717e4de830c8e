"""Every plan in plans/ validates against the installed providers, so examples never rot."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchmig.dryrun import dry_run
from batchmig.plan.loader import load_plan
from batchmig.registry import Registry

PLANS = sorted((Path(__file__).resolve().parent.parent / "plans").glob("*.yaml"))


@pytest.mark.parametrize("path", PLANS, ids=lambda p: p.name)
def test_example_plan_is_valid_and_dry_runs(path: Path, installed_registry: Registry) -> None:
    missing = {p for p in ("tencent-sqlserver", "tencent-dts", "huawei-drs") if p not in installed_registry.providers}
    text = path.read_text()
    if any(name in text for name in missing):
        pytest.skip(f"providers not installed: {sorted(missing)}")
    plan = load_plan(str(path), installed_registry)
    listing, estimate = dry_run(plan, installed_registry)
    assert len(listing) == len(plan.instances) > 0
    assert estimate["rate_bound_seconds"] > 0


def test_the_demo_fleet_exists() -> None:
    assert any(p.name == "demo-fleet.yaml" for p in PLANS)
