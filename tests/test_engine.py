"""The engine over loopback against the sandbox: outcomes, waves, cutover, faults, resume."""

from __future__ import annotations

import gc
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from batchmig.cutover import release_selected
from batchmig.errors import ExitCode, UsageError
from batchmig.registry import Registry
from batchmig.sandbox.config import SandboxConfig
from batchmig.selection import Selection
from batchmig.testing import run_plan

HERE = Path(__file__).parent
HEADER = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
defaults: {provider: tc}
run: {retry: {base_delay: 0.05, max_delay: 0.5}}
"""


def fleet(count: int, extra: str = "", settings: str = "{duration: 30}") -> str:
    lines = [HEADER + extra, "instances:"]
    lines += [f"  - {{id: db-{i:03d}, settings: {settings}}}" for i in range(count)]
    return "\n".join(lines) + "\n"


def test_a_fleet_succeeds_within_the_caps(plan_file, registry: Registry, tmp_path: Path) -> None:
    thresholds = gc.get_threshold()
    result = run_plan(plan_file(fleet(60)), registry, tmp_path)
    assert gc.get_threshold() == thresholds, "the runner's collector settings end with its run"
    assert result.outcome.exit_code == ExitCode.OK
    assert set(result.statuses.values()) == {"succeeded"}
    assert result.duplicates() == {}
    assert max(result.max_per_second().values()) <= 20
    entry = result.report["instances"][0]
    assert entry["remote_ids"]["JobId"].startswith("job-")
    assert [s["name"] for s in entry["steps"]] == ["create-job", "start-job", "wait-job"]
    assert all(s["status"] == "succeeded" and s["ended"] >= s["started"] for s in entry["steps"])
    calls = result.report["calls"]["calls_by_action"]
    assert calls["CreateJob"] == calls["StartJob"] == 60
    assert result.report["polls"]["jobs"] > calls["DescribeJobs"], "polls must be batched"
    assert stat.S_IMODE(os.stat(result.outcome.run_dir / "journal.sqlite").st_mode) == 0o600


def test_failures_are_isolated_and_explained(plan_file, registry: Registry, tmp_path: Path) -> None:
    text = fleet(6) + "  - {id: bad-job, settings: {fail: true}}\n  - {id: refused, settings: {reject: true}}\n"
    result = run_plan(plan_file(text), registry, tmp_path)
    assert result.outcome.exit_code == ExitCode.FAILED
    by_id = {e["id"]: e for e in result.report["instances"]}
    assert by_id["bad-job"]["status"] == "failed" and by_id["bad-job"]["error"]["code"] == "JobFailed"
    refused = by_id["refused"]["error"]
    assert refused["code"] == "InvalidParameterValue" and refused["request_id"] and refused["step"] == "create-job"
    assert sum(1 for s in result.statuses.values() if s == "succeeded") == 6


def test_canary_failure_stops_the_wave_and_later_waves(plan_file, registry: Registry, tmp_path: Path) -> None:
    text = HEADER.replace("defaults: {provider: tc}", "defaults: {provider: tc, settings: {testcloud: {duration: 5}}}")
    text += """\
waves:
  - {name: one, canary: 1}
  - {name: two}
instances:
  - {id: canary, wave: one, settings: {fail: true}}
  - {id: a, wave: one}
  - {id: b, wave: two}
"""
    result = run_plan(plan_file(text), registry, tmp_path)
    assert result.statuses == {"canary": "failed", "a": "skipped", "b": "skipped"}
    skipped = next(e for e in result.report["instances"] if e["id"] == "b")
    assert "canary" in skipped["error"]["message"]


def test_failure_budget_stops_new_starts(plan_file, registry: Registry, tmp_path: Path) -> None:
    text = HEADER + """\
waves:
  - {name: w, max_concurrency: 1, failure_budget: 1}
