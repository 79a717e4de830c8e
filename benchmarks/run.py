"""Run every benchmark scenario, each in a fresh process, and compare with the targets.

    .venv/bin/python benchmarks/run.py            # the full suite (about 5 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # smaller fleets, for a smoke check
    tox -e bench                        # the same, in its own environment

Figures are printed and written to ``bench-results/latest.json``. These are
measurements, not tests: a shared machine is noisy, so every ratio is taken within
one run and the targets are judged on the figures, not asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent


def scenario(name: str, instances: int, *extra: str) -> dict[str, Any]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(HERE / "scenarios.py"), name, "--instances", str(instances), *extra],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"scenario {name} failed:\n{proc.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["bench_seconds"] = round(time.monotonic() - started, 1)
    return figures


def check(label: str, ok: bool, detail: str) -> dict[str, Any]:
    print(f"  [{'met' if ok else 'MISSED'}] {label}: {detail}")
    return {"target": label, "met": ok, "detail": detail}


def require_batchmig() -> None:
    """The scenarios import batchmig and both plugins: say which Python has them, not a traceback."""
    missing = [name for name in ("batchmig", "batchmig_tencentcloud", "batchmig_huaweicloud")
               if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not installed for {sys.executable}: run the benchmarks with the "
                         "Python of the environment batchmig is installed in (e.g. .venv/bin/python "
                         "benchmarks/run.py after the README's set-up), or with `tox -e bench`")


def main() -> None:
    require_batchmig()
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller fleets (not comparable with the targets)")
    args = parser.parse_args()
    small, large = (200, 1000) if args.quick else (1000, 10000)
    results: dict[str, Any] = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                                           "cpus": __import__("os").cpu_count()}}
    verdicts = []

    print(f"1. rate-bound fleet ({small} mixed instances, sandbox in its own process)")
    fleet = results["fleet"] = scenario("fleet", small)
    print(f"   makespan {fleet['makespan_seconds']}s, bound {fleet['bound_seconds']}s; busiest "
          f"{fleet['busiest_action']} {fleet['busiest_calls']} calls at {fleet['busiest_admitted_rate']}/s "
          f"(cap {fleet['busiest_cap']})")
    verdicts.append(check("makespan / bound <= 1.10", fleet["makespan_over_bound"] <= 1.10,
                          str(fleet["makespan_over_bound"])))
    verdicts.append(check("zero throttle answers", fleet["sandbox_throttles"] == 0, str(fleet["sandbox_throttles"])))
    rate_share = fleet["busiest_admitted_rate"] / fleet["busiest_cap"]
    verdicts.append(check("busiest action >= 90% of its cap", rate_share >= 0.9, f"{rate_share:.1%}"))
    worst = max(fleet["max_requests_in_any_second"].items(), key=lambda kv: kv[1])
    verdicts.append(check("no sliding second above the cap (sandbox audit)", fleet["sandbox_throttles"] == 0,
                          f"busiest key {worst[0]}: {worst[1]} in one second"))

    print(f"2. polling economy ({small} long jobs, staggered random durations)")
    polling = results["polling"] = scenario("polling", small)
    verdicts.append(check("describes per instance <= 2 x oracle",
                          polling["describes_per_instance"] <= 2 * polling["oracle_describes_per_instance"],
                          f"{polling['describes_per_instance']} (oracle {polling['oracle_describes_per_instance']})"))
    verdicts.append(check("median detection delay < half a full sweep at the cap",
                          polling["detection_delay_median_s"] < polling["full_sweep_seconds_at_cap"] / 2,
                          f"median {polling['detection_delay_median_s']}s, p95 {polling['detection_delay_p95_s']}s, "
                          f"half sweep {polling['full_sweep_seconds_at_cap'] / 2}s"))

    print(f"3. engine overhead (caps out of the way; {small} and {large} instances)")
    low = results["overhead_small"] = scenario("overhead", small)
    high = results["overhead_large"] = scenario("overhead", large)
    for run in (low, high):
        print(f"   {run['instances']:>6} instances: {run['calls_per_second']} calls/s, "
              f"{run['cpu_ms_per_call']} ms CPU per call, peak RSS {run['peak_rss_mb']} MB, "
              f"journal {run['journal_mb']} MB")
    slowest = min(low["calls_per_second"], high["calls_per_second"])
    verdicts.append(check(">= 1,000 calls/s on one core", slowest >= 1000,
                          f"{low['calls_per_second']} / {high['calls_per_second']}"))
    verdicts.append(check("<= 1 ms client CPU per call", max(low["cpu_ms_per_call"], high["cpu_ms_per_call"]) <= 1.0,
                          f"{low['cpu_ms_per_call']} / {high['cpu_ms_per_call']} ms"))
    growth = high["cpu_ms_per_call"] / low["cpu_ms_per_call"]
    verdicts.append(check(f"cost per call flat from {small} to {large}", growth <= 1.25, f"x{growth:.2f}"))

    print(f"4. memory and plan size ({large} instances)")
    validate = results["validate"] = scenario("validate", large)
    verdicts.append(check("peak RSS <= 300 MB", high["peak_rss_mb"] <= 300, f"{high['peak_rss_mb']} MB"))
    verdicts.append(check("validate <= 3 s", validate["seconds"] <= 3, f"{validate['seconds']} s"))
    verdicts.append(check("journal <= 50 MB", high["journal_mb"] <= 50, f"{high['journal_mb']} MB"))

    print(f"5. durability cost ({large} instances, durable commits)")
    durable = results["overhead_durable"] = scenario("overhead", large, "--durable")
    share = durable["calls_per_second"] / high["calls_per_second"]
    verdicts.append(check("durable throughput >= 80%", share >= 0.8,
                          f"{durable['calls_per_second']} vs {high['calls_per_second']} calls/s = {share:.0%}"))

    results["verdicts"] = verdicts
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    missed = [v["target"] for v in verdicts if not v["met"]]
    print(f"\n{len(verdicts) - len(missed)} of {len(verdicts)} targets met" + (f"; missed: {missed}" if missed else ""))
    print(f"figures in {out / 'latest.json'}")


if __name__ == "__main__":
    main()
