"""Registration, the public-API boundary, the plan rules with their places, the templates, secrets."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest
from batchmig import PlanError
from batchmig.emulator import EmulatorSpec
from batchmig.plugin import PlanProblem, ProviderSpec
from batchmig.testing import make_registry, private_imports, run_plan, write_plan

import batchmig_alibabacloud
from batchmig_alibabacloud import plugin
from batchmig_alibabacloud.emulator import DEMO_CREDENTIALS
from batchmig_alibabacloud.provider import AlibabaRdsProvider

PLANS = Path(__file__).resolve().parents[3] / "plans"
TEMPLATES = sorted(PLANS.glob("alibaba-*.yaml"))
OSS = "oss-cn-hangzhou.aliyuncs.com:bm-backups"


def test_hooks_register_the_provider_and_its_emulator() -> None:
    # Through the core's strict loader, as `batchmig` loads it (hook markers, names, types checked).
    registry = make_registry(plugin)
    (provider,) = registry.providers.values()
    (emulator,) = registry.emulators.values()
    assert isinstance(provider, ProviderSpec) and isinstance(emulator, EmulatorSpec)
    assert provider.name == emulator.name == provider.emulator == "alibaba-rds-sqlserver"
    assert isinstance(provider.provider, AlibabaRdsProvider)
    assert emulator.demo_credentials == DEMO_CREDENTIALS


def test_entry_point_is_declared() -> None:
    (found,) = [ep for ep in entry_points(group="batchmig") if ep.name == "alibabacloud"]
    assert found.value == "batchmig_alibabacloud.plugin"
    assert "alibaba-rds-sqlserver" in make_registry(entry_points=True).providers


def test_credentials_follow_the_official_cli() -> None:
    assert dict(AlibabaRdsProvider.credential_env) == {
        "access_key_id": "ALIBABA_CLOUD_ACCESS_KEY_ID",
        "access_key_secret": "ALIBABA_CLOUD_ACCESS_KEY_SECRET",
        "security_token": "ALIBABA_CLOUD_SECURITY_TOKEN",
    }


def test_only_the_public_batchmig_api_is_imported() -> None:
    assert private_imports([Path(batchmig_alibabacloud.__file__).parent, Path(__file__).parent]) == {}


def test_every_module_says_why_it_exists() -> None:
    for path in Path(batchmig_alibabacloud.__file__).parent.rglob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), path


def validate(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "batchmig", "validate", str(path)], capture_output=True, text=True,
                          check=False)


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_validate(path: Path) -> None:
    result = validate(path)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda p: p.name)
def test_templates_rehearse_in_the_sandbox(path: Path, tmp_path: Path) -> None:
    result = run_plan(path, make_registry(entry_points=True), tmp_path)
    expected = {"awaiting_cutover"} if "manual-cutover" in path.name else {"succeeded"}
    assert set(result.statuses.values()) == expected, result.report["instances"]
    assert result.duplicates() == {}
    assert not [e for e in result.audit if e.get("outcome") in ("rejected", "throttled")]


PLAN = """\
version: 1
providers:
  ali: {type: alibaba-rds-sqlserver, region: cn-hangzhou}
defaults: {provider: ali}
instances:
"""

FILE = f"{{oss_object: '{OSS}:a.bak'}}"
BROKEN = [
    ("{instance_id: rm-bad0001, database: a, full: {oss_object: 'bucket/key.bak'}}",
     "instances.0.settings.full.oss_object", "should match pattern"),
    (f"{{instance_id: rm-bad0001, database: a, full: {{oss_object: '{OSS}:a.bak', urls: ['https://x/a.bak']}}}}",
     "instances.0.settings.full", "either as oss_object"),
    (f"{{instance_id: rm-bad0001, database: a, full: {FILE}, logs: [{{oss_object: '{OSS}:a.trn'}}]}}",
     "instances.0.settings.logs", "need mode: chain"),
    (f"{{instance_id: rm-bad0001, database: a, engine_version: 2008r2, full: {FILE}}}",
     "instances.0.settings.full.oss_object", "2008 R2 takes backup files only by OSSUrls"),
    ("{instance_id: rm-bad0001, database: a, engine_version: '2019', full: {urls: ['https://b.example/a.bak']}}",
     "instances.0.settings.full.urls", "needs OssObjectPositions"),
    ("{instance_id: rm-bad0001, database: a, engine_version: 2008r2, mode: chain, full: {urls: ['https://b/a.bak']}}",
     "instances.0.settings.mode", "only one-shot"),
    (f"{{instance_id: rm-bad0001, database: a, mode: chain, full: {FILE}, logs: [{FILE}]}}",
     "instances.0.settings.logs.0", "the same file as full"),
    (f"{{instance_id: rm-bad0001, database: msdb, full: {FILE}}}", "instances.0.settings.database", "system database"),
    (f"{{instance_id: i-notrds, database: a, full: {FILE}}}", "instances.0.settings.instance_id",
     "should match pattern"),
]


def problems(tmp_path: Path, instances: str) -> list[PlanProblem]:
    """The located problems of a plan (loading it is the first thing a run does)."""
    plan = write_plan(tmp_path, PLAN + instances)
    with pytest.raises(PlanError) as refused:
        run_plan(plan, make_registry(plugin), tmp_path)
    return refused.value.problems


@pytest.mark.parametrize(("settings", "path", "message"), BROKEN, ids=[case[1] + ":" + case[2] for case in BROKEN])
def test_plan_rules_are_located_errors(tmp_path: Path, settings: str, path: str, message: str) -> None:
    found = problems(tmp_path, f"  - {{id: a, settings: {settings}}}\n")
    assert [(p.path, p.line) for p in found] == [(path, 6)], found
    assert message in found[0].message and found[0].file.endswith("plan.yaml")


def test_one_database_is_migrated_by_one_instance(tmp_path: Path) -> None:
    same = f"{{instance_id: rm-dup00001, database: Sales, full: {FILE}}}"
    found = problems(tmp_path, f"  - {{id: a, settings: {same}}}\n  - {{id: b, settings: {same.lower()}}}\n")
    assert [(p.path, p.line) for p in found] == [("instances.1.settings.database", 7)]
    assert "also migrated by instance a" in found[0].message


def test_the_access_key_secret_appears_in_no_output(tmp_path: Path) -> None:
    env = {**os.environ, "ALIBABA_CLOUD_ACCESS_KEY_ID": DEMO_CREDENTIALS["access_key_id"],
           "ALIBABA_CLOUD_ACCESS_KEY_SECRET": DEMO_CREDENTIALS["access_key_secret"]}
    run_dir = tmp_path / "run"
    command = [sys.executable, "-m", "batchmig", "-v", "run", str(PLANS / "alibaba-oss-full.yaml"), "--sandbox",
               "--time-scale", "3600", "--run-dir", str(run_dir), "--no-progress"]
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    secret = DEMO_CREDENTIALS["access_key_secret"]
    assert secret not in result.stdout + result.stderr
    written = [path for path in tmp_path.rglob("*") if path.is_file()]
    assert written and not [path for path in written if secret.encode() in path.read_bytes()]
