"""One benchmark scenario per process; prints one JSON object of figures.

``python benchmarks/scenarios.py SCENARIO [--instances N] [--durable]``; ``run.py``
runs them all and compares the figures with the targets. Each scenario starts the
sandbox in a process of its own (``SandboxProcess``), runs the runner here, and
measures this process only: wall time, CPU time (all threads: signing, JSON,
limiter, journal writer and logging included) and peak RSS. Verdicts about the caps
come from the sandbox's audit log and bounds from the plan (``figures.py``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from batchmig import logs
from batchmig.operations import RunOptions, start_run
from batchmig.plan.loader import load_plan
from batchmig.registry import load_registry
from batchmig.sandbox.machinery import read_audit
from batchmig.testing.sandbox_process import SandboxProcess
from batchmig.testing.testcloud import TestcloudPlugin

HERE = Path(__file__).resolve().parent
UNBOUNDED = 10000
EMULATORS = ("tencent-sqlserver", "tencent-dts", "huawei-drs", "alibaba-rds-sqlserver")


def registry() -> Any:
    return load_registry([TestcloudPlugin()])


def load_average() -> float:
    return round(os.getloadavg()[0], 2)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def run_against(sandbox: SandboxProcess, plan: Path, workdir: Path, durable: bool = False) -> dict[str, Any]:
    options = RunOptions(runs_root=workdir / "runs", sandbox_at=sandbox.directory, handle_signals=False,
                         durable=durable)
    began = time.time()  # the sandbox's audit stamps (``ts``) are on this clock
    cpu0, wall0 = time.process_time(), time.perf_counter()
    outcome = start_run(str(plan), registry(), options)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    journal_bytes = sum(p.stat().st_size for p in outcome.run_dir.glob("journal.sqlite*"))
    return {"outcome": outcome, "wall": wall, "cpu": cpu, "journal_bytes": journal_bytes, "began": began}


def testcloud_plan(path: Path, durations: list[float], rate: float, poll_interval: float | None) -> Path:
    lines = ["version: 1", "name: bench", "providers:",
             f"  tc: {{type: testcloud, region: eu-1, rate_limits: {{'*': {rate}}}}}",
             "defaults: {provider: tc}"]
    if poll_interval is not None:
        lines.append(f"run: {{poll_interval: {poll_interval}}}")
    lines.append("instances:")
    lines += [f"  - {{id: db-{i:05d}, settings: {{duration: {d}}}}}" for i, d in enumerate(durations)]
    path.write_text("\n".join(lines) + "\n")
    return path


def cap_figures(audit: list[dict[str, Any]]) -> dict[str, Any]:
    """Every key's worst second against its cap, from the sandbox's audit log."""
    from figures import worst_seconds

    rows = worst_seconds(audit)
    return {
        "sandbox_throttles": sum(row.throttled for row in rows),
        "keys_within_cap": all(row.within_cap for row in rows),
        "worst_seconds": [{"key": row.key, "cap": row.cap, "admitted": row.admitted, "sent": row.sent,
                           "throttled": row.throttled} for row in rows],
    }


def calls_of(audit: list[dict[str, Any]], action_suffix: str) -> int:
    return sum(1 for e in audit if e.get("action", "").endswith(action_suffix) and e.get("outcome") != "rejected")


# ------------------------------------------------------------------ scenarios


def fleet(instances: int, durable: bool) -> dict[str, Any]:
    """A mixed fleet of the real providers, bound by the rate caps."""
    from figures import detection_delays, per_job_polls, plan_bound
    from fleet_plan import SANDBOX_OPTIONS, TIME_SCALE, WAIT_WORK, write_fleet_plan

    def work(_instance: str, step: str) -> float:
        return WAIT_WORK[step] / TIME_SCALE

    with tempfile.TemporaryDirectory() as tmp:
        work_dir = Path(tmp)
        plan_path = write_fleet_plan(work_dir / "fleet.yaml", instances)
        bound = plan_bound(load_plan(str(plan_path), registry()), registry(), work)
        load = load_average()
        with SandboxProcess(work_dir / "sandbox", {"time_scale": TIME_SCALE, "options": SANDBOX_OPTIONS}) as sandbox:
            result = run_against(sandbox, plan_path, work_dir)
            audit = sandbox.audit()
        outcome = result["outcome"]
        report = outcome.report  # read from the run directory, which goes with ``tmp``
        delays = detection_delays(outcome.run_dir / "journal.sqlite", work, set(WAIT_WORK))
        evidence = _keep_if_throttled(audit, work_dir / "sandbox", outcome.run_dir)
    waits = delays.count
    describes = sum(calls_of(audit, action) for action in FLEET_DESCRIBES)
    return {
        "scenario": "fleet", "instances": instances, "load_average": load, "counts": report["counts"],
        "makespan_seconds": round(result["wall"], 2), "bound_seconds": bound.seconds,
        "key_bound_seconds": bound.key_seconds, "ideal_run_seconds": bound.ideal_seconds,
        "strict_floor_seconds": bound.strict_floor, "bound_key": bound.key, "bound_calls": bound.calls,
        "bound_cap": bound.cap, "makespan_over_bound": round(result["wall"] / bound.seconds, 3),
        "makespan_over_floor": round(result["wall"] / bound.strict_floor, 3),
        "busiest_admitted_rate": _admitted_rate(audit, bound.key),
        "makespan_parts": _makespan_parts(audit, bound, result["began"], result["wall"]),
        "describes_per_instance": round(describes / instances, 3),
        "polls_per_job": per_job_polls(report, waits),
        "detection_delay": delays.as_dict(),
        **cap_figures(audit),
        **({"throttle_evidence": evidence} if evidence else {}),
    }


EVIDENCE_ROOT = Path(__file__).resolve().parent.parent / "bench-results"


def _keep_if_throttled(audit: list[dict[str, Any]], sandbox_dir: Path, run_dir: Path) -> str | None:
    """A throttle breaks batchmig's first promise: keep what explains it (the sandbox's
    audit, with every request's kernel and handler stamps, and the run's journal and
    events) in ``bench-results/throttled-<time>/``; None when nothing was throttled."""
    if not any(entry.get("outcome") == "throttled" for entry in audit):
        return None
    keep = EVIDENCE_ROOT / time.strftime("throttled-%Y%m%dT%H%M%S")
    keep.mkdir(parents=True, exist_ok=True)
    for source in (sandbox_dir / "audit.jsonl", run_dir / "journal.sqlite", run_dir / "events.jsonl"):
        if source.exists():
            shutil.copy2(source, keep / source.name)
    return str(keep)


FLEET_DESCRIBES = ("DescribeBackupMigration", "DescribeMigrateJobs", "ListReplicationJobs", "DescribeMigrateTasks",
                   "DescribeMigrateTaskById")
"""The fleet's polling actions (a batched describe counts once)."""


