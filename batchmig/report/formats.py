"""Every file format of the report, by name, and writing them all into a run directory.

``batchmig report RUN --format NAME`` renders one; a runner that finishes or stops
writes them all beside ``report.json`` (0600, known secrets redacted, each file
replaced atomically so a reader never sees half of one).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from batchmig.report.csv import render_csv
from batchmig.report.files import render_report, write_private_text
from batchmig.report.html import render_html
from batchmig.report.junit import render_junit
from batchmig.report.markdown import render_markdown
from batchmig.report.model import RunReport

FORMATS: dict[str, tuple[str, Callable[[RunReport], str]]] = {
    "json": ("report.json", render_report),
    "html": ("report.html", render_html),
    "junit": ("report.junit.xml", render_junit),
    "markdown": ("report.md", render_markdown),
    "csv": ("report.csv", render_csv),
}
"""Format name -> (file name in the run directory, renderer)."""


def render(report: RunReport, fmt: str) -> str:
    return FORMATS[fmt][1](report)


def write_report_files(run_dir: Path, report: RunReport, formats: tuple[str, ...] = tuple(FORMATS)) -> list[Path]:
    """Write ``formats`` of ``report`` into ``run_dir``; returns the paths. Raises OSError."""
    written = []
    for fmt in formats:
        name, renderer = FORMATS[fmt]
        write_private_text(run_dir / name, renderer(report))
        written.append(run_dir / name)
    return written
