"""The operator's commands: runs and `latest`, status listings, batchmig.toml, environment checks."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from batchmig.config import load_config
from batchmig.errors import UsageError
from batchmig.registry import Registry
from batchmig.report.csv import COLUMNS as REPORT_CSV_COLUMNS
from batchmig.testing import run_plan

PLAN = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
defaults: {provider: tc, settings: {testcloud: {duration: 5}}}
waves: [{name: one, canary: 1}, {name: two}]
instances:
  - {id: canary, wave: one, settings: {fail: true}}
"""


def fleet(count: int) -> str:
    return PLAN + "".join(f"  - {{id: db-{i:03d}, wave: two, tags: {{team: t{i % 2}}}}}\n" for i in range(count))


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.chdir(tmp_path)


def test_status_lists_every_instance_off_a_terminal(cli, plan_file, registry: Registry, tmp_path: Path) -> None:
    run_plan(plan_file(fleet(80)), registry, tmp_path)
    code, out, _ = cli("status", "latest", "--runs-root", "runs")
    assert code == 0 and out.count("skipped") >= 80 and "more" not in out
    assert "81 instances: 1 failed, 80 skipped" in out
    code, out, _ = cli("status", "@last", "--runs-root", "runs", "--format", "csv", "--tag", "team=t1")
    reader = csv.DictReader(io.StringIO(out))
    rows = list(reader)
    assert code == 0 and len(rows) == 40 and rows[0]["error_code"] == "Skipped" and rows[0]["tags"] == "team=t1"
    assert tuple(reader.fieldnames or ()) == REPORT_CSV_COLUMNS  # one CSV layout: status and report agree
    code, out, _ = cli("status", "latest", "--runs-root", "runs", "--format", "json", "--status", "failed")
    data = json.loads(out)
    assert [i["id"] for i in data["instances"]] == ["canary"] and data["selection"] == "--status failed"
    code, _, err = cli("status", "latest", "--runs-root", "runs", "--wave", "three")
    assert code == 2 and "--wave three" in err and "one, two" in err


def test_runs_lists_newest_first_and_records_a_failed_start(cli, plan_file, registry: Registry, tmp_path: Path) -> None:
    plan = plan_file(fleet(3))
    first = run_plan(plan, registry, tmp_path)
    code, _, err = cli("run", str(plan), "--runs-root", "runs", "--no-progress")  # no credentials
    assert code == 2 and "TESTCLOUD_KEY_ID" in err and "kept as not started" in err
    code, out, _ = cli("runs", "--runs-root", "runs", "--format", "json")
    runs = json.loads(out)
    assert code == 0 and [r["state"] for r in runs] == ["not_started", "failed"]
    assert runs[1]["run"] == first.outcome.run_id and runs[1]["sandbox"] == "yes"
    assert "credentials not set" in runs[0]["detail"] and runs[0]["counts"] == "4 pending"
    code, out, _ = cli("status", "latest", "--runs-root", "runs", "--format", "json")
    data = json.loads(out)
    assert data["state"] == "not_started" and "TESTCLOUD_KEY_ID" in data["start_error"]
    code, out, _ = cli("runs", "--runs-root", "runs")
    assert code == 0 and "not_started" in out and first.outcome.run_id in out


def test_latest_without_runs_is_a_usage_error(cli) -> None:
    code, _, err = cli("status", "latest", "--runs-root", "nowhere")
    assert code == 2 and "no run in nowhere yet" in err


def test_config_files_set_defaults_and_help_says_where_from(cli, tmp_path: Path, plan_file, registry) -> None:
    user = tmp_path / "xdg" / "batchmig" / "batchmig.toml"
    user.parent.mkdir(parents=True)
    user.write_text('format = "json"\nruns_root = "/nonexistent"\n')
    (tmp_path / "project").mkdir()
    (tmp_path / "batchmig.toml").write_text('runs_root = "store/runs"\n')
    config = load_config(project=None)
    assert config["format"] == "json" and config.setting("format").source == str(user)
    assert config["runs_root"] == str(tmp_path / "store" / "runs")  # the project's wins, relative to its file
    code, out, _ = cli("status", "--help")
    assert code == 0 and f"(from{tmp_path / 'batchmig.toml'})" in "".join(out.split())
    run_plan(plan_file(fleet(2)), registry, tmp_path / "store")
    code, out, _ = cli("runs")
    assert code == 0 and json.loads(out)[0]["state"] == "failed"  # json and the project's runs root
    code, out, _ = cli("config")
    assert "format" in out and str(user) in out