def _makespan_parts(audit: list[dict[str, Any]], bound: Any, began: float, wall: float) -> dict[str, float]:
    """Where the makespan goes, from the sandbox's audit stamps of the bound's key: the run's
    start until its first call (plan, journal, the calls it must wait for), the span of its
    calls against ``(n - 1) / cap``, its last call until the run's last request (the work after
    it and its detection), and the last request until the run returned (report and close)."""
    provider, _region, action = bound.key.split("/")
    calls = sorted(e["ts"] for e in audit if e.get("emulator") == provider and e.get("action") == action
                   and e.get("outcome") != "throttled")
    last = max(e["ts"] for e in audit)
    span = calls[-1] - calls[0]
    ideal = (len(calls) - 1) / bound.cap
    return {"before_first_call": round(calls[0] - began, 3), "calls_span": round(span, 3),
            "calls_span_at_cap": round(ideal, 3), "after_last_call": round(last - calls[-1], 3),
            "after_last_request": round(began + wall - last, 3)}


def _admitted_rate(audit: list[dict[str, Any]], bound_key: str) -> float:
    """Admissions per second of the bound's key over its busy span (first to last)."""
    provider, _region, action = bound_key.split("/")  # the providers' emulators share their names
    stamps = sorted(e["decided"] for e in audit if e.get("emulator") == provider
                    and e.get("action") == action and "decided" in e and e.get("outcome") != "throttled")
    return round((len(stamps) - 1) / (stamps[-1] - stamps[0]), 2) if len(stamps) > 1 else 0.0


