"""Campaign 1 — crash and resume: SIGKILL the runner again and again, resume each time.

A mixed fleet (Tencent imports incl. FULL_LOG chains, Tencent DTS jobs, Huawei DRS
jobs incl. chains) runs through the real CLI against a sandbox in its own process,
so the cloud lives on while the runner dies. Two kinds of kill alternate:

* at a random moment after the resumed runner has started sending;
* *held*: the sandbox is told to act on the next mutating call and then hold its
  answer (``after_acting``); the runner is killed while the answer is held, i.e.
  exactly between sending a create/start and journaling its outcome — the case the
  intent/reconcile protocol exists for. The test checks the journal really holds an
  open intent at that moment.

At the end: every instance succeeded, no create/start took effect twice (audit),
the cloud holds exactly one resource per planned create (state), and ``batchmig
status`` agrees with what the emulators report.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from pathlib import Path

from batchmig.sandbox.machinery import duplicate_effects

from .cloudstate import expected_counts, missing_remote_ids, resource_counts, sandbox_state, unfinished_in_cloud
from .conftest import SOAK, read_outputs
from .fleet import fleet_plan, kinds_of

INSTANCES = 600 if SOAK else 200
KILLS = 60 if SOAK else 22
HOLD_EVERY = 2  # every second kill is a held one
#: Held kills rotate over every mutating action of the three providers (emulator, action).
HELD_ACTIONS = [
    ("tencent-sqlserver", "CreateBackupMigration"), ("tencent-sqlserver", "StartBackupMigration"),
    ("tencent-sqlserver", "CreateIncrementalMigration"), ("tencent-sqlserver", "StartIncrementalMigration"),
    ("tencent-dts", "CreateMigrateJob"), ("tencent-dts", "CreateMigrateCheckJob"),
    ("tencent-dts", "StartMigrateJob"), ("tencent-dts", "CompleteMigrateJob"),
    ("huawei-drs", "CreateReplicationJob"),
]
TARGETED_WAIT = 4.0  # seconds to wait for the chosen action before holding any mutating call
SEED = int(time.time()) if SOAK else 20240611


def audit_lines(sandbox_dir: Path) -> int:
    path = sandbox_dir / "audit.jsonl"
    return path.read_bytes().count(b"\n") if path.exists() else 0


def held_since(sandbox_dir: Path, offset: int) -> dict | None:
    """The first audit entry after line ``offset`` whose answer the sandbox holds."""
    with open(sandbox_dir / "audit.jsonl", "rb") as handle:
        for number, line in enumerate(handle):
            if number >= offset and b"held_seconds" in line:
                return json.loads(line)
    return None


def hold(emulator: str, action: str) -> dict:
    """Act on the next matching mutating call, then hold its answer for longer than the test waits."""
    return {"kind": "latency", "after_acting": True, "seconds": 30, "mutating_only": True, "count": 1,
            "emulator": emulator, "action": action}


def open_intents(run_dir: Path) -> list[tuple[str, str]]:
    db = sqlite3.connect(run_dir / "journal.sqlite")
    try:
        return db.execute("SELECT instance, action FROM calls WHERE state = 'intent'").fetchall()
    finally:
        db.close()


def wait_for(condition, timeout: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def test_sigkill_at_random_moments_then_resume_loses_and_repeats_nothing(
    tmp_path: Path, cli, sandbox_process, figures
) -> None:
    rng = random.Random(SEED)
    plan = tmp_path / "fleet.yaml"
    plan.write_text(fleet_plan(INSTANCES, max_concurrency=40,
                               run={"retry": {"base_delay": 0.05, "max_delay": 1.0}}))
    box = sandbox_process({"time_scale": 150, "seed": SEED})
    run_dir = tmp_path / "run"
    kills: list[dict] = []
    command = ["run", str(plan), "--sandbox-at", str(box.directory), "--run-dir", str(run_dir), "--no-progress"]
    for number in range(KILLS):
        held = number % HOLD_EVERY == 1
        before = audit_lines(box.directory)
        if held:
            emulator, action = HELD_ACTIONS[(number // HOLD_EVERY) % len(HELD_ACTIONS)]
            box.configure(faults=[hold(emulator, action)])
        proc, stem = cli.start(*command)
        if held:
            entry = None

            def held_or_ended(proc=proc, before=before):  # type: ignore[no-untyped-def]
                return held_since(box.directory, before) or proc.poll() is not None

            try:
                try:
                    entry = wait_for(held_or_ended, TARGETED_WAIT, f"a held {action}")
                except AssertionError:  # that action is no longer sent: hold the next mutating call
                    box.configure(faults=[hold("*", "*")])
                    entry = wait_for(held_or_ended, 60, "a held mutating call")
            finally:
                if not isinstance(entry, dict):
                    box.configure(faults=[])
            assert isinstance(entry, dict), f"run ended (exit {proc.returncode}) before a mutating call was held"
            time.sleep(rng.uniform(0.0, 0.3))
        else:
            wait_for(lambda proc=proc, before=before: audit_lines(box.directory) > before or proc.poll() is not None,
                     60, "requests")
            time.sleep(rng.uniform(0.0, 1.5))
        assert proc.poll() is None, f"the run ended before kill {number + 1}: {read_outputs(stem)[1][-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        record = {"kill": number + 1, "held": held, "requests_before": before}
        if held:
            box.configure(faults=[])
            intents = open_intents(run_dir)
            assert (entry["action"] in {action for _, action in intents}), (
                f"kill {number + 1} did not land between intent and outcome: {entry['action']} vs {intents}")
            record["held_action"] = f"{entry['emulator']}/{entry['action']}"
            record["open_intents"] = len(intents)
        kills.append(record)
        command = ["resume", str(run_dir), "--no-progress"]

    final = cli.run(*command, timeout=300)
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
    assert resource_counts(state) == expected_counts(kinds_of(INSTANCES))
    assert unfinished_in_cloud(plan, status, box.directory) == {}

    held_kills = [k for k in kills if k["held"]]
    figures.update({
        "instances": INSTANCES, "kills": len(kills), "held_kills": len(held_kills),
        "held_actions": sorted({k["held_action"] for k in held_kills}),
        "requests": len(audit), "mutating_effects": sum(1 for e in audit if e.get("changed")),
        "duplicates": 0, "lost_instances": 0, "seed": SEED,
    })
