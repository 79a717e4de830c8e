"""One benchmark scenario per process; prints one JSON object of figures.

``python benchmarks/scenarios.py SCENARIO [--instances N] [--durable]``; ``run.py``
runs them all and compares the figures with the targets. Each scenario starts the
sandbox in a process of its own (``sandbox_server.py``), runs the runner here, and
measures this process only: wall time, CPU time (all threads: signing, JSON,
limiter, journal writer and logging included) and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import resource
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from batchmig import logs
from batchmig.operations import RunOptions, start_run
from batchmig.plan.loader import load_plan
from batchmig.registry import load_registry
from batchmig.sandbox.machinery import max_admitted_per_window, max_per_window
from batchmig.testing.sandbox_process import SandboxProcess
from batchmig.testing.testcloud import TestcloudPlugin

HERE = Path(__file__).resolve().parent
UNBOUNDED = 10000


def registry() -> Any:
    return load_registry([TestcloudPlugin()])


def run_against(sandbox: SandboxProcess, plan: Path, workdir: Path, durable: bool = False) -> dict[str, Any]:
    options = RunOptions(runs_root=workdir / "runs", sandbox_at=sandbox.directory, handle_signals=False,
                         durable=durable)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    outcome = start_run(str(plan), registry(), options)
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    journal_bytes = sum(p.stat().st_size for p in outcome.run_dir.glob("journal.sqlite*"))
    return {"outcome": outcome, "wall": wall, "cpu": cpu, "journal_bytes": journal_bytes}


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


# ------------------------------------------------------------------ scenarios


def overhead(instances: int, durable: bool) -> dict[str, Any]:
    """Caps out of the way, instant jobs: what one runner process sustains."""
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plan = testcloud_plan(work / "plan.yaml", [1] * instances, UNBOUNDED, 0.05)
        config = {"time_scale": 1000, "rate_limits": {"testcloud": {"*": UNBOUNDED}}}
        with SandboxProcess(work / "sandbox", config) as sandbox:
            result = run_against(sandbox, plan, work, durable)
        outcome = result["outcome"]
        calls = outcome.report["calls"]["calls"]
        return {
            "scenario": "overhead", "instances": instances, "durable": durable,
            "succeeded": outcome.report["counts"].get("succeeded", 0), "calls": calls,
            "wall_seconds": round(result["wall"], 2), "cpu_seconds": round(result["cpu"], 2),
            "calls_per_second": round(calls / result["wall"], 1),
            "cpu_ms_per_call": round(result["cpu"] * 1000 / calls, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "journal_mb": round(result["journal_bytes"] / 1e6, 2),
        }


def polling(instances: int, durable: bool) -> dict[str, Any]:
    """Long jobs with staggered random durations: describe economy and detection delay."""
    rng = random.Random(42)
    time_scale = 10.0
    durations = [round(rng.uniform(60, 600)) for _ in range(instances)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plan = testcloud_plan(work / "plan.yaml", durations, 20, None)
        with SandboxProcess(work / "sandbox", {"time_scale": time_scale}) as sandbox:
            result = run_against(sandbox, plan, work)
            finished = _job_finish_times(sandbox.directory / "state.sqlite", time_scale)
        outcome = result["outcome"]
        noticed = _wait_step_ends(outcome.run_dir / "journal.sqlite", "wait-job")
        delays = sorted(noticed[job] - finished[job] for job in noticed if job in finished)
        describes = outcome.report["calls"]["calls_by_action"].get("DescribeJobs", 0)
        batch = 50
        sweep_at_cap = instances / 20  # one describe per job at 20/s: a full sweep without batching
        return {
            "scenario": "polling", "instances": instances,
            "succeeded": outcome.report["counts"].get("succeeded", 0),
            "describe_calls": describes,
            "describes_per_instance": round(describes / instances, 3),
            "oracle_describes_per_instance": 1.0,
            "batched_sweep_seconds_at_cap": round(instances / batch / 20, 2),
            "full_sweep_seconds_at_cap": sweep_at_cap,
            "detection_delay_median_s": round(statistics.median(delays), 3),
            "detection_delay_p95_s": round(delays[int(len(delays) * 0.95) - 1], 3),
            "wall_seconds": round(result["wall"], 1),
        }


def _job_finish_times(state: Path, time_scale: float) -> dict[str, float]:
    db = sqlite3.connect(state)
    rows = db.execute("SELECT value FROM state WHERE emulator = 'testcloud' AND kind = 'job'").fetchall()
    finished = {}
    for (value,) in rows:
        job = json.loads(value)
        if job.get("started"):
            finished[job["id"]] = job["started"] + job["duration"] / time_scale
    return finished


def _wait_step_ends(journal: Path, step: str) -> dict[str, float]:
    db = sqlite3.connect(journal)
    outputs = {row[0]: json.loads(row[1]) for row in db.execute("SELECT id, outputs FROM instances")}
    ends = {}
    for instance, ended in db.execute("SELECT instance, ended FROM steps WHERE name = ?", (step,)):
        job = outputs.get(instance, {}).get("JobId")
        if job and ended:
            ends[job] = ended
    return ends


def validate(instances: int, durable: bool) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        plan = testcloud_plan(Path(tmp) / "plan.yaml", [60] * instances, 20, None)
        start = time.perf_counter()
        loaded = load_plan(str(plan), registry())
        seconds = time.perf_counter() - start
    return {"scenario": "validate", "instances": len(loaded.instances), "seconds": round(seconds, 2)}


def fleet(instances: int, durable: bool) -> dict[str, Any]:
    """A mixed fleet of the real providers, bound by the rate caps."""
    from fleet_plan import EMULATED_WORK_SECONDS, SANDBOX_OPTIONS, TIME_SCALE, write_fleet_plan

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        plan = write_fleet_plan(work / "fleet.yaml", instances)
        with SandboxProcess(work / "sandbox", {"time_scale": TIME_SCALE, "options": SANDBOX_OPTIONS}) as sandbox:
            result = run_against(sandbox, plan, work)
            audit = sandbox.audit()
        outcome = result["outcome"]
        return {"scenario": "fleet", **fleet_figures(outcome, audit, result["wall"],
                                                     EMULATED_WORK_SECONDS / TIME_SCALE)}


def fleet_figures(outcome: Any, audit: list[dict[str, Any]], wall: float, critical_work: float) -> dict[str, Any]:
    caps = {key: stats["cap"] for key, stats in outcome.report["rate_limits"].items()}
    by_action: Counter[str] = Counter()
    for entry in audit:
        if entry.get("outcome") not in ("rejected", "throttled"):
            by_action[f"{entry['emulator']}/{entry['action']}"] += 1
    cap_of = {}
    for key, cap in caps.items():
        _provider, _account, _region, action = key.split("/")
        cap_of[action] = cap
    seconds = {k: n / cap_of.get(k.split("/")[1], 20.0) for k, n in by_action.items()}
    busiest = max(seconds, key=lambda k: seconds[k])
    bound = seconds[busiest] + critical_work
    throttled = sum(1 for e in audit if e.get("outcome") == "throttled")
    stamps = sorted(e["arrived"] for e in audit if f"{e['emulator']}/{e['action']}" == busiest
                    and e.get("outcome") != "rejected")
    admitted_rate = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0
    windows = max_per_window(audit)
    admitted = max_admitted_per_window(audit)
    return {
        "instances": len(outcome.report["instances"]),
        "counts": outcome.report["counts"],
        "makespan_seconds": round(wall, 2),
        "bound_seconds": round(bound, 2),
        "makespan_over_bound": round(wall / bound, 3),
        "busiest_action": busiest,
        "busiest_calls": by_action[busiest],
        "busiest_admitted_rate": round(admitted_rate, 2),
        "busiest_cap": cap_of.get(busiest.split("/")[1], 20.0),
        "sandbox_throttles": throttled,
        "max_requests_in_any_second": {"/".join(k): v for k, v in sorted(windows.items(), key=lambda kv: -kv[1])[:5]},
        "max_admitted_in_any_second": {"/".join(k): v for k, v in sorted(admitted.items(), key=lambda kv: -kv[1])[:5]},
    }


SCENARIOS = {"overhead": overhead, "polling": polling, "validate": validate, "fleet": fleet}

if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    parser = argparse.ArgumentParser()
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--durable", action="store_true")
    args = parser.parse_args()
    logs.configure(json_output=True, console_level=logging.ERROR)
    os.environ.setdefault("PYTHONHASHSEED", "0")
    print(json.dumps(SCENARIOS[args.scenario](args.instances, args.durable)))
