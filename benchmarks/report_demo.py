"""A 1,000-instance sandbox run with failures, a throttled key and manual cutovers, its
HTML report opened in Chromium, and a screenshot of it: what `docs/benchmarks.md` shows.

    python benchmarks/report_demo.py [--instances 1000] [--out bench-results/report-1000.png]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CLI = HERE.parent / "tests" / "testcloud_cli.py"
SANDBOX = """\
time_scale: 600
faults:
  - {kind: throttle, action: StartJob, probability: 0.1, count: 60}
  - {kind: error, action: DescribeJobs, code: InternalError, probability: 0.02}
"""


def plan(instances: int) -> str:
    lines = ["version: 1", "name: report-demo", "providers:", "  tc: {type: testcloud, region: eu-1}",
             "defaults: {provider: tc}", "waves: [{name: canary, canary: 5}, {name: main}, {name: late}]",
             "instances:"]
    for n in range(instances):
        wave = "canary" if n < 5 else "main" if n < instances * 0.7 else "late"
        extra = ""
        if n % 25 == 11:
            extra = ", fail: true"
        elif n % 40 == 17:
            extra = ", reject: true"
        manual = n % 33 == 20
        settings = f"duration: {600 + (n * 37) % 2400}{extra}" + (", incremental: true" if manual else "")
        cutover = "cutover: manual, " if manual else ""
        lines.append(f"  - {{id: db-{n:04d}, wave: {wave}, {cutover}tags: {{team: t{n % 5}}}, "
                     f"settings: {{{settings}}}}}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("bench-results/report-1000.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "plan.yaml").write_text(plan(args.instances))
        (work / "sandbox.yaml").write_text(SANDBOX)
        runs = work / "runs"
        first = subprocess.run([sys.executable, str(CLI), "run", "plan.yaml", "--sandbox", "--sandbox-config",
                                "sandbox.yaml", "--runs-root", str(runs), "--no-progress"], cwd=work,
                               capture_output=True, text=True, check=False)
        print(f"run: exit {first.returncode}")
        (run_dir,) = runs.iterdir()
        half = subprocess.run([sys.executable, str(CLI), "cutover", run_dir.name, "--select", "db-00[0-4]*",
                               "--runs-root", str(runs)], cwd=work, capture_output=True, text=True, check=False)
        print(f"cutover of some (resumes the run): exit {half.returncode}")
        rest = subprocess.run([sys.executable, str(CLI), "cutover", run_dir.name, "--all", "--runs-root", str(runs)],
                              cwd=work, capture_output=True, text=True, check=False)
        print(f"cutover of the rest: exit {rest.returncode}")
        page = run_dir / "report.html"
        print(f"report.html: {page.stat().st_size / 1e6:.2f} MB")
        shoot(page, args.out)


def shoot(page: Path, out: Path) -> None:
    from playwright.sync_api import sync_playwright

    chromium = os.environ.get("BATCHMIG_TEST_CHROMIUM", "/usr/bin/chromium")
    args = ["--no-sandbox", "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--no-first-run", "--disable-quic"]
    out.parent.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=args)
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        tab.on("pageerror", lambda e: errors.append(str(e)))
        started = time.perf_counter()
        tab.goto(page.as_uri())
        tab.wait_for_selector("#app[data-rendered]")
        print(f"drawn in Chromium in {time.perf_counter() - started:.2f} s; timeline bars: "
              f"{tab.get_attribute('#timeline', 'data-bars')}; console errors: {errors or 'none'}")
        tab.locator("#errors .error-group summary").first.click()
        tab.screenshot(path=str(out), full_page=True)
        browser.close()
    print(f"screenshot: {out}")


if __name__ == "__main__":
    main()
