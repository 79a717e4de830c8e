"""Memory and CPU of a finished run's end-of-run report, phase by phase, from its journal.

    .venv/bin/python benchmarks/report_memory.py RUN_DIR OUT_DIR

What a runner does once its last request is answered, in this process: build the
report from RUN_DIR's journal (read only; copy a run you care about first), then write
report.json and the four files handed on into OUT_DIR. For each phase it prints the
RSS after it, its peak (the kernel's high-water mark, reset before each phase) and its
CPU seconds, with the load average: a runner adds these to what its run holds.
"""

from __future__ import annotations

import gc
import os
import sys
import time
from pathlib import Path


def _memory_mb() -> tuple[int, int]:
    """(RSS now, peak RSS since the last reset), in MB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return int(fields["VmRSS"].split()[0]) // 1024, int(fields["VmHWM"].split()[0]) // 1024


def _reset_peak() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # Linux: the high-water mark starts again from now


def main(run_dir: Path, out_dir: Path) -> None:
    from batchmig.journal import Journal
    from batchmig.operations import HANDED_ON
    from batchmig.report import build_run_report, write_report
    from batchmig.report.files import read_figures
    from batchmig.report.formats import prepare, write_report_files

    out_dir.mkdir(parents=True, exist_ok=True)
    prepare()  # a runner pays this in a thread while it waits on the cloud
    gc.collect()
    gc.freeze()
    figures = read_figures(run_dir / "figures.json")
    journal = Journal.open(run_dir / "journal.sqlite", read_only=True)
    start, _ = _memory_mb()
    print(f"load {os.getloadavg()[0]:.2f}, RSS {start} MB before the report")
    report = None

    def build() -> None:
        nonlocal report
        report = build_run_report(journal, figures=figures)

    phases = [("build", build), ("json", lambda: write_report(out_dir / "report.json", report))]
    phases += [(fmt, lambda fmt=fmt: write_report_files(out_dir, report, (fmt,))) for fmt in HANDED_ON]
    for name, phase in phases:
        _reset_peak()
        cpu = time.process_time()
        phase()
        seconds = time.process_time() - cpu
        now, peak = _memory_mb()
        print(f"{name:9s} RSS {now:5d} MB, peak {peak:5d} MB (+{peak - start:4d}), CPU {seconds:5.2f} s")
    journal.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(Path(sys.argv[1]), Path(sys.argv[2]))