def polling(instances: int, durable: bool) -> dict[str, Any]:
    """Jobs of 10 s to 10 min (cloud time): detection delay, describes, makespan / bound."""
    from figures import per_job_polls, plan_bound, summarise

    rng = random.Random(42)
    time_scale = 10.0
    durations = [round(rng.uniform(10, 600)) for _ in range(instances)]
    by_id = {f"db-{i:05d}": d / time_scale for i, d in enumerate(durations)}
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = Path(tmp)
        plan_path = testcloud_plan(work_dir / "plan.yaml", durations, 20, None)
        bound = plan_bound(load_plan(str(plan_path), registry()), registry(), lambda iid, _step: by_id[iid])
        load = load_average()
        with SandboxProcess(work_dir / "sandbox", {"time_scale": time_scale}) as sandbox:
            result = run_against(sandbox, plan_path, work_dir)
            finished = _job_finish_times(sandbox.directory / "state.sqlite", time_scale)
            audit = sandbox.audit()
        outcome = result["outcome"]
        report = outcome.report  # read from the run directory, which goes with ``tmp``
        noticed = _wait_step_ends(outcome.run_dir / "journal.sqlite", "wait-job")
    delays = summarise([noticed[job] - finished[job] for job in noticed if job in finished])
    describes = calls_of(audit, "DescribeJobs")
    return {
        "scenario": "polling", "instances": instances, "load_average": load,
        "succeeded": report["counts"].get("succeeded", 0),
        "makespan_seconds": round(result["wall"], 2), "bound_seconds": bound.seconds, "bound_key": bound.key,
        "key_bound_seconds": bound.key_seconds, "ideal_run_seconds": bound.ideal_seconds,
        "makespan_over_bound": round(result["wall"] / bound.seconds, 3),
        "describe_calls": describes, "describes_per_instance": round(describes / instances, 3),
        "polls_per_job": per_job_polls(report, instances),
        "detection_delay": delays.as_dict(),
        **cap_figures(audit),
    }


def _job_finish_times(state: Path, time_scale: float) -> dict[str, float]:
    import sqlite3

    db = sqlite3.connect(state)
    rows = db.execute("SELECT value FROM state WHERE emulator = 'testcloud' AND kind = 'job'").fetchall()
    finished = {}
    for (value,) in rows:
        job = json.loads(value)
        if job.get("started"):
            finished[job["id"]] = job["started"] + job["duration"] / time_scale
    return finished


def _wait_step_ends(journal: Path, step: str) -> dict[str, float]:
    import sqlite3

    db = sqlite3.connect(journal)
    outputs = {row[0]: json.loads(row[1]) for row in db.execute("SELECT id, outputs FROM instances")}
    ends = {}
    for instance, ended in db.execute("SELECT instance, ended FROM steps WHERE name = ?", (step,)):
        job = outputs.get(instance, {}).get("JobId")
        if job and ended:
            ends[job] = ended
    return ends


