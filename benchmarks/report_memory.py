"""Memory and CPU of a finished run's end-of-run report, phase by phase, from its journal.

    .venv/bin/python benchmarks/report_memory.py RUN_DIR OUT_DIR [--records]

What a runner does once its last request is answered, in this process: build the
report from RUN_DIR's journal (read only; copy a run you care about first) without its
step records, read the steps as the journal's rows, then write report.json and the four
files handed on into OUT_DIR from them. ``--records``: the way runners did it before
(the report built with its 325,000 step records at 100,000 instances, each file
rendered from them), to compare. For each phase it prints the RSS after it, its peak
(the kernel's high-water mark, reset before each phase) and its CPU seconds, with the
load average: a runner adds these to what its run holds.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path
from typing import Any


def _memory_mb() -> tuple[int, int]:
    """(RSS now, peak RSS since the last reset), in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the high-water mark starts again from now


def main(run_dir: Path, out_dir: Path, records: bool) -> None:
    from batchmig.journal import Journal
    from batchmig.operations import HANDED_ON
    from batchmig.report import build_run_report
    from batchmig.report.files import read_figures
    from batchmig.report.formats import prepare, write_report_files, write_run_files
    from batchmig.report.rows import step_rows

    out_dir.mkdir(parents=True, exist_ok=True)
    prepare()  # a runner pays this in a thread while it waits on the cloud
    gc.collect()
    gc.freeze()
    figures = read_figures(run_dir / "figures.json")
    journal = Journal.open(run_dir / "journal.sqlite", read_only=True)
    start, _ = _memory_mb()
    print(f"load {os.getloadavg()[0]:.2f}, RSS {start} MB before the report ({'records' if records else 'rows'})")
    report: Any = None
    rows: Any = None

    def build() -> None:
        nonlocal report, rows
        report = build_run_report(journal, figures=figures, steps=records)

    def read_rows() -> None:
        nonlocal rows
        rows = step_rows(journal)

    phases = [("build", build)] + ([] if records else [("rows", read_rows)])
    for fmt in ("json", *HANDED_ON):
        if records:
            phases.append((fmt, lambda fmt=fmt: write_report_files(out_dir, report, (fmt,))))
        else:
            phases.append((fmt, lambda fmt=fmt: write_run_files(out_dir, report, rows, (fmt,))))
    total = 0.0
    for name, phase in phases:
        _reset_peak()
        cpu = time.process_time()
        phase()
        seconds = time.process_time() - cpu
        total += seconds
        now, peak = _memory_mb()
        print(f"{name:9s} RSS {now:5d} MB, peak {peak:5d} MB (+{peak - start:4d}), CPU {seconds:5.2f} s")
    print(f"total CPU {total:.2f} s")
    journal.close()


if __name__ == "__main__":
    arguments = [argument for argument in sys.argv[1:] if argument != "--records"]
    if len(arguments) != 2:
        sys.exit(__doc__)
    main(Path(arguments[0]), Path(arguments[1]), "--records" in sys.argv[1:])
