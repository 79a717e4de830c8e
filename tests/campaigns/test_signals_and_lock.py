"""Campaign 7 — signals and a second runner (issue 10, items 5 and 8).

The core's own ``testcloud`` provider, through the real CLI in subprocesses, with
the sandbox in the run (``--sandbox``):

* **signal storms**: SIGINT five times at once; SIGTERM then SIGINT; SIGINT every
  20 ms from the moment the run starts until it exits (so some land during start-up,
  during the stop and during shutdown); SIGTERM then a SIGINT storm. Each run must
  exit 3, and the following ``resume`` must finish every instance with no repeated
  effect.
* **SIGTERM during start-up**, at delays spread over the runner's start: the run
  either leaves nothing (no journal) or a resumable one — a journal with the plan
  and every instance, the run id in the message — and ``resume`` finishes it.
* **a second runner**: while a runner works (it waits at manual cutover gates with
  ``--wait-for-cutover``), ``resume --accept-changed-plan`` with a changed plan (one
  more instance) and a ``run`` into the same directory must be refused without
  touching the run: the journal is what it was, and once released with ``cutover``
  the first runner finishes every instance itself, with nothing left pending.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from batchmig.sandbox.machinery import duplicate_effects, read_audit
from batchmig.testing.crashes import wait_until
from batchmig.testing.testcloud import TestcloudPlugin

from .conftest import SOAK, Cli, read_outputs

PLUGINS = (TestcloudPlugin(),)
INSTANCES = 12
STARTUP_SIGTERMS = 30 if SOAK else 12


def fleet(count: int = INSTANCES, name: str = "signals", duration: int = 600, manual_cutover: bool = False) -> str:
    """``manual_cutover``: every job waits at a manual cutover gate until released."""
    settings = f"duration: {duration}, incremental: true" if manual_cutover else f"duration: {duration}"
    cutover = ", cutover: manual" if manual_cutover else ""
    lines = [f"version: 1\nname: {name}\nproviders: {{tc: {{type: testcloud, region: eu-1}}}}\n"
             f"defaults: {{provider: tc{cutover}, settings: {{testcloud: {{{settings}}}}}}}\n"
             "run: {retry: {base_delay: 0.05, max_delay: 0.5}}\ninstances:"]
    lines += [f"  - {{id: db-{i:02d}}}" for i in range(count)]
    return "\n".join(lines) + "\n"


def audit_of(run_dir: Path) -> list[dict]:
    path = run_dir / "sandbox" / "audit.jsonl"
    return list(read_audit(path)) if path.exists() else []


def journal_query(run_dir: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def finish(cli: Cli, run_dir: Path, count: int = INSTANCES) -> dict:
    """Resume until done; everything succeeded, nothing took effect twice."""
    resumed = cli.run("resume", str(run_dir), "--no-progress", plugins=PLUGINS)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    assert [e["status"] for e in report["instances"]] == ["succeeded"] * count
    assert duplicate_effects(audit_of(run_dir)) == {}
    return report


STORMS = {
    "SIGINT x5 at once": [(0.0, signal.SIGINT)] * 5,
    "SIGTERM then SIGINT": [(0.0, signal.SIGTERM), (0.05, signal.SIGINT)],
    "SIGINT every 20 ms until exit": "storm-int",
    "SIGTERM then SIGINT every 20 ms": "storm-term",
}


@pytest.mark.parametrize("storm", list(STORMS))
def test_signal_storms_end_resumable(tmp_path: Path, cli: Cli, storm: str, figures) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(fleet())
    run_dir = tmp_path / "run"
    proc, stem = cli.start("run", str(plan), "--sandbox", "--time-scale", "60", "--run-dir", str(run_dir),
                           "--no-progress", plugins=PLUGINS)
    signals = STORMS[storm]
    sent = 0
    if isinstance(signals, list):
        wait_until(lambda: len(audit_of(run_dir)) >= INSTANCES, 60, "requests", proc)
        for pause, signum in signals:
            time.sleep(pause)
            proc.send_signal(signum)
            sent += 1
    else:
        wait_until(lambda: run_dir.exists(), 60, "the run directory", proc)
        if signals == "storm-term":
            proc.send_signal(signal.SIGTERM)
            sent += 1
        while proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            sent += 1
            time.sleep(0.02)
    proc.wait(timeout=120)
    err = read_outputs(stem)[1]
    assert proc.returncode == 3, err[-3000:]
    assert "Traceback" not in err and "batchmig resume" in err, err[-3000:]
    report = finish(cli, run_dir)
    figures.update({"signals_sent": sent, "exit": 3, "resume_exit": 0, "duplicates": 0,
                    "invocations": len(report["invocations"])})


def test_sigterm_during_start_up_leaves_nothing_or_a_resumable_run(tmp_path: Path, cli: Cli, figures) -> None:
    """Half the SIGTERMs land at a fixed time after the process starts (mostly before
    batchmig listens: the default action, nothing is left); the others right after the
    run directory appears, during journal creation and the sandbox's start-up."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(fleet(4, duration=60))
    rng = random.Random(7)
    outcomes: dict[str, int] = {}
    for number in range(STARTUP_SIGTERMS):
        run_dir = tmp_path / f"run-{number}"
        proc, stem = cli.start("run", str(plan), "--sandbox", "--time-scale", "60", "--run-dir", str(run_dir),
                               "--no-progress", plugins=PLUGINS)
        if number % 2:
            wait_until(run_dir.exists, 60, "the run directory", proc)
            time.sleep(rng.uniform(0.0, 0.4))
        else:
            time.sleep(rng.uniform(0.05, 0.8))
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        err = read_outputs(stem)[1]
        if not (run_dir / "journal.sqlite").exists():
            # Killed before batchmig was listening (default action), or refused cleanly: nothing exists.
            assert proc.returncode in (-signal.SIGTERM, 2), (number, proc.returncode, err[-2000:])
            outcome = "nothing"
        else:
            assert proc.returncode in (3, 0), (number, proc.returncode, err[-2000:])
            assert "Traceback" not in err, err[-2000:]
            if proc.returncode == 3:
                assert f"batchmig resume {run_dir.name}" in err or "batchmig resume" in err, err[-2000:]
            finish(cli, run_dir, 4)
            outcome = "resumable" if proc.returncode == 3 else "finished"
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("resumable"), outcomes  # the late ones must reach into the run's start-up
    figures.update({"sigterms": STARTUP_SIGTERMS, **outcomes, "half_made_runs": 0})