def overhead(instances: int, durable: bool, keep: Path | None = None) -> dict[str, Any]:
    """The real providers with caps out of the way and near-instant work: what one
    runner process costs per call, its memory and journal, and how fast ``status``
    reads the finished run.

    The plan, the sandbox's files and the run directory are written under ``keep`` and
    left there when it is given; otherwise under a temporary directory, which is kept
    too (and named in the figures and on stderr) when not every instance succeeded, so
    that a failed run can be read afterwards."""
    from fleet_plan import SANDBOX_OPTIONS, write_fleet_plan

    work_dir = Path(tempfile.mkdtemp(prefix="overhead-")) if keep is None else keep
    work_dir.mkdir(parents=True, exist_ok=True)
    kept = True
    try:
        plan = write_fleet_plan(work_dir / "plan.yaml", instances, rate=UNBOUNDED, run="{poll_interval: 0.05}")
        config = {"time_scale": 100000, "options": SANDBOX_OPTIONS,
                  "rate_limits": {name: {"*": UNBOUNDED} for name in EMULATORS}}
        load = load_average()
        children = _children_cpu()  # the sandbox is the only child that ends meanwhile
        with SandboxProcess(work_dir / "sandbox", config) as sandbox:
            result = run_against(sandbox, plan, work_dir, durable)
            # Read line by line: a list of a 100,000-instance run's audit would add to the peak RSS.
            requests = throttles = 0
            for entry in read_audit(sandbox.audit_path):
                requests += 1
                throttles += entry.get("outcome") == "throttled"
        sandbox_cpu = _children_cpu() - children
        outcome = result["outcome"]
        rss = peak_rss_mb()
        runs = ["--runs-root", str(work_dir / "runs")]
        status = {fmt: _cli_seconds(["status", outcome.run_id, *runs, "--format", fmt])
                  for fmt in ("text", "json", "csv")}
        status["report html"] = _cli_seconds(["report", outcome.run_id, *runs, "--format", "html",
                                              "-o", str(work_dir / "report.html")])
        succeeded = outcome.report["counts"].get("succeeded", 0)
        kept = keep is not None or succeeded != instances
    finally:
        if kept:
            print(f"overhead: run directory kept in {work_dir}", file=sys.stderr)
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    calls = outcome.report["calls"]["calls"]
    return {
        "scenario": "overhead", "instances": instances, "durable": durable, "load_average": load,
        "succeeded": succeeded, "calls": calls, "throttles": throttles,
        "run_dir": str(outcome.run_dir) if kept else None,
        "wall_seconds": round(result["wall"], 2), "cpu_seconds": round(result["cpu"], 2),
        "calls_per_second": round(calls / result["wall"], 1),
        "cpu_ms_per_call": round(result["cpu"] * 1000 / calls, 3),
        "peak_rss_mb": rss, "journal_mb": round(result["journal_bytes"] / 1e6, 2),
        "status_seconds": status,
        # The emulators' own cost: when it nears the runner's, the sandbox bounds the run.
        "sandbox_cpu_seconds": round(sandbox_cpu, 2),
        "sandbox_cpu_ms_per_request": round(sandbox_cpu * 1000 / max(requests, 1), 3),
    }


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _cli_seconds(args: list[str]) -> float:
    """Wall seconds of one ``batchmig`` command in a process of its own (output discarded)."""
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "batchmig", *args], stdout=subprocess.DEVNULL, check=True)
    return round(time.perf_counter() - started, 2)


def _child_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1)


def validate(instances: int, durable: bool) -> dict[str, Any]:
    """``batchmig validate`` and ``run --dry-run`` of the mixed fleet, each in a process of its own."""
    from fleet_plan import write_fleet_plan

    with tempfile.TemporaryDirectory() as tmp:
        plan = write_fleet_plan(Path(tmp) / "plan.yaml", instances)
        load = load_average()
        validate_seconds = _cli_seconds(["validate", str(plan)])
        validate_rss = _child_rss_mb()
        dry_seconds = _cli_seconds(["run", str(plan), "--dry-run"])
        dry_rss = _child_rss_mb()  # the largest child so far: the dry run when it is the larger
    return {"scenario": "validate", "instances": instances, "load_average": load,
            "validate_seconds": validate_seconds, "validate_peak_rss_mb": validate_rss,
            "dry_run_seconds": dry_seconds, "dry_run_peak_rss_mb": max(dry_rss, validate_rss)}


def sidebyside(instances: int, durable: bool) -> dict[str, Any]:
    """The same Tencent cold-backup imports (10 s of work each), by batchmig and by the
    SDK script a DBA writes today (``peer.py``), each against a fresh sandbox of the
    same configuration, one after the other in this run."""
    from fleet_plan import imports_of
    from peer import SETTINGS, Import, run_peer

    from batchmig_tencentcloud.emulator import DEMO_SECRET_ID, DEMO_SECRET_KEY

    results: dict[str, Any] = {"scenario": "sidebyside", "instances": instances, "load_average": load_average()}
    with tempfile.TemporaryDirectory() as tmp:
        work_dir = Path(tmp)
        mine = _batchmig_imports(work_dir, instances)
        results["bound_seconds"] = mine.pop("bound_seconds")
        results["batchmig"] = mine
        imports = [Import(*item) for item in imports_of(instances)]
        for name, setting in SETTINGS.items():
            with SandboxProcess(work_dir / f"peer-{name}", IMPORTS_SANDBOX) as sandbox:
                figures = run_peer(setting, sandbox.endpoints["tencent-sqlserver"], (DEMO_SECRET_ID, DEMO_SECRET_KEY),
                                   "ap-guangzhou", imports, IMPORTS_TIME_SCALE)
                results[f"peer_{name}"] = {**figures, **_side_figures(sandbox.audit(), instances)}
    return results


