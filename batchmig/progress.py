"""The live progress view on a terminal: counts by status, call rate against caps, ETA."""

from __future__ import annotations

import time
from typing import Any

import anyio
from rich.console import Console
from rich.live import Live
from rich.table import Table

from batchmig.engine.pipeline import Pipeline
from batchmig.engine.runner import Engine

STATUS_ORDER = ("pending", "running", "awaiting_cutover", "succeeded", "failed", "skipped", "interrupted")


def _render(engine: Engine, pipeline: Pipeline, started: float, rates: list[float]) -> Table:
    elapsed = max(0.001, time.monotonic() - started)
    counts = engine.progress.by_status
    done = sum(counts.get(s, 0) for s in ("succeeded", "failed", "skipped"))
    total = engine.progress.total
    eta = "—"
    if 0 < done < total:
        eta = f"{(total - done) * elapsed / done:.0f}s"
    table = Table(title=f"batchmig · {engine.run_id}", expand=False)
    for status in STATUS_ORDER:
        table.add_column(status.replace("_", " "), justify="right")
    table.add_column("calls/s", justify="right")
    table.add_column("throttled", justify="right")
    table.add_column("ETA", justify="right")
    calls_per_second = rates[-1] if rates else 0.0
    table.add_row(
        *(str(counts.get(s, 0)) for s in STATUS_ORDER),
        f"{calls_per_second:.1f}",
        str(pipeline.stats.throttled),
        eta,
    )
    busiest = sorted(pipeline.limiter.stats().items(), key=lambda kv: -kv[1].admitted)[:3]
    if busiest:
        caption = "  ".join(f"{key.rsplit('/', 1)[-1]}: max {s.max_in_window}/{s.cap:g} per s" for key, s in busiest)
        table.caption = caption
    return table


async def show_progress(engine: Engine, pipeline: Pipeline, console: Any = None) -> None:
    console = console or Console(stderr=True)
    started = time.monotonic()
    rates: list[float] = []
    last_calls, last_time = 0, started
    view = _render(engine, pipeline, started, rates)
    with Live(view, console=console, refresh_per_second=4, transient=False) as live:
        while True:
            await anyio.sleep(0.5)
            now = time.monotonic()
            calls = sum(pipeline.stats.sent.values())
            rates.append((calls - last_calls) / max(0.001, now - last_time))
            last_calls, last_time = calls, now
            live.update(_render(engine, pipeline, started, rates))
