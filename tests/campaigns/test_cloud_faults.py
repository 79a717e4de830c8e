"""Campaign 2 — cloud faults: everything a bad day at the cloud throws, in one run.

A mixed fleet runs through the real CLI against a sandbox in its own process while
the sandbox, across all three emulators:

* answers a few percent of calls with an internal error (Huawei: HTTP 500
  ``DRS.M00004``; Tencent: ``InternalError`` / ``ServiceUnavailable``);
* drops the connection *after acting* on some mutating calls (unknown outcomes) and
  on some reads;
* adds latency spikes shorter than the call timeout;
* mid-run, lowers every cap to 1 request/second — far below the 20/s the limiter
  expects — and throttles a burst of calls outright;
* then, for a few seconds, answers nothing at all (every call hangs; the plan's
  ``run.call_timeout`` is shorter).

Three instances are planned to fail for good (a corrupt Tencent backup file, a DTS
job whose check fails, a Huawei restore that fails). Every other instance must
succeed, those three must fail with the cloud's reason, no create/start may take
effect twice, the retries must stay within the plan's budget, and report.json must
count the throttles and failures the sandbox actually served.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from batchmig.sandbox.machinery import duplicate_effects
from batchmig.testing.crashes import audit_length, wait_until

from .cloudstate import missing_remote_ids, sandbox_state, unfinished_in_cloud
from .conftest import SOAK
from .fleet import fleet_plan

pytest.importorskip("batchmig_tencentcloud")
pytest.importorskip("batchmig_huaweicloud")

INSTANCES = 280 if SOAK else 70
SEED = int(time.time()) if SOAK else 7
RETRY_BUDGET = 4000 if SOAK else 1500
EMULATORS = ("tencent-sqlserver", "tencent-dts", "huawei-drs")

BASE_FAULTS = [
    {"kind": "error", "probability": 0.03},                                 # internal error, in dialect
    {"kind": "error", "code": "ServiceUnavailable", "emulator": "tencent-dts", "probability": 0.02},
    {"kind": "drop", "mutating_only": True, "probability": 0.06},           # acted, answer lost
    {"kind": "drop", "probability": 0.02},                                  # reads too
    {"kind": "latency", "seconds": 0.8, "probability": 0.03},               # spikes under the call timeout
    {"kind": "latency", "seconds": 0.5, "after_acting": True, "mutating_only": True, "probability": 0.03},
]
THROTTLE_BURST = [*BASE_FAULTS, {"kind": "throttle", "count": 60}]
SILENCE = [{"kind": "hang", "seconds": 900, "probability": 1.0}]  # no answer, nothing done
SILENCE_SECONDS = 4.0
CALL_TIMEOUT = 1.5

#: Instances that must fail for good, with the step they fail at.
DOOMED = {
    "doomed-tc-corrupt": ("tencent-sqlserver", {"instance_id": "mssql-d0000001", "import": {
        "backup_file": "https://demo-1250000000.cos.ap-guangzhou.myqcloud.com/x/sandbox-corrupt.bak"}}),
    "doomed-dts-check": ("tencent-dts", {"job": {"name": "campaign-sandbox-fail-check"}}),
    "doomed-drs-restore": ("huawei-drs", {"target_instance_id": "d0000000000000000000000000000001in04",
                                          "files": [{"name": "db_restore-fail.bak", "obs_path": "full/"}]}),
}


def the_plan() -> str:
    document = yaml.safe_load(fleet_plan(INSTANCES, name="campaign-faults", max_concurrency=60, run={
        "call_timeout": f"{CALL_TIMEOUT}s",
        "retry": {"max_attempts": 12, "budget": RETRY_BUDGET, "base_delay": 0.05, "max_delay": 1.0},
    }))
    dts_job = document["defaults"]["settings"]["tencent-dts"]["job"]
    for iid, (provider, settings) in DOOMED.items():
        if provider == "tencent-dts":
            settings = {"job": {**dts_job, **settings["job"]}}
        document["instances"].append({"id": iid, "provider": provider, "settings": settings})
    return yaml.safe_dump(document, sort_keys=False)


def throttled_by_sandbox(audit: list[dict]) -> int:
    return sum(1 for e in audit if e.get("outcome") in ("throttled", "fault:throttle"))


def test_faults_across_all_providers_end_in_success_or_the_right_failure(
    tmp_path: Path, cli, sandbox_process, figures
) -> None:
    began = time.monotonic()
    plan = tmp_path / "faults.yaml"
    plan.write_text(the_plan())
    box = sandbox_process({"time_scale": 300, "seed": SEED, "faults": BASE_FAULTS})
    run_dir = tmp_path / "run"
    proc, stem = cli.start("run", str(plan), "--sandbox-at", str(box.directory), "--run-dir", str(run_dir),
                           "--no-progress")
    phases = []
    # The phases follow the runner, not the clock alone: its start-up and pace vary with the machine's load.
    wait_until(lambda: audit_length(box.audit_path) > 0, 60, "the runner's first requests", proc)
    time.sleep(1.0)
    box.configure(rate_limits={name: {"*": 1} for name in EMULATORS}, faults=THROTTLE_BURST)
    phases.append(("caps lowered to 1/s + throttle burst", len(box.audit())))
    time.sleep(3.0)
    wait_until(lambda: b'"outcome":"throttled"' in box.audit_path.read_bytes(), 60, "a throttle at 1/s", proc)
    box.configure(rate_limits={}, faults=BASE_FAULTS)
    time.sleep(1.0)
    box.configure(faults=SILENCE)
    silence_started = len(box.audit())
    time.sleep(SILENCE_SECONDS)
    box.configure(faults=BASE_FAULTS)
    phases.append(("silence", silence_started))
    proc.wait(timeout=240)
    err = Path(f"{stem}.err").read_text()
    assert proc.returncode == 1, err[-3000:]  # exactly the doomed ones failed
    assert "Traceback" not in err

    report = json.loads((run_dir / "report.json").read_text())
    by_id = {entry["id"]: entry for entry in report["instances"]}
    failed = {iid for iid, entry in by_id.items() if entry["status"] != "succeeded"}
    assert failed == set(DOOMED), {iid: by_id[iid].get("error") for iid in failed}
    for iid in DOOMED:
        error = by_id[iid]["error"]
        assert error["kind"] == "failed" and error["step"].startswith("wait"), (iid, error)
        assert error["code"] not in ("RetryBudgetExhausted", "StepTimeout"), (iid, error)

    audit = box.audit()
    assert duplicate_effects(audit) == {}
    outcomes = Counter(entry.get("outcome") for entry in audit)
    internal = outcomes["fault:error"] + outcomes["fault:ServiceUnavailable"]
    assert outcomes["dropped"] > 0 and internal > 0 and outcomes["throttled"] > 0 and outcomes["fault:throttle"] > 0
    assert any("held_seconds" in entry for entry in audit)

    calls = report["calls"]
    assert 0 < calls["retries"] <= RETRY_BUDGET
    assert calls["throttled"] == throttled_by_sandbox(audit)
    assert calls["unknown_outcomes"] > 0 and calls["reconciled"] > 0
    errors = Counter(calls["errors_by_code"])
    assert errors["InternalError"] + errors["DRS.M00004"] + errors["ServiceUnavailable"] == internal, errors
    # every dropped answer reached the runner as a lost connection, or as a timeout when a latency spike came first
    assert errors["ConnectionLost"] + errors["Timeout"] >= outcomes["dropped"], errors
    assert errors["Timeout"] > 0, "the silent period must have timed calls out"

    state = sandbox_state(box.directory)
    assert missing_remote_ids(report, state) == []
    box.configure(faults=[])
    assert unfinished_in_cloud(plan, report, box.directory) == {}
    figures["checked_in"] = round(time.monotonic() - began, 1)

    figures.update({
        "instances": INSTANCES + len(DOOMED), "requests": len(audit),
        "faults_injected": {k: v for k, v in outcomes.items() if k != "answered"},
        "held_answers": sum(1 for e in audit if "held_seconds" in e),
        "retries": calls["retries"], "retry_budget": RETRY_BUDGET, "throttled": calls["throttled"],
        "unknown_outcomes": calls["unknown_outcomes"], "reconciled": calls["reconciled"],
        "timeouts": errors["Timeout"], "duplicates": 0, "lost_instances": 0,
        "permanent_failures": sorted(failed), "duration_seconds": report.get("duration_seconds"),
    })