IMPORTS_TIME_SCALE = 60.0
"""600 cloud seconds of import = 10 s of wall time."""
IMPORTS_SANDBOX = {"time_scale": IMPORTS_TIME_SCALE, "options": {"tencent-sqlserver": {"import_seconds": 600}}}


def imports(instances: int, durable: bool) -> dict[str, Any]:
    """Tencent cold-backup imports of 10 s each, by batchmig alone: makespan / bound next to
    describes per instance and the detection delay (the side by side's batchmig half)."""
    with tempfile.TemporaryDirectory() as tmp:
        return {"scenario": "imports", "instances": instances, "load_average": load_average(),
                **_batchmig_imports(Path(tmp), instances)}


def _batchmig_imports(work_dir: Path, instances: int) -> dict[str, Any]:
    from figures import detection_delays, per_job_polls, plan_bound
    from fleet_plan import write_fleet_plan

    work = 600 / IMPORTS_TIME_SCALE
    plan_path = write_fleet_plan(work_dir / "imports.yaml", instances, kinds=1)
    bound = plan_bound(load_plan(str(plan_path), registry()), registry(), lambda _i, _s: work)
    with SandboxProcess(work_dir / "batchmig", IMPORTS_SANDBOX) as sandbox:
        result = run_against(sandbox, plan_path, work_dir)
        audit = sandbox.audit()
    outcome = result["outcome"]
    return {"makespan_seconds": round(result["wall"], 2), "bound_seconds": bound.seconds,
            "makespan_over_bound": round(result["wall"] / bound.seconds, 3),
            "succeeded": outcome.report["counts"].get("succeeded", 0),
            "polls_per_job": per_job_polls(outcome.report, instances),
            "detection_delay": detection_delays(outcome.run_dir / "journal.sqlite", lambda _i, _s: work,
                                                {"wait-import"}).as_dict(),
            **_side_figures(audit, instances)}


