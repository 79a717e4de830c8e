"""Say which test suites ran, with their counts, and what moved when one failed.

tox runs each suite with ``--junitxml`` into one folder and carries on after a
failure; this script reads those files at the end, so one failing suite never hides
another and the output always ends with the whole picture::

    python tools/suites.py DIR --expect core,campaigns --lock requirements/constraints.txt

Exit status 1 when a suite failed, had errors, skipped a test or did not run at all.
When ``--lock`` is given and something failed, the installed versions that differ
from the lock are listed: in the ``latest`` environment that is the dependency that
moved; in ``oldest`` the lower bounds that no longer work.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import re
import sys
import xml.etree.ElementTree as ET
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--expect", required=True, help="comma-separated suite names that must have run")
    parser.add_argument("--lock", type=Path, help="a constraints file to compare installed versions with")
    parser.add_argument("--label", default="", help="the environment's name, for the heading")
    args = parser.parse_args(argv)

    expected = [name for name in args.expect.split(",") if name]
    print(f"\n=== test suites{' (' + args.label + ')' if args.label else ''} ===")
    ok = True
    for name in expected:
        path = args.directory / f"{name}.xml"
        if not path.exists():
            print(f"  {name:12} DID NOT RUN (no {path.name})")
            ok = False
            continue
        counts = read_counts(path)
        verdict = "ok" if counts.clean else "FAILED"
        print(f"  {name:12} {verdict:7} {counts.passed} passed, {counts.failures} failed, {counts.errors} errors, "
              f"{counts.skipped} skipped, {counts.seconds:.0f}s")
        ok = ok and counts.clean
    if args.lock is not None:
        moved = drift(args.lock)
        if moved and not ok:
            print(f"  dependencies that differ from {args.lock} (one of these broke the failing suite):")
        elif moved:
            print(f"  dependencies that differ from {args.lock}, all suites passing:")
        for line in moved:
            print(f"    {line}")
        if not moved:
            print(f"  every dependency is at the version {args.lock} pins")
    print("=== all suites passed ===" if ok else "=== SOME SUITES FAILED OR DID NOT RUN ===")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
