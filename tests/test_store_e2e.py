"""Several runners and several runs in one PostgreSQL store, against the sandbox in its
own process: real runner processes, real sockets, counted from the sandbox's audit log."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
from store_helpers import audit_figures, fleet_plan, runner_command, start_runner

from batchmig.testing.postgres import ThrowawayPostgres, scratch_database
from batchmig.testing.sandbox_process import SandboxProcess

pytestmark = pytest.mark.slow
CAPPED = {"time_scale": 60, "rate_limits": {"testcloud": {"*": 20}}}


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(runner_command(*args), cwd=cwd, capture_output=True, text=True, timeout=120)


def _wait(proc: subprocess.Popen[bytes], cwd: Path, stem: str, timeout: float = 150) -> int:
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise AssertionError((cwd / f"{stem}.err").read_text()[-3000:]) from None


def _until_runners(cwd: Path, dsn: str, count: int) -> None:
    deadline = time.monotonic() + 180  # only against a hang: at load 20 a runner starts in tens of seconds
    while time.monotonic() < deadline:
        listed = _cli(cwd, "runners", "fleet", "--store", dsn, "--format", "json")
        if listed.returncode == 0 and len(json.loads(listed.stdout)["runners"]) >= count:
            return
        time.sleep(0.3)
    raise AssertionError(f"{count} runners did not register")


def test_two_runners_one_run_with_manual_cutovers(postgres_dsn: str, tmp_path: Path) -> None:
    assert _cli(tmp_path, "store", "init", "--store", postgres_dsn).returncode == 0
    (tmp_path / "plan.yaml").write_text(fleet_plan(60, waves=2, duration=20, incremental_every=15,
                                                   manual_every=15))
    runner = ("--store", postgres_dsn, "--lease-ttl", "12", "--no-progress")
    with SandboxProcess(tmp_path / "sandbox", CAPPED) as sandbox:
        first = start_runner(tmp_path, "r1", "run", "plan.yaml", "--sandbox-at", str(sandbox.directory), *runner)
        time.sleep(1.5)
        second = start_runner(tmp_path, "r2", "join", "fleet", *runner)
        assert _wait(first, tmp_path, "r1") == 4 and _wait(second, tmp_path, "r2") == 4  # awaiting cutover
        for stem in ("r1", "r2"):  # each runner reports the whole run's counts, not its own part
            finished = [json.loads(line) for line in (tmp_path / f"{stem}.err").read_text().splitlines()
                        if '"run.finished"' in line]
            assert finished and finished[-1]["awaiting_cutover"] == 4 and finished[-1]["succeeded"] == 56
        listed = json.loads(_cli(tmp_path, "runners", "fleet", "--store", postgres_dsn, "--format", "json").stdout)
        assert len(listed["runners"]) == 2 and all(r["stopped"] for r in listed["runners"])
        status = json.loads(_cli(tmp_path, "status", "fleet", "--store", postgres_dsn, "--format", "json").stdout)
        assert status["counts"] == {"awaiting_cutover": 4, "succeeded": 56} and status["runners"] == 0
        released = _cli(tmp_path, "cutover", "fleet", "--select", "fleet-00[03]0", "--store", postgres_dsn)
        assert released.returncode == 4, released.stderr  # no runner alive: it joins, two still wait
        assert _cli(tmp_path, "cutover", "fleet", "--all", "--store", postgres_dsn).returncode == 0
        figures = audit_figures(sandbox.audit(), {})
    reports = [json.loads(p.read_text()) for p in (tmp_path / ".batchmig" / "runs").glob("*/report.json")]
    assert reports and reports[0]["counts"] == {"succeeded": 60}
    status = json.loads(_cli(tmp_path, "status", "fleet", "--store", postgres_dsn, "--format", "json").stdout)
    assert status["counts"] == {"succeeded": 60}
    claimed = [(tmp_path / f"r{i}.err").read_text().count("instance.started") > 0 for i in (1, 2)]
    assert all(claimed), "both runners worked on the run"
    assert figures["repeated_effects"] == 0 and figures["throttled"] == 0 and not figures["over_cap"], figures


@pytest.mark.parametrize(("limiter", "concurrency"), [("shares", 40), ("shares", 6), ("exact", 6)])
def test_two_plans_on_one_account_share_the_budget(
    postgres_dsn: str, tmp_path: Path, limiter: str, concurrency: int
) -> None:
    """Two independent runs (different plans) on one account: 0 throttles, never over the
    cap — with every instance at once, and with a few at a time (each run's demand on a
    key then changes all the time, and so do the shares)."""
    assert _cli(tmp_path, "store", "init", "--store", postgres_dsn).returncode == 0
    for name in ("alpha", "beta"):
        (tmp_path / f"{name}.yaml").write_text(fleet_plan(40, name=name, duration=10, max_concurrency=concurrency))
    with SandboxProcess(tmp_path / "sandbox", CAPPED) as sandbox:
        procs = [start_runner(tmp_path, name, "run", f"{name}.yaml", "--store", postgres_dsn, "--limiter", limiter,
                              "--sandbox-at", str(sandbox.directory), "--no-progress")
                 for name in ("alpha", "beta")]
        assert [_wait(p, tmp_path, n) for p, n in zip(procs, ("alpha", "beta"), strict=True)] == [0, 0]
        figures = audit_figures(sandbox.audit(), {})
    assert figures["repeated_effects"] == 0 and figures["throttled"] == 0 and not figures["over_cap"], figures
    assert max(figures["worst_second"].values()) <= 20


def test_store_outage_runners_wait_and_go_on(tmp_path: Path) -> None:
    """PostgreSQL stops for a few seconds mid-run: nothing is repeated and the run completes."""
    with ThrowawayPostgres() as server, scratch_database(server.dsn) as dsn:
        assert _cli(tmp_path, "store", "init", "--store", dsn).returncode == 0
        (tmp_path / "plan.yaml").write_text(fleet_plan(60, duration=300, incremental_every=4))
        runner = ("--store", dsn, "--lease-ttl", "15", "--no-progress")
        with SandboxProcess(tmp_path / "sandbox", CAPPED) as sandbox:
            first = start_runner(tmp_path, "r1", "run", "plan.yaml", "--sandbox-at", str(sandbox.directory),
                                 *runner)
            time.sleep(1.0)
            second = start_runner(tmp_path, "r2", "join", "fleet", *runner)
            _until_runners(tmp_path, dsn, 2)
            server.stop()
            time.sleep(4.0)
            server.start()
            assert _wait(first, tmp_path, "r1") == 0 and _wait(second, tmp_path, "r2") == 0
            figures = audit_figures(sandbox.audit(), {})
        status = json.loads(_cli(tmp_path, "status", "fleet", "--store", dsn, "--format", "json").stdout)
    assert status["counts"] == {"succeeded": 60}
    assert figures["repeated_effects"] == 0 and not figures["over_cap"], figures
    assert "store.unreachable" in (tmp_path / "r1.err").read_text() + (tmp_path / "r2.err").read_text()


def test_a_runner_that_joins_gets_its_share_of_the_wave(postgres_dsn: str, tmp_path: Path) -> None:
    """The first runner claims the whole wave while it is alone; when a second joins, it
    hands over what it has sent nothing for (the creates still queued at a 2/s cap): both
    work a fair part, the handed-over calls are journaled unsent (nothing to reconcile),
    and nothing is sent twice.

    The first runner is held (SIGSTOP) from its claim until the second has registered,
    with leases long enough to outlast that: how long the second takes to start (tens of
    seconds on a loaded machine, while the first sends its 24 creates in 12) must not
    decide whether anything is left to hand over."""
    assert _cli(tmp_path, "store", "init", "--store", postgres_dsn).returncode == 0
    plan = fleet_plan(24, duration=10).replace("account: acct}", "account: acct, rate_limits: {'*': 2}}")
    (tmp_path / "plan.yaml").write_text(plan)
    runner = ("--store", postgres_dsn, "--lease-ttl", "120", "--no-progress")
    with SandboxProcess(tmp_path / "sandbox", CAPPED) as sandbox:
        first = start_runner(tmp_path, "r1", "run", "plan.yaml", "--sandbox-at", str(sandbox.directory), *runner)
        _until_held(postgres_dsn, 24)
        first.send_signal(signal.SIGSTOP)
        try:
            second = start_runner(tmp_path, "r2", "join", "fleet", *runner)
            _until_runners(tmp_path, postgres_dsn, 2)
        finally:
            first.send_signal(signal.SIGCONT)
        assert _wait(first, tmp_path, "r1") == 0 and _wait(second, tmp_path, "r2") == 0
        figures = audit_figures(sandbox.audit(), {})
    logs = {stem: (tmp_path / f"{stem}.err").read_text() for stem in ("r1", "r2")}
    worked = {stem: text.count('"instance.succeeded"') for stem, text in logs.items()}
    assert sum(worked.values()) == 24 and min(worked.values()) >= 4, worked
    assert logs["r1"].count('"instance.handed_back"') >= 4, worked
    assert '"call.reconciled"' not in logs["r2"] and '"instance.claimed"' not in logs["r2"]
    assert figures["repeated_effects"] == 0 and figures["throttled"] == 0 and not figures["over_cap"], figures


def _until_held(dsn: str, count: int) -> None:
    """Until ``count`` instances of the run are held under a lease (claimed)."""
    deadline = time.monotonic() + 180  # only against a hang
    while time.monotonic() < deadline:
        with psycopg.connect(dsn) as conn:
            held = conn.execute("SELECT count(*) FROM batchmig_instances WHERE lease_until > now()").fetchone()
        if held and held[0] >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{count} instances were not claimed")


def test_database_errors_mid_run_are_survived_or_stop_the_runner_in_one_line(postgres_dsn: str, tmp_path: Path):
    """Mid-run, a statement_timeout on every session of the store while another session
    holds the limiter's key rows (the runner's rebalances time out), and every connection
    of the runner terminated twice: it goes on. Then a statement the store refuses for
    good (the rebalance function renamed away): it stops with exit 3 and one line, and
    a runner that joins once it is back finishes the run. Nothing repeated, never over
    the cap."""
    assert _cli(tmp_path, "store", "init", "--store", postgres_dsn).returncode == 0
    (tmp_path / "plan.yaml").write_text(fleet_plan(60, duration=1200))
    runner = ("--store", postgres_dsn, "--lease-ttl", "12", "--no-progress")
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE \"{admin.info.dbname}\" SET statement_timeout = '1s'")
    with SandboxProcess(tmp_path / "sandbox", CAPPED) as sandbox:
        first = start_runner(tmp_path, "r1", "run", "plan.yaml", "--sandbox-at", str(sandbox.directory), *runner)
        _until_runners(tmp_path, postgres_dsn, 1)
        time.sleep(1.0)
        with psycopg.connect(postgres_dsn) as holder:  # its rebalances wait for the rows, and time out
            holder.execute("SET statement_timeout = 0")
            holder.execute("SELECT 1 FROM batchmig_rate_keys FOR UPDATE")
            for _ in range(2):
                time.sleep(1.5)
                with psycopg.connect(postgres_dsn, autocommit=True) as admin:
                    admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                                  "current_database() AND pid NOT IN (pg_backend_pid(), %s)",
                                  (holder.info.backend_pid,))
            time.sleep(1.5)
            holder.rollback()
        time.sleep(2.0)
        assert first.poll() is None, (tmp_path / "r1.err").read_text()[-3000:]
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute("ALTER FUNCTION batchmig_rebalance RENAME TO batchmig_rebalance_away")
        assert _wait(first, tmp_path, "r1") == 3
        lines = (tmp_path / "r1.out").read_text() + (tmp_path / "r1.err").read_text()
        assert "Traceback" not in lines
        error = [line for line in lines.splitlines() if line.startswith("error: ")]
        assert error and "the store refused a statement: function batchmig_rebalance" in error[-1], lines[-3000:]
        assert "hint: once what the store refused is fixed: batchmig join" in lines
        assert "psycopg" not in lines  # its own warnings are not the operator's concern: store.* events say it
        events = lines.count("store.statement_failed") + lines.count("store.unreachable")
        assert events >= 1, "the errors it survived are in its log"
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute("ALTER FUNCTION batchmig_rebalance_away RENAME TO batchmig_rebalance")
        second = start_runner(tmp_path, "r2", "join", "fleet", *runner)
        assert _wait(second, tmp_path, "r2") == 0
        figures = audit_figures(sandbox.audit(), {})
    status = json.loads(_cli(tmp_path, "status", "fleet", "--store", postgres_dsn, "--format", "json").stdout)
    assert status["counts"] == {"succeeded": 60}
    assert figures["repeated_effects"] == 0 and figures["throttled"] == 0 and not figures["over_cap"], figures


def test_a_killed_runners_queued_creates_leave_nothing_to_reconcile(postgres_dsn: str, tmp_path: Path) -> None:
    """A runner SIGKILLed while most of its creates still wait at the limiter (2/s), one
    create's answer held back by the cloud (it acted) and others' answers dropped after
    acting: the runner that takes over reconciles only the creates that were admitted —
    a queued create has no intent (it is journaled once admitted) — finds the ones
    that took effect, and nothing is created twice."""
    assert _cli(tmp_path, "store", "init", "--store", postgres_dsn).returncode == 0
    plan = fleet_plan(24, duration=60).replace("account: acct}", "account: acct, rate_limits: {'*': 2}}")
    (tmp_path / "plan.yaml").write_text(plan)
    runner = ("--store", postgres_dsn, "--lease-ttl", "12", "--no-progress")
    config = {**CAPPED, "rate_limits": {"testcloud": {"*": 2}}, "faults": [
        {"kind": "latency", "seconds": 60, "after_acting": True, "action": "CreateJob", "count": 1},
        {"kind": "drop", "action": "CreateJob", "probability": 0.2}]}
    with SandboxProcess(tmp_path / "sandbox", config) as sandbox:
        first = start_runner(tmp_path, "r1", "run", "plan.yaml", "--sandbox-at", str(sandbox.directory), *runner)
        deadline = time.monotonic() + 60
        while sum(1 for e in sandbox.audit() if e.get("action") == "CreateJob") < 5:
            assert time.monotonic() < deadline and first.poll() is None, (tmp_path / "r1.err").read_text()[-3000:]
            time.sleep(0.1)
        first.send_signal(signal.SIGKILL)
        first.wait()
        time.sleep(1.0)  # what was on the wire has arrived
        sent = sum(1 for e in sandbox.audit() if e.get("action") == "CreateJob")
        second = start_runner(tmp_path, "r2", "join", "fleet", *runner)
        assert _wait(second, tmp_path, "r2") == 0
        figures = audit_figures(sandbox.audit(), {})
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        journaled = conn.execute(
            "SELECT count(*), count(*) FILTER (WHERE c.state IN ('reconciled', 'absent')) FROM batchmig_calls c "
            "JOIN batchmig_runners r ON r.run = c.run AND r.id = c.runner WHERE r.pid = %s AND c.action = 'CreateJob'",
            (first.pid,)).fetchone()
    assert journaled is not None
    intents, reconciled = journaled
    assert 5 <= intents <= sent + 1, (intents, sent)  # not the 24 it had queued (+1: admitted as it died)
    assert reconciled >= 1  # at least the create whose answer was held back: it took effect, found
    status = json.loads(_cli(tmp_path, "status", "fleet", "--store", postgres_dsn, "--format", "json").stdout)
    assert status["counts"] == {"succeeded": 24}
    assert figures["repeated_effects"] == 0 and figures["throttled"] == 0 and not figures["over_cap"], figures