instances:
""" + "".join(f"  - {{id: f{i}, wave: w, settings: {{fail: true, duration: 5}}}}\n" for i in range(4))
    result = run_plan(plan_file(text), registry, tmp_path)
    assert list(result.statuses.values()) == ["failed", "failed", "skipped", "skipped"]


def test_manual_cutover_waits_then_resumes_after_release(plan_file, registry: Registry, tmp_path: Path) -> None:
    text = fleet(2) + "  - {id: gated, cutover: manual, settings: {incremental: true, duration: 10}}\n"
    plan = plan_file(text)
    first = run_plan(plan, registry, tmp_path)
    assert first.outcome.exit_code == ExitCode.AWAITING_CUTOVER
    assert first.statuses["gated"] == "awaiting_cutover"
    assert not any(e["action"] == "CompleteJob" for e in first.audit)
    answers, request = release_selected(first.outcome.run_dir, registry, Selection.parse(ids=["gat*"]))
    assert [(a.instance, a.outcome) for a in answers] == [("gated", "released")] and request
    second = run_plan(plan, registry, tmp_path, resume=first.outcome.run_id)
    assert second.outcome.exit_code == ExitCode.OK
    assert second.statuses["gated"] == "succeeded"
    assert sum(1 for e in second.audit if e["action"] == "CompleteJob" and e.get("changed")) == 1
    assert second.duplicates() == {}


def test_dropped_answers_internal_errors_and_latency(plan_file, registry: Registry, tmp_path: Path) -> None:
    faults = [
        {"kind": "drop", "mutating_only": True, "probability": 0.3},
        {"kind": "error", "code": "InternalError", "probability": 0.05},
        {"kind": "latency", "seconds": 0.2, "probability": 0.05},
    ]
    config = SandboxConfig(600, seed=3, faults=faults)
    result = run_plan(plan_file(fleet(40)), registry, tmp_path, sandbox_config=config)
    outcomes = {e["outcome"] for e in result.audit}
    assert {"dropped", "fault:InternalError"} <= outcomes
    assert set(result.statuses.values()) == {"succeeded"}
    assert result.duplicates() == {}
    calls = result.report["calls"]
    assert calls["reconciled"] >= 1 and calls["retries"] >= 1 and calls["unknown_outcomes"] >= 1


def test_a_create_answered_too_late_is_not_sent_twice(plan_file, registry: Registry, tmp_path: Path) -> None:
    """The cloud acts on a create 1.3 s after it arrived, 0.3 s after the client gave up:
    looked up at once, it is not there yet; looked up a call timeout later, it is."""
    text = fleet(3).replace("run: {retry: {base_delay: 0.05, max_delay: 0.5}}",
                            "run: {call_timeout: 1s, retry: {base_delay: 0.05, max_delay: 0.5}}")
    faults = [{"kind": "hang", "seconds": 1.3, "action": "CreateJob", "count": 1}]
    result = run_plan(plan_file(text), registry, tmp_path, sandbox_config=SandboxConfig(600, faults=faults))
    assert set(result.statuses.values()) == {"succeeded"}
    assert result.duplicates() == {}
    assert sum(1 for e in result.audit if e.get("action") == "CreateJob" and e.get("changed")) == 3
    assert result.report["calls"]["unknown_outcomes"] == 1 and result.report["calls"]["reconciled"] == 1


def test_throttles_slow_the_key_and_are_survived(plan_file, registry: Registry, tmp_path: Path) -> None:
    text = fleet(30).replace("tc: {type: testcloud, region: eu-1}",
                             "tc: {type: testcloud, region: eu-1, rate_limits: {'*': 100}}")
    result = run_plan(plan_file(text), registry, tmp_path,
                      sandbox_config=SandboxConfig(600, rate_limits={"testcloud": {"*": 5}}))
    assert set(result.statuses.values()) == {"succeeded"}
    assert result.report["calls"]["throttled"] > 0
    create = next(v for k, v in result.report["rate_limits"].items() if k.endswith("/CreateJob"))
    assert create["throttled"] > 0


def test_a_step_timeout_fails_the_instance(plan_file, registry: Registry, tmp_path: Path) -> None:
    text = fleet(1, settings="{duration: 3600}").replace("defaults: {provider: tc}",
                                                          "defaults: {provider: tc, timeouts: {wait-job: 1s}}")
    result = run_plan(plan_file(text), registry, tmp_path)
    error = result.report["instances"][0]["error"]
    assert error["code"] == "StepTimeout" and error["step"] == "wait-job"


def test_a_changed_plan_is_refused_on_resume(plan_file, registry: Registry, tmp_path: Path) -> None:
    plan = plan_file(fleet(1) + "  - {id: gated, cutover: manual, settings: {incremental: true}}\n")
    first = run_plan(plan, registry, tmp_path)
    plan.write_text(plan.read_text() + "  - {id: extra}\n")
    with pytest.raises(UsageError, match="changed"):
        run_plan(plan, registry, tmp_path, resume=first.outcome.run_id)


# ------------------------------------------------------------ subprocess runs


def cli(*args: str, cwd: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, str(HERE / "testcloud_cli.py"), *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def audit_of(run_dir: Path) -> list[dict]:
    from batchmig.sandbox.machinery import read_audit

    return list(read_audit(run_dir / "sandbox" / "audit.jsonl"))


def unfinished(run_dir: Path) -> list[dict]:
    """The report's instances that did not succeed, with their errors (what a failing run's log buries)."""
    report = json.loads((run_dir / "report.json").read_text())
    return [entry for entry in report["instances"] if entry["status"] != "succeeded"]


def jobs_in_cloud(run_dir: Path) -> list[str]:
    """The name of every job the in-process sandbox's state holds."""
    db = sqlite3.connect(f"file:{run_dir / 'sandbox' / 'state.sqlite'}?mode=ro", uri=True)
    try:
        return [json.loads(value)["name"] for (value,) in
                db.execute("SELECT value FROM state WHERE emulator = 'testcloud' AND kind = 'job'")]
    finally:
        db.close()


