"""What the engine tells the surfaces that watch a run while it works.

Webhooks (``batchmig.notify``) and Prometheus metrics (``batchmig.metrics``) need to
hear of a run's moments as they happen — a wave finished, a canary failed, an
instance failed, a step took so long — not only once the report is written. The
engine calls a ``RunObserver`` at those moments; the base class ignores them all, so
an observer overrides only what it needs. Calls are synchronous and must be cheap
(count, enqueue): they run on the engine's event loop, between API calls.
``Observers`` fans one call out to several and keeps a failing observer from ever
touching the run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import structlog

from batchmig.errors import Failure

log = structlog.get_logger("batchmig.engine")


class RunObserver:
    """Receives the engine's moments; every method does nothing unless overridden."""

    def run_started(self, run_id: str, instances: int) -> None:
        """The engine starts (a first run or a resume)."""

    def instance_changed(self, instance: str, wave: str, old: str | None, new: str,
                         error: Failure | None) -> None:
        """An instance's status changed (``error`` is set for failed and skipped)."""

    def step_started(self, instance: str, provider: str, step: str) -> None:
        """A step of an instance begins (a wait step: its instance now waits on the cloud)."""

    def step_finished(self, instance: str, provider: str, step: str, seconds: float, status: str) -> None:
        """A step of an instance ended, ``succeeded`` or ``failed``, after ``seconds``."""

    def wave_started(self, wave: str, instances: int) -> None:
        """The engine starts (or resumes) ``wave``, of ``instances`` instances."""

    def wave_finished(self, wave: str, counts: Mapping[str, int]) -> None:
        """Every instance of ``wave`` has settled (finished or waiting for its cutover)."""

    def canary_failed(self, wave: str, instance: str, reason: str) -> None:
        """A canary of ``wave`` did not succeed: the rest of the run is skipped."""

    def budget_exhausted(self, wave: str, failed: int, reason: str) -> None:
        """``wave`` failed more instances than its failure budget allows."""

    def run_finished(self, counts: Mapping[str, int], stop_reason: str) -> None:
        """The engine is done (``stop_reason`` is empty unless it was stopped)."""


class Observers(RunObserver):
    """Several observers as one; an observer that raises is logged and skipped."""

    def __init__(self, observers: Sequence[RunObserver] = ()) -> None:
        self._observers = list(observers)
        self._listeners: dict[str, list[tuple[RunObserver, Callable[..., None]]]] = {}
        """Moment -> the observers that override it, with their bound methods (the engine
        tells some moments several times per instance: no look-up, no call of a no-op)."""

    def _each(self, method: str, *args: Any) -> None:
        listeners = self._listeners.get(method)
        if listeners is None:
            listeners = self._listeners[method] = [
                (observer, getattr(observer, method)) for observer in self._observers
                if getattr(type(observer), method) is not getattr(RunObserver, method)
            ]
        for observer, moment in listeners:
            try:
                moment(*args)
            except Exception as exc:  # a report surface must never take the run down
                log.warning("observer.failed", observer=type(observer).__name__, moment=method,
                            error=f"{type(exc).__name__}: {exc}")

    def run_started(self, run_id: str, instances: int) -> None:
        self._each("run_started", run_id, instances)

    def instance_changed(self, instance: str, wave: str, old: str | None, new: str,
                         error: Failure | None) -> None:
        self._each("instance_changed", instance, wave, old, new, error)

    def step_started(self, instance: str, provider: str, step: str) -> None:
        self._each("step_started", instance, provider, step)

    def step_finished(self, instance: str, provider: str, step: str, seconds: float, status: str) -> None:
        self._each("step_finished", instance, provider, step, seconds, status)

    def wave_started(self, wave: str, instances: int) -> None:
        self._each("wave_started", wave, instances)

    def wave_finished(self, wave: str, counts: Mapping[str, int]) -> None:
        self._each("wave_finished", wave, counts)

    def canary_failed(self, wave: str, instance: str, reason: str) -> None:
        self._each("canary_failed", wave, instance, reason)

    def budget_exhausted(self, wave: str, failed: int, reason: str) -> None:
        self._each("budget_exhausted", wave, failed, reason)

    def run_finished(self, counts: Mapping[str, int], stop_reason: str) -> None:
        self._each("run_finished", counts, stop_reason)
