"""The report's instance table and closing line, for the terminal.

``batchmig status`` and the summary at the end of a run print these rows through
``batchmig.listing`` (so no row is ever hidden without saying so); ``--format csv``
is the report's own CSV (``batchmig.report.csv``), one layout everywhere.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from batchmig.listing import Column
from batchmig.report.model import InstanceReport, RunReport

INSTANCE_COLUMNS = (
    Column("id", "instance"), Column("provider", "provider"), Column("wave", "wave"), Column("status", "status"),
    Column("detail", "detail"),
)

ATTENTION_ORDER = ("needs_attention", "failed", "skipped", "interrupted", "awaiting_cutover", "running", "pending")
"""When not every row fits, these come first (then the rest, succeeded last)."""


def instance_row(instance: InstanceReport) -> dict[str, Any]:
    error = instance.error
    detail = ""
    if error is not None:
        detail = f"{error.code}: {error.message}" + (f" (request {error.request_id})" if error.request_id else "")
    elif instance.status in ("awaiting_cutover", "running", "interrupted") and instance.step:
        detail = f"at {instance.step}"
    return {
        "id": instance.id, "provider": instance.provider, "wave": instance.wave, "status": instance.status,
        "step": instance.step, "detail": detail,
    }


def instance_rows(instances: Sequence[InstanceReport], *, attention_first: bool = False) -> Iterator[dict[str, Any]]:
    """Rows in plan order, or — when not all will be shown — those needing a look first."""
    ordered: Sequence[InstanceReport] = instances
    if attention_first:
        rank = {status: index for index, status in enumerate(ATTENTION_ORDER)}
        ordered = sorted(instances, key=lambda i: rank.get(i.status, len(rank)))  # stable: plan order kept
    return (instance_row(instance) for instance in ordered)


def closing_line(report: RunReport, shown: int | None = None) -> str:
    """``300 instances: 280 succeeded, 20 skipped · 1,204 calls, 3 retries, 0 throttled · 2m04s``."""
    counts = ", ".join(f"{count} {status}" for status, count in report.counts.items())
    line = f"{len(report.instances)} instances: {counts}"
    calls = report.calls
    if calls.calls:
        line += f" · {calls.calls:,} calls, {calls.retries:,} retries, {calls.throttled:,} throttled"
    if report.duration_seconds:
        line += f" · {human_seconds(report.duration_seconds)}"
    return line


def human_seconds(seconds: float) -> str:
    """``42s``, ``3m05s``, ``2h10m``."""
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{seconds:.0f}s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
