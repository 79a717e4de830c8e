"""Run the test suites side by side and say which ran, with their counts.

Most suites wait on loopback sockets and sandbox clocks rather than on the CPU, so
running a few at once shortens the whole run without starving any. Each suite's
output is kept and printed in one piece when it finishes (never interleaved), and
the run always ends with the whole picture, so one failing suite never hides another::

    python tools/suites.py run DIR --jobs 3 core="pytest tests" tencent="pytest plugins/..."
    python tools/suites.py summary DIR --expect core,tencent --lock requirements/constraints.txt

``run`` adds ``--junitxml=DIR/NAME.xml`` to each command and exits 1 when any failed.
``--requires NAME=PROGRAM`` runs suite NAME only when PROGRAM is an executable (the
browser suite needs Chromium); otherwise it writes ``DIR/NAME.notrun`` saying why and
how to run it, and ``summary`` prints that loudly instead of failing: a machine
without the program still passes, and nobody mistakes that for the suite passing.
``summary`` exits 1 when a suite failed, had errors, skipped a test or did not run at
all (for a reason other than a missing required program). With ``--lock``, the
installed versions that differ from the lock are listed: in the ``latest`` environment
that is the dependency that moved; in ``oldest`` the lower bounds in use.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SuiteCounts:
    name: str
    tests: int
    failures: int
    errors: int
    skipped: int
    seconds: float

    @property
    def passed(self) -> int:
        return self.tests - self.failures - self.errors - self.skipped

    @property
    def clean(self) -> bool:
        return self.tests > 0 and not (self.failures or self.errors or self.skipped)


def read_counts(path: Path) -> SuiteCounts:
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root.iter("testsuite"))

    def total(attribute: str) -> int:
        return sum(int(s.get(attribute, "0")) for s in suites)

    seconds = sum(float(s.get("time", "0")) for s in suites)
    return SuiteCounts(path.stem, total("tests"), total("failures"), total("errors"), total("skipped"), seconds)


def locked_versions(lock: Path) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", line)
        if match:
            pins[_normal(match.group(1))] = match.group(2)
    return pins


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def drift(lock: Path) -> list[str]:
    """Installed distributions whose version differs from the lock, as 'name locked -> installed'."""
    pins = locked_versions(lock)
    moved = []
    for dist in importlib.metadata.distributions():
        name = _normal(dist.metadata["Name"] or "")
        if name in pins and pins[name] != dist.version:
            moved.append(f"{name} {pins[name]} -> {dist.version}")
    return sorted(set(moved))


def run_suite(name: str, command: str, directory: Path) -> tuple[str, int, float, str]:
    """Run one suite with its output captured: (name, exit status, seconds, output)."""
    started = time.monotonic()
    argv = [*shlex.split(command), f"--junitxml={directory / (name + '.xml')}"]
    proc = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False)
    return name, proc.returncode, time.monotonic() - started, proc.stdout


INSTALL_HINTS = {"chromium": "apt-get install chromium (as root)"}


def missing_requirement(program: str) -> bool:
    return not (os.access(program, os.X_OK) if os.sep in program else shutil.which(program))


def run_suites(directory: Path, jobs: int, suites: list[str], requires: list[str] | None = None) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    named = [entry.split("=", 1) for entry in suites]
    for requirement in requires or []:
        name, program = requirement.split("=", 1)
        note = directory / f"{name}.notrun"
        note.unlink(missing_ok=True)
        if missing_requirement(program):
            hint = INSTALL_HINTS.get(Path(program).name, f"install {program}")
            note.write_text(f"{program} is missing: {hint}, then run the tests again\n", encoding="utf-8")
            print(f"\n!!!!! suite {name} NOT RUN: {program} is missing ({hint}) !!!!!", flush=True)
            named = [entry for entry in named if entry[0] != name]
    failed = []
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [pool.submit(run_suite, name, command, directory) for name, command in named]
        for future in as_completed(futures):
            name, status, seconds, output = future.result()
            print(f"\n----- suite {name}: exit {status} after {seconds:.0f}s -----", flush=True)
            print(output, end="" if output.endswith("\n") else "\n", flush=True)
            if status != 0:
                failed.append(name)
    if failed:
        print(f"suites that failed: {', '.join(sorted(failed))}", flush=True)
    return 1 if failed else 0


def summary(directory: Path, expected: list[str], lock: Path | None, label: str) -> int:
    print(f"\n=== test suites{' (' + label + ')' if label else ''} ===")
    ok = True
    not_run: list[str] = []
    for name in expected:
        path = directory / f"{name}.xml"
        note = directory / f"{name}.notrun"
        if note.exists():
            print(f"  {name:12} NOT RUN !!! the {name} tests did not run: {note.read_text(encoding='utf-8').strip()}")
            not_run.append(name)
            continue
        if not path.exists():
            print(f"  {name:12} DID NOT RUN (no {path.name})")
            ok = False
            continue
        counts = read_counts(path)
        verdict = "ok" if counts.clean else "FAILED"
        print(f"  {name:12} {verdict:7} {counts.passed} passed, {counts.failures} failed, {counts.errors} errors, "
              f"{counts.skipped} skipped, {counts.seconds:.0f}s")
        ok = ok and counts.clean
    if lock is not None:
        moved = drift(lock)
        if moved and not ok:
            print(f"  dependencies that differ from {lock} (one of these broke the failing suite):")
        elif moved:
            print(f"  dependencies that differ from {lock}, all suites passing:")
        for line in moved:
            print(f"    {line}")
        if not moved:
            print(f"  every dependency is at the version {lock} pins")
    if ok and not_run:
        print(f"=== all suites that ran passed; NOT RUN: {', '.join(not_run)} (see above) ===")
    else:
        print("=== all suites passed ===" if ok else "=== SOME SUITES FAILED OR DID NOT RUN ===")
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run suites side by side")
    run.add_argument("directory", type=Path)
    run.add_argument("--jobs", type=int, default=3)
    run.add_argument("suites", nargs="+", metavar="NAME=COMMAND")
    run.add_argument("--requires", action="append", default=[], metavar="NAME=PROGRAM",
                     help="run suite NAME only if PROGRAM is installed (else say so loudly)")
    report = commands.add_parser("summary", help="the table of every suite's counts")
    report.add_argument("directory", type=Path)
    report.add_argument("--expect", required=True, help="comma-separated suite names that must have run")
    report.add_argument("--lock", type=Path, help="a constraints file to compare installed versions with")
    report.add_argument("--label", default="", help="the environment's name, for the heading")
    args = parser.parse_args(argv)
    if args.command == "run":
        return run_suites(args.directory, args.jobs, args.suites, args.requires)
    return summary(args.directory, [n for n in args.expect.split(",") if n], args.lock, args.label)


if __name__ == "__main__":
    sys.exit(main())
