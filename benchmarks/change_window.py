"""A change window rehearsed as an operator would, through the real CLI: the figures of issue 11.

    .venv/bin/python benchmarks/change_window.py [--instances 300] [--keep DIR]

A mixed plan (Tencent SQL Server imports, Tencent DTS jobs, Huawei DRS restores; a
canary wave with one canary per provider, then two waves; every tenth instance with a
manual cutover) goes through:

1. ``validate --env --sandbox`` and ``run --check`` with three variables missing;
2. ``run --dry-run --sandbox`` on a 50-line terminal (does it fit, what does it hold back);
3. ``run --sandbox`` with the DTS password variable unset: the DTS canary fails, the
   rest is skipped; then the variable is set and ``retry latest --status skipped``;
4. ``status`` off a terminal and on one; ``cutover latest --wave wave-a``;
5. ``report.json`` after the start and its two resumes (the retry, the cutover's
   resume) against the sandbox's audit log;
6. the dry run's makespan against a real sandbox run of the same plan with automatic
   cutovers.

Prints one JSON object of figures. Measurements, not tests: nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from batchmig.sandbox.machinery import duplicate_effects, read_audit  # noqa: E402
from tests.campaigns.fleet import DTS_JOB, KINDS, PROVIDERS, instance  # noqa: E402

BATCHMIG = [sys.executable, "-m", "batchmig"]
PASSWORD = "DTS_SOURCE_PASSWORD"
CREDENTIALS = {"TENCENTCLOUD_SECRET_ID": "AKIDx", "TENCENTCLOUD_SECRET_KEY": "k", "HUAWEICLOUD_SDK_AK": "ak",
               "HUAWEICLOUD_SDK_SK": "sk", "HUAWEICLOUD_SDK_PROJECT_ID": "p", PASSWORD: "pw"}
MANUAL_KINDS = ("tc-full-log", "dts-incremental", "drs-chain")  # the kinds with a cutover step


def plan(count: int, *, manual: bool) -> str:
    """Canary wave (one instance per provider), then wave-a and wave-b."""
    canaries = [instance("dts-full", 0), instance("tc-full", 1), instance("drs-obs", 2)]
    rest = [instance(KINDS[n % len(KINDS)], n) for n in range(3, count)]
    for number, entry in enumerate(rest):
        entry["wave"] = "wave-a" if number < len(rest) // 2 else "wave-b"
        kind = entry["id"].rsplit("-", 1)[0]
        if manual and kind in MANUAL_KINDS and number % 10 < 3:
            entry["cutover"] = "manual"
    for entry in canaries:
        entry["wave"] = "canary"
    job = {**DTS_JOB, "source": {**DTS_JOB["source"], "password_env": PASSWORD}}
    del job["source"]["password_credential"]
    document = {
        "version": 1, "name": "window", "providers": PROVIDERS,
        "defaults": {"timeouts": {"default": "2h"}, "settings": {
            "tencent-sqlserver": {"scenario": "import"}, "tencent-dts": {"migrate_type": "full", "job": job},
            "huawei-drs": {"file_source": "OBS", "bucket_name": "window-backups", "is_precheck": True}}},
        "waves": [{"name": "canary", "canary": 3, "failure_budget": 0},
                  {"name": "wave-a", "max_concurrency": 100}, {"name": "wave-b", "max_concurrency": 100}],
        "instances": canaries + rest,
    }
    return yaml.safe_dump(document, sort_keys=False)


def cli(cwd: Path, *args: str, env: dict[str, str], terminal_lines: int = 0) -> subprocess.CompletedProcess[str]:
    command = [*BATCHMIG, *args]
    if terminal_lines:  # a pseudo-terminal of that many lines (util-linux `script`)
        inner = f"stty rows {terminal_lines} cols 160; " + " ".join(map(_quote, command)) + " 2>/dev/null"
        command = ["script", "-qec", inner, "/dev/null"]
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=1800, check=False)


def _quote(text: str) -> str:
    return "'" + text.replace("'", "'\\''") + "'"


def plain(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;?]*[A-Za-z]|\r", "", text)


def seconds(text: str) -> float:
    match = re.search(r"estimated makespan: (?:(\d+)h)?(?:(\d+)m)?([\d.]+)?s?", text)
    assert match, text[-2000:]
    hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + secs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=300)
    parser.add_argument("--keep", type=Path, help="Work in DIR and keep it.")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="window-"))
    work.mkdir(parents=True, exist_ok=True)
    (work / "plan.yaml").write_text(plan(args.instances, manual=True))
    (work / "auto.yaml").write_text(plan(args.instances, manual=False))
    base = {k: v for k, v in os.environ.items() if k not in CREDENTIALS}
    base["PYTHONPATH"] = str(ROOT)
    figures: dict[str, Any] = {"instances": args.instances}

    # 1. credentials: every missing one at once
    env = {**base, **CREDENTIALS}
    for name in ("TENCENTCLOUD_SECRET_KEY", "HUAWEICLOUD_SDK_SK", PASSWORD):
        env.pop(name)
    checked = cli(work, "run", "plan.yaml", "--check", env=env)
    figures["check_exit"] = checked.returncode
    figures["check_named"] = sorted(set(re.findall(r"environment variable (\w+)", checked.stdout)))
    validated = cli(work, "validate", "plan.yaml", "--env", "--sandbox", env=base)
    figures["validate_env_sandbox_named"] = sorted(set(re.findall(r"environment variable (\w+)", validated.stdout)))

    # 2. the dry run on a 50-line terminal
    dry = cli(work, "run", "plan.yaml", "--dry-run", "--sandbox", env=base, terminal_lines=50)
    text = plain(dry.stdout)
    figures["dry_run_terminal_lines"] = len(text.rstrip("\n").splitlines())
    figures["dry_run_held_back"] = next((line.strip() for line in text.splitlines() if " more (" in line), "")
    waves = text.split("per wave")[1].split("per action")[0]
    figures["dry_run_waves"] = [" ".join(line.replace("│", " ").split()) for line in waves.splitlines()
                                if re.search(r"(canary|wave-a|wave-b) ", line)]
    figures["dry_run_estimate"] = next((line for line in text.splitlines() if "estimated makespan" in line), "")

    # 3. the canary fails for a missing variable; fixed; retry the skipped
    env = {**base, **{k: v for k, v in CREDENTIALS.items() if k != PASSWORD}}
    first = cli(work, "run", "plan.yaml", "--sandbox", "--no-progress", env=env)
    run_dir = next((work / ".batchmig" / "runs").iterdir())
    statuses = json.loads(cli(work, "status", "latest", "--format", "json", env=base).stdout)["counts"]
    figures["first_run"] = {"exit": first.returncode, "counts": statuses}
    env = {**base, **CREDENTIALS}
    retried = cli(work, "retry", "latest", "--status", "skipped", "--no-progress", env=env)
    figures["retry"] = {"exit": retried.returncode, "said": [line for line in retried.stderr.splitlines()
                                                              if line.startswith(("retrying", "also retrying"))],
                        "counts": json.loads(cli(work, "status", "latest", "--format", "json", env=base).stdout)[
                            "counts"]}
    audit = list(read_audit(run_dir / "sandbox" / "audit.jsonl"))
    figures["repeated_mutating_effects_after_retry"] = sum(n - 1 for n in duplicate_effects(audit).values())

    # 4. status everywhere; cutover by wave
    piped = cli(work, "status", "latest", env=base).stdout
    figures["status_rows_piped"] = sum(1 for line in piped.splitlines() if re.match(r"^(dts|tc|drs)-", line))
    terminal = plain(cli(work, "status", "latest", env=base, terminal_lines=50).stdout)
    figures["status_terminal"] = {
        "rows": sum(1 for line in terminal.splitlines() if re.match(r"^│ (dts|tc|drs)-", line)),
        "held_back": next((line.strip() for line in terminal.splitlines() if " more (" in line), "")}
    before = json.loads(cli(work, "status", "latest", "--format", "json", env=base).stdout)
    waiting = {i["id"]: i["wave"] for i in before["instances"] if i["status"] == "awaiting_cutover"}
    released = cli(work, "cutover", "latest", "--wave", "wave-a", "--format", "json", "--no-resume", env=env)
    answers = json.loads(released.stdout)
    resumed = cli(work, "resume", "latest", "--no-progress", env=env)
    after = json.loads(cli(work, "status", "latest", "--format", "json", env=base).stdout)
    by_id = {i["id"]: i for i in after["instances"]}
    figures["cutover_wave_a"] = {
        "awaiting_before": {w: sum(1 for v in waiting.values() if v == w) for w in sorted(set(waiting.values()))},
        "released": sum(1 for a in answers if a["outcome"] == "released"),
        "released_outside_wave_a": sum(1 for a in answers if a["outcome"] == "released"
                                       and waiting.get(a["instance"]) != "wave-a"),
        "wave_b_still_awaiting": sum(1 for iid, w in waiting.items()
                                     if w == "wave-b" and by_id[iid]["status"] == "awaiting_cutover"),
        "resume_exit": resumed.returncode,
        "audit": [{k: r[k] for k in ("kind", "user", "host", "selection", "instances")} for r in after["requests"]],
    }

    # 5. report.json after a start and two resumes, against the audit log
    report = json.loads((run_dir / "report.json").read_text())
    audit = list(read_audit(run_dir / "sandbox" / "audit.jsonl"))
    figures["report_vs_audit"] = {
        "invocations": [(i["command"], i["calls"]["calls"]) for i in report["invocations"]],
        "report_calls": report["calls"]["calls"], "audit_requests": len(audit),
        "repeated_mutating_effects": sum(n - 1 for n in duplicate_effects(audit).values()),
        "schema_version": report["schema_version"], "sandbox": report["sandbox"],
    }

    # 6. the dry run's ETA against a real run (automatic cutovers: nothing waits for a person)
    estimate = seconds(plain(cli(work, "run", "auto.yaml", "--dry-run", "--sandbox", env=base).stdout))
    started = time.monotonic()
    real = cli(work, "run", "auto.yaml", "--sandbox", "--no-progress", "--runs-root", "auto-runs", env=env)
    makespan = time.monotonic() - started
    auto_report = json.loads(next((work / "auto-runs").iterdir()).joinpath("report.json").read_text())
    figures["eta"] = {"estimated_seconds": estimate, "run_seconds": round(auto_report["duration_seconds"], 1),
                      "process_seconds": round(makespan, 1), "exit": real.returncode,
                      "error_percent": round(100 * (estimate - auto_report["duration_seconds"])
                                             / auto_report["duration_seconds"], 1)}
    print(json.dumps(figures))
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