def scaleout(instances: int, durable: bool, runners: int = 1, limiter: str = "shares",
             kill_one: bool = False) -> dict[str, Any]:
    """The mixed fleet worked by ``runners`` runner processes sharing one PostgreSQL store
    (a throw-away server) and one rate budget.
    ``kill_one``: the first runner is killed (SIGKILL) a third of the way in, and the delay
    until another runner takes over one of its instances is measured (it cannot be
    shorter than what was left of the lease, 10 s here, renewed every third of it)."""
    import signal

    from figures import plan_bound
    from fleet_plan import SANDBOX_OPTIONS, TIME_SCALE, WAIT_WORK, write_fleet_plan

    from batchmig.testing.postgres import ThrowawayPostgres

    server = ThrowawayPostgres()
    dsn = server.start()
    results: dict[str, Any] = {"scenario": "scaleout", "instances": instances, "runners": runners,
                               "limiter": limiter, "load_average": load_average()}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work_dir = Path(tmp)
            plan_path = write_fleet_plan(work_dir / "fleet.yaml", instances, run="{call_timeout: 3s}")
            bound = plan_bound(load_plan(str(plan_path), registry()), registry(),
                               lambda _i, step: WAIT_WORK[step] / TIME_SCALE)
            cli = [sys.executable, "-m", "batchmig"]
            subprocess.run([*cli, "store", "init", "--store", dsn], check=True, capture_output=True)
            common = ["--store", dsn, "--limiter", limiter, "--lease-ttl", "10", "--no-progress"]
            config = {"time_scale": TIME_SCALE, "options": SANDBOX_OPTIONS}
            with SandboxProcess(work_dir / "sandbox", config) as sandbox:
                started = time.perf_counter()
                procs = []
                for n in range(runners):
                    args = (["run", str(plan_path), "--sandbox-at", str(sandbox.directory)] if n == 0
                            else ["join", "bench-fleet"])
                    with open(work_dir / f"r{n}.err", "wb") as err:
                        procs.append(subprocess.Popen([*cli, *args, *common], cwd=work_dir,
                                                      stdout=subprocess.DEVNULL, stderr=err))
                    if n == 0:
                        _until_run_recorded(dsn, procs[0])  # `join` needs the run in the store
                killed_at = None
                if kill_one and runners > 1:
                    time.sleep(bound.seconds / 3)
                    procs[0].send_signal(signal.SIGKILL)
                    killed_at = time.time()
                codes = [proc.wait(timeout=1800) for proc in procs]
                makespan = time.perf_counter() - started
                audit = sandbox.audit()
            events = [_events(work_dir / f"r{n}.err") for n in range(runners)]
            if os.environ.get("BENCH_KEEP"):
                for n in range(runners):
                    (Path(os.environ["BENCH_KEEP"]) / f"r{n}.err").write_bytes((work_dir / f"r{n}.err").read_bytes())
    finally:
        server.destroy()
    finished = [e for stream in events for e in stream if e.get("event") == "runner.finished"]
    calls = sum(1 for e in audit if "decided" in e)  # every API call the sandbox judged
    purposes: dict[str, int] = {}
    for event in finished:
        for purpose, trips in event.get("store_round_trips_by", {}).items():
            purposes[purpose] = purposes.get(purpose, 0) + trips
    ended = ("instance.succeeded", "instance.failed", "instance.needs_attention")
    results.update({
        "exit_codes": codes, "makespan_seconds": round(makespan, 2), "bound_seconds": bound.seconds,
        "makespan_over_bound": round(makespan / bound.seconds, 3),
        "api_calls": calls,
        "store_round_trips_per_call": round(sum(e.get("store_round_trips", 0) for e in finished) / max(1, calls), 3),
        "store_round_trips_per_call_by": {p: round(n / max(1, calls), 3) for p, n in sorted(purposes.items())},
        "store_statements_per_call": round(sum(e.get("store_statements", 0) for e in finished) / max(1, calls), 3),
        # the instances each runner finished (a killed runner's: up to its death), and
        # the ones it claimed and handed back to runners that joined before it sent anything
        "instances_per_runner": [sum(1 for e in stream if e.get("event") in ended) for stream in events],
        "handed_back_per_runner": [sum(1 for e in stream if e.get("event") == "instance.handed_back")
                                   for stream in events],
        **cap_figures(audit),
    })
    if killed_at is not None:
        claims = [_seconds(e["timestamp"]) for stream in events[1:] for e in stream
                  if e.get("event") == "instance.claimed"]
        later = [t - killed_at for t in claims if t > killed_at]
        results["takeover_delay_seconds"] = round(min(later), 2) if later else None
        results["taken_over"] = sum(e.get("taken_over", 0) for e in finished)
        # the calls the dead runner left unresolved, each reconciled at the cloud by the new owner
        results["taken_over_unresolved_calls"] = sum(e.get("unresolved_calls", 0) for stream in events[1:]
                                                     for e in stream if e.get("event") == "instance.claimed")
    return results


def _until_run_recorded(dsn: str, first: subprocess.Popen[bytes], timeout: float = 120) -> None:
    """Until the first runner has recorded the run in the store (a loaded machine takes
    seconds to start a Python process: a `join` before that ends with exit 2)."""
    import psycopg

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and first.poll() is None:
        with psycopg.connect(dsn) as conn:
            if conn.execute("SELECT 1 FROM batchmig_runs").fetchone():
                return
        time.sleep(0.2)
    raise SystemExit("the first runner did not record the run in the store")


def _events(path: Path) -> list[dict[str, Any]]:
    """The JSON log lines of a runner's stderr."""
    events = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
    return events


