"""Campaign 1 — crash and resume amid cloud faults: SIGKILL the runner again and again.

A mixed fleet (Tencent imports incl. FULL_LOG chains and manual backups, Tencent DTS
jobs, Huawei DRS jobs incl. chains, Alibaba RDS migrations from OSS) runs through the
real CLI against a sandbox in its own process, so the cloud lives on while the runner
dies. The whole time, the
sandbox drops 10 % of answers after acting, fails 5 % of calls with an internal
error (503-style ``ServiceUnavailable`` at DTS) and throttles 5 %. Three kinds of
kill rotate:

* *lost*: the sandbox carries out the next call of a chosen mutating action, drops
  its answer, and then stalls that emulator, so the runner journals the outcome
  ``unknown`` and starts finding out what happened; it is killed right there, inside
  the unknown-outcome window (``batchmig.testing.crashes``). These rotate over every
  mutating action of the four providers;
* *held*: the sandbox acts on the next mutating call and holds its answer; the
  runner is killed between sending it and journaling its outcome (the journal holds
  the intent);
* *random*: at a random moment after the resumed runner started sending.

At the end, nothing trusting the runner's own bookkeeping: every instance succeeded
in ``batchmig status`` *and* its last job is finished in the cloud (asked through
the provider's poller), no create or start took effect twice (audit), the cloud
holds exactly one resource per planned create (state), and every remote id the
journal holds exists there. The report's whole-run call count is compared with the
requests the sandbox saw.
"""

from __future__ import annotations

import json
import random
import signal
import time
from pathlib import Path

from batchmig.sandbox.machinery import duplicate_effects
from batchmig.testing.crashes import (
    Caught,
    audit_length,
    calls_in_state,
    last_call_id,
    lost_answer_faults,
    wait_in_window,
    wait_until,
)

from .cloudstate import expected_counts, missing_remote_ids, resource_counts, sandbox_state, unfinished_in_cloud
from .conftest import SOAK, read_outputs
from .fleet import WITH_ALIBABA, fleet_plan, kinds_of

INSTANCES = 600 if SOAK else 80
KILLS = 60 if SOAK else 18
#: In CI, two lost-answer kills in three, so that 18 kills still reach all twelve mutating actions.
KIND_OF_KILL = ("lost", "held", "lost", "random") if SOAK else ("lost", "lost", "held", "lost", "lost", "random")
#: Every mutating action of the four providers (emulator, action); lost and held kills rotate over them.
MUTATING_ACTIONS = [
    ("tencent-sqlserver", "CreateBackupMigration"), ("tencent-dts", "CreateMigrateJob"),
    ("huawei-drs", "CreateReplicationJob"), ("tencent-sqlserver", "CreateBackup"),
    ("tencent-sqlserver", "StartBackupMigration"), ("tencent-dts", "CreateMigrateCheckJob"),
    ("tencent-dts", "StartMigrateJob"), ("tencent-sqlserver", "CreateIncrementalMigration"),
    ("tencent-sqlserver", "StartIncrementalMigration"), ("tencent-dts", "CompleteMigrateJob"),
    ("alibaba-rds-sqlserver", "CreateMigrateTask"), ("alibaba-rds-sqlserver", "CreateOnlineDatabaseTask"),
]
TARGETED_WAIT = 4.0  # seconds to wait for the chosen action before taking any mutating call
SEED = int(time.time()) if SOAK else 20240611
FAULTS = [
    {"kind": "drop", "probability": 0.10},                                    # acted, answer lost
    {"kind": "error", "probability": 0.04},                                   # internal error, in dialect
    {"kind": "error", "code": "ServiceUnavailable", "emulator": "tencent-dts", "probability": 0.05},
    {"kind": "error", "code": "ServiceUnavailable", "emulator": "tencent-sqlserver", "probability": 0.01},
    {"kind": "throttle", "probability": 0.05},
]


def held(emulator: str, action: str) -> list[dict]:
    """Act on the next matching mutating call, then hold its answer for longer than the test waits."""
    return [{"kind": "latency", "after_acting": True, "seconds": 30, "mutating_only": True, "count": 1,
             "emulator": emulator, "action": action}]


def wait_while_held(proc, run_dir: Path, audit_path: Path, offset: int, action: str | None,  # type: ignore[no-untyped-def]
                    timeout: float, since: int) -> Caught:
    """Until the sandbox holds a mutating answer (of ``action``) and the runner journaled its intent."""
    found: list[Caught] = []

    def caught() -> bool:
        with open(audit_path, "rb") as handle:
            entries = [json.loads(line) for number, line in enumerate(handle)
                       if number >= offset and b"held_seconds" in line]
        for entry in entries:
            if action is None or entry["action"] == action:
                intents = calls_in_state(run_dir, "intent", entry["action"], since)
                if intents:
                    found.append(Caught(max(intents), entry["action"], entry))
                    return True
        return False

    wait_until(caught, timeout, f"a held {action or 'mutating'} answer", proc)
    return found[0]


