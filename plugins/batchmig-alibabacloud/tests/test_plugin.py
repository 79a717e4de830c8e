"""Registration, the public-API boundary, the plan rules with their places, the templates, secrets."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
from batchmig.emulator import EmulatorSpec
from batchmig.plugin import ProviderSpec
from batchmig.testing import make_registry, run_plan, write_plan

import batchmig_alibabacloud
from batchmig_alibabacloud import plugin
from batchmig_alibabacloud.emulator import DEMO_CREDENTIALS
from batchmig_alibabacloud.provider import AlibabaRdsProvider

PLANS = Path(__file__).resolve().parents[3] / "plans"
TEMPLATES = sorted(PLANS.glob("alibaba-*.yaml"))
PUBLIC = {"batchmig", "batchmig.plugin", "batchmig.emulator", "batchmig.errors", "batchmig.testing",
          "batchmig.testing.conformance"}
OSS = "oss-cn-hangzhou.aliyuncs.com:bm-backups"


class Collect:
    def __init__(self) -> None:
        self.specs: list[Any] = []

    def add(self, spec: Any) -> None:
        self.specs.append(spec)


def test_hooks_register_the_provider_and_its_emulator() -> None:
    providers, emulators = Collect(), Collect()
    plugin.batchmig_register_providers(providers)
    plugin.batchmig_register_emulators(emulators)
    (provider,) = providers.specs
    (emulator,) = emulators.specs
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


def _imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def test_only_the_public_batchmig_api_is_imported() -> None:
    roots = [Path(batchmig_alibabacloud.__file__).parent, Path(__file__).parent]
    used = {module for root in roots for path in root.rglob("*.py") for module in _imports(path)}
    assert {module for module in used if module.split(".")[0] == "batchmig"} <= PUBLIC


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

BROKEN = [
    ("{instance_id: rm-bad0001, database: a, full: {oss_object: 'bucket/key.bak'}}",
     "instances.0.settings.full.oss_object", "should match pattern"),
    ("{instance_id: rm-bad0001, database: a, full: {oss_object: '%s:a.bak', urls: ['https://x/a.bak']}}" % OSS,
     "instances.0.settings.full", "either as oss_object"),
    ("{instance_id: rm-bad0001, database: a, full: {oss_object: '%s:a.bak'}, logs: [{oss_object: '%s:a.trn'}]}"
     % (OSS, OSS), "instances.0.settings.logs", "need mode: chain"),
    ("{instance_id: rm-bad0001, database: a, engine_version: 2008r2, full: {oss_object: '%s:a.bak'}}" % OSS,
     "instances.0.settings.full.oss_object", "2008 R2 takes backup files only by OSSUrls"),
    ("{instance_id: rm-bad0001, database: a, engine_version: '2019', full: {urls: ['https://b.example/a.bak']}}",
     "instances.0.settings.full.urls", "needs OssObjectPositions"),
    ("{instance_id: rm-bad0001, database: a, engine_version: 2008r2, mode: chain, full: {urls: ['https://b/a.bak']}}",
     "instances.0.settings.mode", "only one-shot"),
    ("{instance_id: rm-bad0001, database: a, mode: chain, full: {oss_object: '%s:a.bak'}, "
     "logs: [{oss_object: '%s:a.bak'}]}" % (OSS, OSS), "instances.0.settings.logs.0", "the same file as full"),
    ("{instance_id: rm-bad0001, database: msdb, full: {oss_object: '%s:a.bak'}}" % OSS,
     "instances.0.settings.database", "system database"),
    ("{instance_id: i-notrds, database: a, full: {oss_object: '%s:a.bak'}}" % OSS,
     "instances.0.settings.instance_id", "should match pattern"),
]


@pytest.mark.parametrize(("settings", "path", "message"), BROKEN, ids=[case[1] + ":" + case[2] for case in BROKEN])
def test_plan_rules_are_located_errors(tmp_path: Path, settings: str, path: str, message: str) -> None:
    plan = write_plan(tmp_path, PLAN + f"  - {{id: a, settings: {settings}}}\n")
    result = validate(plan)
    assert result.returncode == 2, result.stdout + result.stderr
    located = [line for line in (result.stdout + result.stderr).splitlines() if f" {path}:" in line]
    assert located and message in located[0] and f"{plan}:6:" in located[0], result.stdout + result.stderr


def test_one_database_is_migrated_by_one_instance(tmp_path: Path) -> None:
    same = "{instance_id: rm-dup00001, database: Sales, full: {oss_object: '%s:s.bak'}}" % OSS
    plan = write_plan(tmp_path, PLAN + f"  - {{id: a, settings: {same}}}\n  - {{id: b, settings: {same.lower()}}}\n")
    result = validate(plan)
    assert result.returncode == 2
    assert f"{plan}:7:" in result.stdout + result.stderr and "also migrated by instance a" in result.stdout + \
        result.stderr


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
