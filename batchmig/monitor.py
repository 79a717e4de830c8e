"""What a runner tells the world while it works, besides its journal.

Every ``INTERVAL`` seconds (and once more at the end) the runner rewrites, in its run
directory, ``figures.json`` — what only this process knows: each limiter key's cap,
current rate, counters and traffic over time, polls, webhook deliveries — and
``metrics.prom``, its Prometheus metrics (also to ``--metrics-textfile`` paths, for
node_exporter's textfile collector). ``batchmig report`` and ``batchmig serve`` read
``figures.json`` beside the journal, so a report built from another process shows
the same picture as the runner's own. Webhooks are the ``Notifier``'s; the monitor
starts and stops it with the run.

Nothing here may slow the run down: a snapshot reads counters the engine keeps
anyway (no journal read), and a write that fails is logged and retried at the next
tick, never raised into the engine.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import socket
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import anyio
import structlog

from batchmig import __version__
from batchmig.engine.observer import Observers, RunObserver
from batchmig.engine.pipeline import Pipeline
from batchmig.engine.runner import Engine
from batchmig.engine.traffic import Traffic
from batchmig.metrics import RunMetrics, StepDurations, render_metrics
from batchmig.notify import Notifier, Webhook
from batchmig.report import CallSummary, InvocationRecord, LimiterKeyRecord, ProcessFigures
from batchmig.report.files import FIGURES_NAME, write_figures, write_private_text
from batchmig.report.model import NotificationRecord, moment

log = structlog.get_logger("batchmig.monitor")

INTERVAL = 5.0
METRICS_NAME = "metrics.prom"


def current_user() -> str | None:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return None


def process_figures(limiter: Any, engine: Any, invocation: InvocationRecord, traffic: Traffic | None = None,
                    notifications: Sequence[NotificationRecord] = ()) -> ProcessFigures:
    """What only this process knows for the report: each limiter key's counters, current rate and
    traffic over time, the polls, its invocation and its webhook deliveries."""
    rates = limiter.rates() if hasattr(limiter, "rates") else {}
    series = traffic.series() if traffic is not None else {}
    retries = traffic.totals if traffic is not None else {}
    keys = {
        key: LimiterKeyRecord(s.cap, s.admitted, s.waited, round(s.wait_seconds, 3), s.throttled, s.max_in_window,
                              rate=round(rates[key], 3) if key in rates else None,
                              retries=retries.get(key, [0, 0, 0])[2], series=series.get(key))
        for key, s in limiter.stats().items()
    }
    return ProcessFigures(rate_limits=keys, polls=engine.polls_by_poller, invocation=invocation,
                          notifications=tuple(notifications))


class RunMonitor:
    """The runner's live figures, metrics files and webhooks, for one invocation."""

    def __init__(self, run_dir: Path, run_id: str, command: str, *, started: float | None = None,
                 webhooks: Sequence[Webhook] = (), plan: str = "", sandbox: bool = False,
                 textfiles: Sequence[Path] = (), interval: float = INTERVAL) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.command = command
        self.started = time.time() if started is None else started
        self.notifier = Notifier(webhooks, run=run_id, plan=plan, sandbox=sandbox)
        self.steps = StepDurations()
        self.observer: RunObserver = Observers([self.steps, self.notifier])
        self._textfiles = [run_dir / METRICS_NAME, *textfiles]
        self._interval = interval
        self._engine: Engine | None = None
        self._pipeline: Pipeline | None = None

    @contextlib.asynccontextmanager
    async def watching(self, engine: Engine, pipeline: Pipeline) -> AsyncIterator[None]:
        """Write the figures every interval while the block runs; webhooks start with it."""
        self._engine, self._pipeline = engine, pipeline
        async with self.notifier, anyio.create_task_group() as tg:
            tg.start_soon(self._tick)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()

    async def _tick(self) -> None:
        while True:
            await anyio.sleep(self._interval)
            self.write(self.figures())

    def invocation(self, *, ended: float | None = None, exit_code: int | None = None,
                   stop_reason: str | None = None) -> InvocationRecord:
        assert self._pipeline is not None
        return InvocationRecord(
            self.command, moment(self.started), None if ended is None else moment(ended),
            None if ended is None else round(ended - self.started, 3), socket.gethostname(), os.getpid(),
            __version__, CallSummary(**self._pipeline.stats.as_dict()), exit_code, stop_reason, current_user(),
        )

    def figures(self, invocation: InvocationRecord | None = None) -> ProcessFigures:
        """What only this process knows, now."""
        assert self._engine is not None and self._pipeline is not None
        return process_figures(self._pipeline.limiter, self._engine, invocation or self.invocation(),
                               self._pipeline.traffic, self.notifier.records())

    def metrics(self, figures: ProcessFigures, *, active: bool) -> RunMetrics:
        assert self._engine is not None
        return RunMetrics(self.run_id, active, self._engine.progress.instances(), figures.rate_limits, self.steps,
                          figures.notifications)

    def write(self, figures: ProcessFigures, *, active: bool = True) -> None:
        """Rewrite figures.json and the metrics files; a failure is logged, never raised."""
        try:
            write_figures(self.run_dir / FIGURES_NAME, figures)
        except OSError as exc:
            log.warning("monitor.write_failed", file=FIGURES_NAME, error=exc.strerror or str(exc))
        text = render_metrics([self.metrics(figures, active=active)]).decode()
        for path in self._textfiles:
            try:
                write_private_text(path, text)
            except OSError as exc:
                log.warning("monitor.write_failed", file=str(path), error=exc.strerror or str(exc))