def kill(proc) -> None:  # type: ignore[no-untyped-def]
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()


def test_sigkills_amid_cloud_faults_lose_and_repeat_nothing(tmp_path: Path, cli, sandbox_process, figures) -> None:
    rng = random.Random(SEED)
    plan = tmp_path / "fleet.yaml"
    plan.write_text(fleet_plan(INSTANCES, max_concurrency=40, kinds=WITH_ALIBABA,
                               run={"retry": {"max_attempts": 12, "base_delay": 0.05, "max_delay": 1.0}}))
    box = sandbox_process({"time_scale": 100, "seed": SEED, "faults": FAULTS})
    run_dir = tmp_path / "run"
    kills: list[dict] = []
    command = ["run", str(plan), "--sandbox-at", str(box.directory), "--run-dir", str(run_dir), "--no-progress"]
    targets = {"lost": 0, "held": 0}
    for number in range(KILLS):
        kind = KIND_OF_KILL[number % len(KIND_OF_KILL)]
        offset, since = audit_length(box.audit_path), last_call_id(run_dir)
        record: dict = {"kill": number + 1, "kind": kind}
        if kind == "random":
            proc, stem = cli.start(*command)
            wait_until(lambda offset=offset: audit_length(box.audit_path) > offset, 60, "requests", proc)
            time.sleep(rng.uniform(0.0, 1.5))
            assert proc.poll() is None, f"the run ended before kill {number + 1}: {read_outputs(stem)[1][-2000:]}"
            kill(proc)
        else:
            emulator, action = MUTATING_ACTIONS[targets[kind] % len(MUTATING_ACTIONS)]
            targets[kind] += 1
            stage, catch = (lost_answer_faults, wait_in_window) if kind == "lost" else (held, wait_while_held)
            box.configure(faults=[*FAULTS, *stage(emulator, action)])
            proc, stem = cli.start(*command)
            try:
                try:
                    caught = catch(proc, run_dir, box.audit_path, offset, action, TARGETED_WAIT, since)
                except AssertionError:  # that action is no longer sent: take the next mutating call
                    if proc.poll() is not None:
                        raise
                    box.configure(faults=[*FAULTS, *stage("*", "*")])
                    caught = catch(proc, run_dir, box.audit_path, offset, None, 60, since)
            finally:
                kill(proc)
                box.configure(faults=FAULTS)
            state = "unknown" if kind == "lost" else "intent"
            assert caught.call_id in calls_in_state(run_dir, state, since=since), (
                f"kill {number + 1} did not land while {caught.action} was {state}")
            record["action"] = caught.action
        kills.append(record)
        command = ["resume", str(run_dir), "--no-progress"]

    final = cli.run(*command, timeout=600)
    assert final.returncode == 0, final.stderr[-3000:]
    assert "Traceback" not in final.stderr

    status_run = cli.run("status", str(run_dir), "--format", "json")
    assert status_run.returncode == 0, status_run.stderr[-2000:]
    status = json.loads(status_run.stdout)
    statuses = {entry["id"]: entry["status"] for entry in status["instances"]}
    assert len(statuses) == INSTANCES
    assert set(statuses.values()) == {"succeeded"}, {k: v for k, v in statuses.items() if v != "succeeded"}

    audit = box.audit()
    assert duplicate_effects(audit) == {}
    state = sandbox_state(box.directory)
    assert missing_remote_ids(status, state) == []
    assert resource_counts(state) == expected_counts(kinds_of(INSTANCES, WITH_ALIBABA))
    box.configure(faults=[])
    disagreements = unfinished_in_cloud(plan, status, box.directory)
    assert disagreements == {}

    lost = [k for k in kills if k["kind"] == "lost"]
    outcomes = [entry.get("outcome") for entry in audit]
    figures.update({
        "instances": INSTANCES, "kills": len(kills), "lost_answer_kills": len(lost),
        "held_kills": sum(1 for k in kills if k["kind"] == "held"),
        "lost_answer_actions": sorted({k["action"] for k in lost}),
        "requests": len(audit), "requests_counted_by_the_report": status["calls"]["calls"],
        "mutating_effects": sum(1 for e in audit if e.get("changed")),
        "dropped": outcomes.count("dropped"), "faulted": sum(1 for o in outcomes if str(o).startswith("fault:")),
        "invocations": len(status["invocations"]), "duplicates": 0, "lost_instances": 0,
        "status_vs_cloud_disagreements": len(disagreements), "seed": SEED,
    })