def test_a_refused_second_runner_touches_nothing(tmp_path: Path, cli: Cli, figures) -> None:
    """The first runner waits at its instances' manual cutover gates (``--wait-for-cutover``), so
    it is still at work however slowly the others start; it is released at the end."""
    plan = tmp_path / "plan.yaml"
    original = fleet(duration=60, manual_cutover=True)
    plan.write_text(original)
    run_dir = tmp_path / "run"
    first, stem = cli.start("run", str(plan), "--sandbox", "--time-scale", "60", "--run-dir", str(run_dir),
                            "--wait-for-cutover", "--no-progress", plugins=PLUGINS)
    waiting = "SELECT count(*) FROM instances WHERE status = 'awaiting_cutover'"

    def all_at_the_gate() -> bool:
        try:
            return journal_query(run_dir, waiting) == [(INSTANCES,)]
        except sqlite3.Error:  # no journal, or no tables yet
            return False

    wait_until(all_at_the_gate, 120, "every instance at its cutover gate", first)
    meta = journal_query(run_dir, "SELECT key, value FROM meta ORDER BY key")
    plan.write_text(original + "  - {id: intruder}\n")
    second = cli.run("resume", str(run_dir), "--accept-changed-plan", "--no-progress", plugins=PLUGINS)
    assert second.returncode == 2, second.stderr[-2000:]
    assert "another batchmig process is working on" in second.stderr
    same_run = cli.run("run", str(plan), "--sandbox", "--run-dir", str(run_dir), "--no-progress", plugins=PLUGINS)
    assert same_run.returncode == 2 and "already holds a run" in same_run.stderr, same_run.stderr[-2000:]
    assert first.poll() is None, "the first runner must still be at work"
    # The refused runners changed nothing: no plan hash, no instance, no invocation.
    assert journal_query(run_dir, "SELECT key, value FROM meta ORDER BY key") == meta
    assert journal_query(run_dir, "SELECT id FROM instances WHERE id = 'intruder'") == []
    assert journal_query(run_dir, "SELECT count(*) FROM invocations") == [(1,)]
    assert journal_query(run_dir, waiting) == [(INSTANCES,)], "a refused runner moved an instance"
    plan.write_text(original)
    released = cli.run("cutover", str(run_dir), "--all", plugins=PLUGINS)
    assert released.returncode == 0, released.stderr[-2000:]
    first.wait(timeout=120)
    assert first.returncode == 0, read_outputs(stem)[1][-2000:]
    report = json.loads((run_dir / "report.json").read_text())
    # The first runner finished the run it started, alone: none left pending by the intruder.
    assert [e["status"] for e in report["instances"]] == ["succeeded"] * INSTANCES
    assert duplicate_effects(audit_of(run_dir)) == {}
    figures.update({"refused_runners": 2, "instances_added_by_refused_runner": 0,
                    "pending_after_first_runner": 0, "invocations": len(report["invocations"])})
