"""Registration through the entry point, and the plan templates in plans/."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from batchmig.emulator import EmulatorSpec
from batchmig.plugin import ProviderSpec
from batchmig.testing import make_registry, run_plan

from batchmig_huaweicloud import plugin
from batchmig_huaweicloud.demo import DEMO_CREDENTIALS
from batchmig_huaweicloud.provider import DrsProvider

PLANS = Path(__file__).resolve().parents[3] / "plans"
TEMPLATES = sorted(PLANS.glob("huawei-*.yaml"))


def test_hooks_register_the_provider_and_its_emulator() -> None:
    # Through the core's strict loader, as `batchmig` loads it (hook markers, names, types checked).
    registry = make_registry(plugin)
    (provider,) = registry.providers.values()
    (emulator,) = registry.emulators.values()
    assert isinstance(provider, ProviderSpec) and isinstance(emulator, EmulatorSpec)
    assert provider.name == "huawei-drs" and provider.emulator == emulator.name == "huawei-drs"
    assert isinstance(provider.provider, DrsProvider)
    assert set(emulator.demo_credentials) >= {"ak", "sk", "project_id"}
    assert emulator.demo_credentials == DEMO_CREDENTIALS


def test_entry_point_is_declared() -> None:
    (found,) = [ep for ep in entry_points(group="batchmig") if ep.name == "huaweicloud"]
    assert found.value == "batchmig_huaweicloud.plugin"
    assert "huawei-drs" in make_registry(entry_points=True).providers


def test_credentials_follow_the_sdk_environment_variables() -> None:
    env = DrsProvider.credential_env
    assert (env["ak"], env["sk"], env["project_id"]) == (
        "HUAWEICLOUD_SDK_AK",
        "HUAWEICLOUD_SDK_SK",
        "HUAWEICLOUD_SDK_PROJECT_ID",
    )


def test_there_is_a_template_per_scenario() -> None:
    names = {path.stem for path in TEMPLATES}
    assert names >= {"huawei-obs-full", "huawei-obs-incremental-manual-cutover", "huawei-rds-full"}


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_validate(path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "batchmig", "validate", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_rehearse_in_the_sandbox(path: Path, tmp_path: Path) -> None:
    result = run_plan(path, make_registry(entry_points=True), tmp_path)
    manual = "manual-cutover" in path.name
    expected = {"awaiting_cutover"} if manual else {"succeeded"}
    assert set(result.statuses.values()) == expected, result.report["instances"]
    assert result.duplicates() == {}
    assert not [e for e in result.audit if e.get("outcome") in ("rejected", "throttled")]