def wait_for_requests(run_dir: Path, count: int, timeout: float = 60) -> None:
    path = run_dir / "sandbox" / "audit.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.01)
    raise AssertionError(f"the run made fewer than {count} requests in {timeout}s")


@pytest.mark.slow
@pytest.mark.parametrize("requests_before_kill", [3, 70, 170])
def test_sigkill_then_resume_repeats_nothing(plan_file, tmp_path: Path, requests_before_kill: int) -> None:
    plan = plan_file(fleet(80, settings="{duration: 120}"))
    run_dir = tmp_path / "run"
    proc = cli("run", str(plan), "--sandbox", "--time-scale", "120", "--run-dir", str(run_dir), cwd=tmp_path)
    wait_for_requests(run_dir, requests_before_kill)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = audit_of(run_dir)
    resumed = cli("resume", str(run_dir), cwd=tmp_path)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == ExitCode.OK, unfinished(run_dir) or err.decode()[-2000:]
    entries = audit_of(run_dir)
    assert len(entries) > len(before)
    from batchmig.sandbox.machinery import duplicate_effects

    assert duplicate_effects(entries) == {}
    # The cloud's state, not the audit, says how many jobs exist: the sandbox lives in the killed
    # process, so a create it carried out just before the kill can miss its audit line (and the
    # resume then finds that job rather than creating it again).
    assert sorted(Counter(jobs_in_cloud(run_dir)).values()) == [1] * 80


@pytest.mark.slow
def test_sigint_stops_gracefully_with_the_resumable_code(plan_file, tmp_path: Path) -> None:
    plan = plan_file(fleet(60, settings="{duration: 600}"))
    run_dir = tmp_path / "run"
    proc = cli("run", str(plan), "--sandbox", "--time-scale", "60", "--run-dir", str(run_dir), cwd=tmp_path)
    wait_for_requests(run_dir, 50)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == ExitCode.INTERRUPTED, err.decode()[-2000:]
    assert b"batchmig resume" in err
    assert b"Traceback" not in err
    # events.jsonl (written through a buffer) has every event of the stopped run, each line whole
    names = [json.loads(line)["event"] for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert "run.stopping" in names and names[-1] == "run.finished", names[-5:]
    resumed = cli("resume", str(run_dir), cwd=tmp_path)
    _, err = resumed.communicate(timeout=120)
    assert resumed.returncode == ExitCode.OK, err.decode()[-2000:]
    from batchmig.sandbox.machinery import duplicate_effects

    assert duplicate_effects(audit_of(run_dir)) == {}