def _seconds(stamp: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _side_figures(audit: list[dict[str, Any]], instances: int) -> dict[str, Any]:
    caps = cap_figures(audit)
    worst = max(caps["worst_seconds"], key=lambda row: row["sent"] / row["cap"])
    return {"throttles": caps["sandbox_throttles"],
            "describes_per_instance": round(calls_of(audit, "DescribeBackupMigration") / instances, 2),
            "worst_second": {"key": worst["key"], "sent": worst["sent"], "admitted": worst["admitted"],
                             "cap": worst["cap"]}}


# ------------------------------------------------------------------ report surfaces


def synthetic_report(instances: int) -> Any:
    """A finished report of ``instances`` instances: 4 steps each, 5% failed over 4 cloud codes,
    2% awaiting a cutover, traffic over an hour on 6 keys (rendering cost does not depend on how
    the run went, only on how much there is)."""
    from datetime import UTC, datetime, timedelta

    from batchmig.report.model import (
        CallSummary,
        ErrorRecord,
        InstanceReport,
        LimiterKeyRecord,
        RunReport,
        StepRecord,
        TrafficSeries,
        WaveSummary,
    )

    rng = random.Random(7)
    t0 = datetime(2026, 11, 1, 22, 0, tzinfo=UTC)
    rows = []
    for n in range(instances):
        start = t0 + timedelta(seconds=n * 0.3)
        steps, clock = [], start
        status = "failed" if n % 20 == 7 else "awaiting_cutover" if n % 50 == 3 else "succeeded"
        for index, name in enumerate(("create-job", "start-job", "wait-job", "complete-job")):
            took = rng.uniform(0.05, 1.0) if index != 2 else rng.uniform(300, 1800)
            ended = clock + timedelta(seconds=took)
            last = status == "failed" and index == 2
            steps.append(StepRecord(index, name, "failed" if last else "succeeded", clock, ended, round(took, 3)))
            clock = ended
            if last or (status == "awaiting_cutover" and index == 2):
                break
        error = ErrorRecord("failed", ("JobFailed", "InternalError", "InvalidParameterValue", "OperationDenied")[n % 4],
                            f"the job of db-{n:05d} failed: restore of backup set {n} was refused", f"req-{n:08x}",
                            "wait-job") if status == "failed" else None
        rows.append(InstanceReport(f"db-{n:05d}", "testcloud", f"wave-{n * 4 // instances}", status,
                                   "complete-job" if status == "awaiting_cutover" else None, len(steps), clock,
                                   {"JobId": f"job-{n:06d}"}, tuple(steps), error, {"team": f"t{n % 7}"}, "auto"))
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    series = TrafficSeries(t0, 8.0, tuple(rng.randint(100, 160) for _ in range(450)),
                           tuple(rng.randint(0, 2) for _ in range(450)), tuple(rng.randint(0, 3) for _ in range(450)))
    keys = {f"testcloud/acct/eu-1/{action}": LimiterKeyRecord(20.0, 9000, 8000, 100.0, 12, 20, rate=20.0, retries=30,
                                                              series=series)
            for action in ("CreateJob", "StartJob", "DescribeJobs", "CompleteJob", "DescribeRegions", "ListJobs")}
    waves = tuple(WaveSummary(f"wave-{w}", sum(1 for r in rows if r.wave == f"wave-{w}"),
                              {s: sum(1 for r in rows if r.wave == f"wave-{w}" and r.status == s) for s in counts})
                  for w in range(4))
    return RunReport(1, "bench-run", "/plans/fleet.yaml", "0" * 64, True, "failed", t0, t0 + timedelta(hours=1),
                     3600.0, 3600.0, counts, CallSummary(calls=54000), waves=waves, rate_limits=keys,
                     instances=tuple(rows))


def report(instances: int, durable: bool) -> dict[str, Any]:
    """Render every report format of a large run; load the HTML in Chromium when it is installed."""
    from batchmig.report.formats import FORMATS, render

    run = synthetic_report(instances)
    figures: dict[str, Any] = {"scenario": "report", "instances": instances}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, (name, _) in FORMATS.items():
            started = time.perf_counter()
            text = render(run, fmt)
            figures[f"{fmt}_seconds"] = round(time.perf_counter() - started, 3)
            figures[f"{fmt}_bytes"] = len(text.encode())
            (Path(tmp) / name).write_text(text, encoding="utf-8")
        figures["browser_seconds"] = _browser_load(Path(tmp) / "report.html")
    return figures


def _browser_load(page: Path) -> float | None:
    """Seconds from navigation until the report has drawn itself (timeline included), in Chromium."""
    chromium = os.environ.get("BATCHMIG_TEST_CHROMIUM", "/usr/bin/chromium")
    if not os.access(chromium, os.X_OK):
        return None
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-quic"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=args)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        started = time.perf_counter()
        tab.goto(page.as_uri())
        tab.wait_for_selector("#app[data-rendered]", timeout=120_000)
        seconds = time.perf_counter() - started
        browser.close()
    return round(seconds, 2)


def webhooks(instances: int, durable: bool) -> dict[str, Any]:
    """One rate-bound fleet run four times: no webhook, and webhooks to a receiver that answers
    204, answers 500, or never answers. The runs' makespans must not differ by more than 1%."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    mode = {"value": "ok"}

    class Receiver(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            if mode["value"] == "hang":
                time.sleep(30)
                return
            self.send_response(204 if mode["value"] == "ok" else 500)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    os.environ["BENCH_HOOK_SECRET"] = "bench-webhook-secret"
    results: dict[str, Any] = {"scenario": "webhooks", "instances": instances}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        rng = random.Random(3)
        with SandboxProcess(work / "sandbox", {"time_scale": 60}) as sandbox:
            for case in ("none", "ok", "error", "hang"):
                mode["value"] = case
                plan = work / f"plan-{case}.yaml"
                lines = ["version: 1", "name: bench-hooks", "providers:", "  tc: {type: testcloud, region: eu-1}",
                         "defaults: {provider: tc}"]
                if case != "none":
                    lines += ["notify:", f"  - {{name: bench, url: '{url}', secret: '${{env:BENCH_HOOK_SECRET}}'}}"]
                lines.append("instances:")
                lines += [f"  - {{id: {case}-{i:05d}, settings: {{duration: {rng.randint(30, 90)}"
                          + (", fail: true" if i % 10 == 3 else "") + "}}" for i in range(instances)]
                plan.write_text("\n".join(lines) + "\n")
                run = run_against(sandbox, plan, work)
                outcome = run["outcome"]
                invocation = outcome.report["invocations"][-1]
                notes = outcome.report.get("notifications") or [{}]
                results[case] = {"makespan_seconds": round(run["wall"], 2),
                                 "engine_seconds": invocation["duration_seconds"],
                                 "delivered": notes[0].get("delivered"), "failed": notes[0].get("failed"),
                                 "dropped": notes[0].get("dropped"), "events": notes[0].get("events")}
    server.shutdown()
    base = results["none"]["makespan_seconds"]
    for case in ("ok", "error", "hang"):
        results[case]["vs_none"] = round(results[case]["makespan_seconds"] / base - 1, 4)
    return results


SCENARIOS = {"overhead": overhead, "polling": polling, "validate": validate, "fleet": fleet,
             "sidebyside": sidebyside, "imports": imports, "scaleout": scaleout, "report": report, "webhooks": webhooks}

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--durable", action="store_true")
    parser.add_argument("--runners", type=int, default=1, help="scaleout: runner processes")
    parser.add_argument("--limiter", choices=["shares", "exact"], default="shares", help="scaleout: limiter mode")
    parser.add_argument("--kill-one", action="store_true", help="scaleout: kill the first runner a third of the way in")
    parser.add_argument("--keep", type=Path, help="overhead: write the plan and runs here and keep them")
    args = parser.parse_args()
    logs.configure(json_output=True, console_level=logging.ERROR)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    extra = ({"runners": args.runners, "limiter": args.limiter, "kill_one": args.kill_one}
             if args.scenario == "scaleout" else {"keep": args.keep} if args.scenario == "overhead" else {})
    print(json.dumps(SCENARIOS[args.scenario](args.instances, args.durable, **extra)))
