"""The CLI as a user meets it: help, exit codes, validate formats, dry-run, plugins, schema."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchmig.cli import CliContext, main
from batchmig.testing import make_registry
from batchmig.testing.testcloud import TestcloudPlugin

HERE = Path(__file__).parent


def invoke(*args: str) -> tuple[int, str, str]:
    """The CLI with only the core's testcloud plugin: the registry comes in through click's obj."""
    result = CliRunner().invoke(main, list(args), obj=CliContext(registry=make_registry(TestcloudPlugin())))
    return result.exit_code, result.stdout, result.stderr


@pytest.mark.parametrize("command", [[], ["validate"], ["run"], ["resume"], ["status"], ["cutover"],
                                     ["plugins"], ["schema"], ["sandbox", "serve"]])
def test_every_command_has_help(command: list[str]) -> None:
    code, out, _ = invoke(*command, "--help")
    assert code == 0 and "Usage:" in out


def test_validate_exit_codes_and_json(plan_file) -> None:
    good = plan_file("version: 1\nproviders: {tc: {type: testcloud, region: r}}\ninstances: [{id: a, provider: tc}]\n")
    code, out, _ = invoke("validate", str(good))
    assert code == 0 and "valid" in out
    code, out, err = invoke("validate", str(HERE / "bad_plan.yaml"))
    assert code == 2 and err.count("bad_plan.yaml:") == 14 and "Traceback" not in err
    code, out, _ = invoke("validate", "--format", "json", str(HERE / "bad_plan.yaml"))
    data = json.loads(out)
    assert code == 2 and data["valid"] is False and len(data["problems"]) == 14
    assert {"file", "line", "column", "path", "message"} <= set(data["problems"][0])
    code, out, _ = invoke("validate", "--format", "csv", str(HERE / "bad_plan.yaml"))
    assert code == 2 and out.startswith("kind,where,message,instances") and out.count("\nproblem,") == 14


def test_dry_run_lists_calls_and_sends_nothing(plan_file, tmp_path: Path) -> None:
    plan = plan_file("version: 1\nproviders: {tc: {type: testcloud, region: r}}\n"
                     "instances: [{id: a, provider: tc, cutover: manual, settings: {incremental: true}}]\n")
    code, out, _ = invoke("run", "--dry-run", str(plan), "--runs-root", str(tmp_path / "runs"))
    assert code == 0
    assert "a dry run, nothing is sent" in out and "manual" in out and "estimated makespan" in out
    code, out, _ = invoke("run", "--dry-run", str(plan), "--format", "json", "--runs-root", str(tmp_path / "runs"))
    calls = json.loads(out)["instances"][0]["calls"]
    assert calls[0]["action"] == "CreateJob" and calls[0]["mutating"] and calls[1]["params"] == {"JobId": "<JobId>"}
    assert [c["step"] for c in calls if c["cutover"]] == ["complete-job"]
    assert not (tmp_path / "runs").exists()


def test_missing_credentials_is_a_usage_error_without_traceback(plan_file, tmp_path: Path) -> None:
    plan = plan_file("version: 1\nproviders: {tc: {type: testcloud, region: r}}\ninstances: [{id: a, provider: tc}]\n")
    code, _, err = invoke("run", str(plan), "--runs-root", str(tmp_path / "runs"), "--no-progress")
    assert code == 2 and "TESTCLOUD_KEY_ID" in err and "Traceback" not in err


def test_status_of_unknown_run(tmp_path: Path) -> None:
    code, _, err = invoke("status", "nope", "--runs-root", str(tmp_path))
    assert code == 2 and "no run 'nope'" in err


def test_schema_includes_provider_settings() -> None:
    code, out, _ = invoke("schema")
    schema = json.loads(out)
    assert code == 0 and "settings:testcloud" in schema["$defs"]
    assert "duration" in schema["$defs"]["settings:testcloud"]["properties"]


def test_plugins_lists_distribution(tmp_path: Path) -> None:
    code, out, _ = invoke("plugins")
    assert code == 0 and "testcloud" in out


def test_plugins_json_lists_hooks_versions_and_providers() -> None:
    code, out, _ = invoke("plugins", "--format", "json")
    data = json.loads(out)
    [entry] = data["plugins"]
    assert code == 0 and data["plugin_api"] == 1
    assert entry["hooks"] == ["batchmig_register_emulators", "batchmig_register_providers"]
    assert entry["api_versions"] == [1]
    assert [p["name"] for p in entry["providers"]] == ["testcloud"] and entry["emulators"] == ["testcloud"]


def test_installed_plugins_report_their_distribution_and_core_requirement() -> None:
    result = CliRunner().invoke(main, ["plugins", "--format", "json"], obj=CliContext())
    entries = {e["distribution"]: e for e in json.loads(result.stdout)["plugins"]}
    tencent = entries["batchmig-tencentcloud"]
    assert tencent["entry_point"] == "tencentcloud" and tencent["api_versions"] == [1]
    assert tencent["requires_batchmig"] and {p["name"] for p in tencent["providers"]} == {"tencent-sqlserver",
                                                                                          "tencent-dts"}


def test_a_run_end_to_end_through_the_cli(plan_file, tmp_path: Path) -> None:
    plan = plan_file("version: 1\nproviders: {tc: {type: testcloud, region: r}}\ndefaults: {provider: tc}\n"
                     "instances: [{id: a}, {id: b, settings: {fail: true}}]\n")
    proc = subprocess.run([sys.executable, str(HERE / "testcloud_cli.py"), "run", str(plan), "--sandbox",
                           "--time-scale", "600", "--runs-root", str(tmp_path / "runs")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "batchmig summary" in proc.stdout and "JobFailed" in proc.stdout
    run_id = next((tmp_path / "runs").iterdir()).name
    status = subprocess.run([sys.executable, str(HERE / "testcloud_cli.py"), "status", run_id,
                             "--runs-root", str(tmp_path / "runs"), "--format", "json"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=60)
    data = json.loads(status.stdout)
    assert data["counts"] == {"failed": 1, "succeeded": 1} and data["active"] is False


def test_schema_keeps_each_providers_nested_models_apart() -> None:
    """Two plugins with a nested model of the same name (Huawei's ``Tag``) must not overwrite each other."""
    from pydantic import BaseModel

    from batchmig.plan.schema import plan_schema
    from batchmig.plugin import ProviderSpec, hookimpl
    from batchmig.testing.testcloud import TestcloudProvider

    class Tag(BaseModel):
        colour: str

    class TaggedSettings(BaseModel):
        tag: Tag

    class TaggedProvider(TestcloudProvider):
        settings_model = TaggedSettings

    class Tagged:
        @hookimpl
        def batchmig_register_providers(self, registry) -> None:
            registry.add(ProviderSpec("tagged-cloud", TaggedProvider()))

    installed = CliContext().load()
    schema = plan_schema(make_registry(Tagged(), entry_points=True))
    defs = schema["$defs"]
    assert defs["tagged-cloud.Tag"]["properties"] == {"colour": {"title": "Colour", "type": "string"}}
    assert defs["settings:tagged-cloud"]["properties"]["tag"] == {"$ref": "#/$defs/tagged-cloud.Tag"}
    if "huawei-drs" in installed.providers:
        assert set(defs["huawei-drs.Tag"]["properties"]) == {"key", "value"}
    assert not any(ref.startswith("#/$defs/Tag") for ref in _refs(schema))


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []
