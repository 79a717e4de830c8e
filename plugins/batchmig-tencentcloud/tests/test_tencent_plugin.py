"""Registration through the entry point, provider metadata, dry-run builds, API hygiene."""

from __future__ import annotations

import ast
import importlib.metadata
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from batchmig.plugin import Call, CallStep, Instance, WaitItem, WaitStep
from batchmig.testing import FakeSandboxContext, make_registry, private_imports

import batchmig_tencentcloud
from batchmig_tencentcloud import plugin
from batchmig_tencentcloud.dts import DtsSettings
from batchmig_tencentcloud.emulator import DtsEmulator, SqlServerEmulator
from batchmig_tencentcloud.sqlserver import SqlServerSettings


def test_entry_point():
    [entry] = [e for e in importlib.metadata.entry_points(group="batchmig") if e.name == "tencentcloud"]
    assert entry.value == "batchmig_tencentcloud.plugin"
    assert entry.load() is plugin


def test_registration():
    registry = make_registry(plugin)
    assert {name: spec.emulator for name, spec in registry.providers.items()} == {
        "tencent-sqlserver": "tencent-sqlserver",
        "tencent-dts": "tencent-dts",
    }
    assert set(registry.emulators) == {"tencent-sqlserver", "tencent-dts"}
    assert registry.emulators["tencent-sqlserver"].demo_credentials == plugin.DEMO_CREDENTIALS
    dts = registry.emulators["tencent-dts"].demo_credentials
    assert dts == {**plugin.DEMO_CREDENTIALS, "source_password": "sandbox-source-pw",
                   "target_password": "sandbox-target-pw"}
    sandbox = FakeSandboxContext()
    assert isinstance(registry.emulators["tencent-sqlserver"].factory(sandbox), SqlServerEmulator)
    assert isinstance(registry.emulators["tencent-dts"].factory(sandbox), DtsEmulator)


def test_provider_metadata():
    registry = make_registry(plugin)
    for name in ("tencent-sqlserver", "tencent-dts"):
        provider = registry.provider(name)
        assert provider.credential_env == {
            "secret_id": "TENCENTCLOUD_SECRET_ID",
            "secret_key": "TENCENTCLOUD_SECRET_KEY",
            "session_token": "TENCENTCLOUD_SESSION_TOKEN",
        }
        assert tuple(provider.required_credentials) == ("secret_id", "secret_key")
        assert provider.options_model is not None
    sql = registry.provider("tencent-sqlserver").default_rate_limits
    assert sql["DescribeDBInstances"] == 70.0 and sql["CreateBackup"] == sql["StartBackupMigration"] == 20.0
    assert set(registry.provider("tencent-dts").default_rate_limits.values()) == {20.0}


class Placeholders(Mapping[str, Any]):
    """What a dry run hands ``build``: a placeholder for every output."""

    def __getitem__(self, key: str) -> str:
        return f"<{key}>"

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def test_every_step_builds_from_placeholders():
    registry = make_registry(plugin)
    sql = SqlServerSettings.model_validate(
        {"instance_id": "mssql-abcd1234", "scenario": "backup-then-import",
         "import": {"recovery_type": "FULL_DIFF", "backup_file": "https://b/f.bak",
                    "incremental_files": ["https://b/d1.bak"], "rename": {"a": "b"}}}
    )  # fmt: skip
    dts = DtsSettings.model_validate({"job_id": "dts-1kl0iy0v", "migrate_type": "full-incremental"})
    for name, settings in (("tencent-sqlserver", sql), ("tencent-dts", dts)):
        inst = Instance("db01", name, "tc", settings, token="abc")
        for step in registry.provider(name).steps(inst):
            if isinstance(step, CallStep):
                call = step.build(Placeholders())
                assert isinstance(call, Call) and call.mutating and step.reconcile is not None
            else:
                assert isinstance(step, WaitStep) and step.poller.example is not None
                assert isinstance(step.poller.example(WaitItem(inst, Placeholders(), step.context)), Call)


def test_a_created_job_names_the_database_passwords_it_needs():
    job = {"source": {"access_type": "extranet", "region": "ap-guangzhou", "ip": "203.0.113.9", "port": 1433,
                      "password_env": "DTS_SOURCE_PASSWORD"},
           "target": {"region": "ap-guangzhou", "instance_id": "mssql-4fb2l6tr", "password_credential": "target_pw"}}
    provider = make_registry(plugin).provider("tencent-dts")
    created = DtsSettings.model_validate({"migrate_type": "full", "job": job})
    given = DtsSettings.model_validate({"job_id": "dts-1kl0iy0v", "migrate_type": "full"})
    assert provider.required_secrets(Instance("a", "tencent-dts", "d", created)) == [
        "env:DTS_SOURCE_PASSWORD", "credential:target_pw"]
    assert provider.required_secrets(Instance("b", "tencent-dts", "d", given)) == ()


def test_only_the_public_batchmig_api_is_imported():
    assert private_imports([Path(batchmig_tencentcloud.__file__).parent, Path(__file__).parent]) == {}


def test_every_module_says_why_it_exists():
    package = Path(batchmig_tencentcloud.__file__).parent
    for path in package.rglob("*.py"):
        assert ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))), path
