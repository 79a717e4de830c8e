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
    from batchmig.report.formats import FORMATS

    run = synthetic_report(instances)
    figures: dict[str, Any] = {"scenario": "report", "instances": instances}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt, (name, renderer) in FORMATS.items():
            started = time.perf_counter()
            text = renderer(run)
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


SCENARIOS = {"overhead": overhead, "polling": polling, "validate": validate, "fleet": fleet, "report": report,
             "webhooks": webhooks}

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
