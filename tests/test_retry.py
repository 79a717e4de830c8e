"""batchmig retry: failed and skipped instances run again inside the run, nothing effective repeated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchmig.errors import UsageError
from batchmig.registry import Registry
from batchmig.retry import request_retry
from batchmig.rundir import run_lock
from batchmig.sandbox.machinery import duplicate_effects, read_audit
from batchmig.selection import Selection
from batchmig.testing import run_plan

SECRET_VARIABLE = "TC_DB_PASSWORD"  # what conftest's pwcloud provider reads

PLAN = """\
version: 1
providers:
  pw: {type: pwcloud, region: eu-1, credentials: {db_token: "${env:TC_DB_PASSWORD}"}}
defaults: {provider: pw, settings: {pwcloud: {duration: 10}}}
waves:
  - {name: canary, canary: 1, failure_budget: 0}
  - {name: main}
instances:
  - {id: canary-1, wave: canary}
  - {id: c-2, wave: canary}
  - {id: m-1, wave: main}
  - {id: m-2, wave: main}
  - {id: m-3, wave: main}
  - {id: broken-job, wave: main, settings: {fail: true}}
"""


def test_canary_broken_by_a_missing_secret_then_retry_skipped(
    cli, plan_file, secret_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(SECRET_VARIABLE, raising=False)
    first = run_plan(plan_file(PLAN), secret_registry, tmp_path)
    canary = first.outcome.run_report.instances[0]
    assert canary.status == "failed" and canary.error is not None and canary.error.code == "MissingSecret"
    assert {s for i, s in first.statuses.items() if i != "canary-1"} == {"skipped"}
    monkeypatch.setenv(SECRET_VARIABLE, "fixed")
    runs = str(tmp_path / "runs")
    code, out, err = cli("retry", "latest", "--status", "skipped", "--runs-root", runs, "--no-progress")
    assert "retrying 5: c-2, m-1, m-2, m-3, broken-job" in err
    assert "also retrying 1 failed canary(ies) the selected instances wait for: canary-1" in err
    assert code == 1, err  # broken-job's cloud job fails; everything else ran
    audit = list(read_audit(first.outcome.run_dir / "sandbox" / "audit.jsonl"))
    assert duplicate_effects(audit) == {}
    created = [e for e in audit if e["action"] == "CreateJob" and e.get("changed")]
    assert len(created) == 6  # one per instance: the canary's first create never left (no secret)
    code, out, _ = cli("status", "latest", "--runs-root", runs, "--format", "json")
    report = json.loads(out)
    assert report["counts"] == {"failed": 1, "succeeded": 5}
    (request,) = report["requests"]
    assert request["kind"] == "retry" and request["selection"] == "--status skipped" and request["instances"] == 6
    written = json.loads((first.outcome.run_dir / "report.json").read_text())
    assert written["invocations"][-1]["command"] == "retry" and written["requests"] == report["requests"]
    # a failed instance starts again where it stopped: its job is polled again, never created again
    code, out, err = cli("retry", "latest", "--select", "broken-job", "--select", "m-1", "--runs-root", runs,
                            "--no-progress")
    assert "retrying 1: broken-job" in err and "not retried (succeeded" in err and code == 1
    audit = list(read_audit(first.outcome.run_dir / "sandbox" / "audit.jsonl"))
    assert duplicate_effects(audit) == {} and len([e for e in audit if e["action"] == "CreateJob"]) == 6


def test_nothing_to_retry_and_a_busy_run(cli, plan_file, secret_registry: Registry, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SECRET_VARIABLE, "set")
    result = run_plan(plan_file(PLAN.replace("settings: {fail: true}", "settings: {}")), secret_registry, tmp_path)
    assert set(result.statuses.values()) == {"succeeded"}
    code, _, err = cli("retry", "latest", "--runs-root", str(tmp_path / "runs"))
    assert code == 1 and "nothing to retry" in err
    code, _, err = cli("retry", "latest", "--wave", "main", "--runs-root", str(tmp_path / "runs"))
    assert code == 1 and "not retried (succeeded: only failed and skipped instances are): m-1, m-2" in err
    with run_lock(result.outcome.run_dir), pytest.raises(UsageError, match="another batchmig process"):
        request_retry(result.outcome.run_dir, secret_registry, Selection())
