"""The engine's observers: one fan-out to several, a failing one never touching the others."""

from __future__ import annotations

from collections.abc import Mapping

import structlog

from batchmig.engine.observer import Observers, RunObserver


class _Recorder(RunObserver):
    def __init__(self) -> None:
        self.heard: list[tuple[str, ...]] = []

    def step_finished(self, instance: str, provider: str, step: str, seconds: float, status: str) -> None:
        self.heard.append((instance, step, status))

    def run_finished(self, counts: Mapping[str, int], stop_reason: str) -> None:
        self.heard.append(("finished", stop_reason))


class _Broken(RunObserver):
    def step_finished(self, instance: str, provider: str, step: str, seconds: float, status: str) -> None:
        raise RuntimeError("the dashboard is gone")


def test_every_observer_hears_each_moment_and_a_failing_one_is_logged_and_skipped() -> None:
    first, last = _Recorder(), _Recorder()
    observers = Observers([first, Observers([_Broken(), RunObserver()]), Observers([last])])
    with structlog.testing.capture_logs() as events:
        for _ in range(2):
            observers.step_finished("db-1", "tc", "create", 0.5, "succeeded")
        observers.wave_started("w1", 3)  # nobody overrides it: nothing to hear, nothing to fail
        observers.run_finished({"succeeded": 1}, "")
    expected = [("db-1", "create", "succeeded")] * 2 + [("finished", "")]
    assert first.heard == expected
    assert last.heard == expected
    failures = [event for event in events if event["event"] == "observer.failed"]
    assert [(e["observer"], e["moment"], e["error"]) for e in failures] == [
        ("_Broken", "step_finished", "RuntimeError: the dashboard is gone")
    ] * 2