@pytest.mark.parametrize(("text", "message"), [
    ("format = 'xml'", "format must be one of text, json, csv"),
    ("color = true", "unknown key 'color'"),
    ("durable = 'yes'", "durable must be a boolean"),
    ("runs_root = ", "not valid TOML"),
])
def test_a_bad_config_file_is_named(cli, tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "batchmig.toml").write_text(text + "\n")
    with pytest.raises(UsageError, match=message):
        load_config()
    code, _, err = cli("runs")
    assert code == 2 and message in err and "batchmig.toml" in err


ENV_PLAN = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
  pw:
    type: pwcloud
    region: eu-1
    credentials: {key_id: "${env:PW_KEY_ID}", secret: "${env:PW_SECRET}", db_token: "${file:/nonexistent/token}"}
instances:
  - {id: a, provider: tc}
  - {id: b, provider: pw}
  - {id: c, provider: pw}
"""


def test_validate_env_names_every_missing_variable_at_once(cli, plan_file, monkeypatch) -> None:
    for name in ("TESTCLOUD_KEY_ID", "TESTCLOUD_SECRET", "PW_KEY_ID", "PW_SECRET", "TC_DB_PASSWORD"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("PW_KEY_ID", "set")
    plan = str(plan_file(ENV_PLAN))
    code, out, _ = cli("validate", plan, "--env")
    assert code == 2
    for missing in ("environment variable TESTCLOUD_KEY_ID", "environment variable TESTCLOUD_SECRET",
                    "environment variable PW_SECRET", "environment variable TC_DB_PASSWORD",
                    "cannot read the credential file /nonexistent/token"):
        assert missing in out
    assert "PW_KEY_ID" not in out and "environment: 5 missing" in out
    code, out, _ = cli("validate", plan, "--env", "--format", "json")
    missing = {m["source"]: m for m in json.loads(out)["missing"]}
    assert code == 2 and missing["environment variable TC_DB_PASSWORD"]["instances"] == 2
    code, out, _ = cli("validate", plan, "--env", "--format", "csv")
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 2 and len(rows) == 5 and {r["kind"] for r in rows} == {"missing"}
    # in the sandbox the emulator's demo keys sign: only the database secrets are still needed
    code, out, _ = cli("validate", plan, "--env", "--sandbox")
    assert code == 2 and "TESTCLOUD_KEY_ID" not in out and "PW_SECRET" not in out and "TC_DB_PASSWORD" in out
    monkeypatch.setenv("TC_DB_PASSWORD", "pw")
    token = plan_file("tok", name="token")
    fixed = plan_file(ENV_PLAN.replace("/nonexistent/token", str(token)), name="p2.yaml")
    code, out, _ = cli("validate", str(fixed), "--env", "--sandbox")
    assert code == 0 and "every credential and secret" in out


def test_check_covers_every_provider_in_one_pass(cli, plan_file, monkeypatch) -> None:
    monkeypatch.delenv("TC_DB_PASSWORD", raising=False)
    code, out, _ = cli("run", str(plan_file(ENV_PLAN)), "--check", "--sandbox", "--time-scale", "600")
    assert code == 1
    assert "environment variable TC_DB_PASSWORD" in out and "cannot read the credential file" in out
    assert "pre-flight: 1 ready, 0 with problems, 2 not checked" in out


def test_a_busy_port_or_an_unusable_directory_is_an_ordinary_error(cli, tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, _, err = cli("sandbox", "serve", "--port", str(port), "--dir", str(tmp_path / "box"))
    assert code == 2 and "is in use by another program" in err and "--port 0" in err and "internal" not in err
    (tmp_path / "file").write_text("x")
    code, _, err = cli("sandbox", "serve", "--port", "0", "--dir", str(tmp_path / "file" / "box"))
    assert code == 2 and "cannot use the sandbox directory" in err and "internal" not in err


def test_an_os_error_reaching_the_cli_is_not_called_internal(capsys: pytest.CaptureFixture[str]) -> None:
    from batchmig.cli import _fail

    with pytest.raises(SystemExit) as exited:
        _fail(OSError(28, "No space left on device", "/runs/r/report.json"), verbose=False)
    err = capsys.readouterr().err
    assert exited.value.code == 2 and "error: No space left on device: /runs/r/report.json" in err
    assert "internal" not in err and "hint:" in err
