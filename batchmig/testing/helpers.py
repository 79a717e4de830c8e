"""Helpers behind ``batchmig.testing``: registries, plan files, a fake clock, sandbox runs."""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchmig.operations import RunOptions, RunOutcome, resume_run, start_run
from batchmig.registry import Registry, load_registry
from batchmig.sandbox.host import SandboxConfig
from batchmig.sandbox.machinery import duplicate_effects, max_per_window, read_audit


def make_registry(*plugins: object, entry_points: bool = False) -> Registry:
    """A fresh registry with ``plugins`` registered (and the installed ones if asked)."""
    return load_registry(plugins, entry_points=entry_points)


def write_plan(directory: Path, text: str, name: str = "plan.yaml") -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


class FakeClock:
    """A clock whose time moves only when told (``advance``) or slept through.

    ``sleep`` advances time by the amount slept, which is exact for code where one
    task sleeps at a time (limiter and retry tests).
    """

    def __init__(self, start: float = 1000.0) -> None:
        self.time = start
        self.slept: list[float] = []

    def now(self) -> float:
        return self.time

    def advance(self, seconds: float) -> None:
        self.time += seconds

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.time += max(0.0, seconds)


@dataclass
class SandboxRun:
    """The outcome of ``run_plan``: the run's report and what the sandbox saw."""

    outcome: RunOutcome

    @property
    def statuses(self) -> dict[str, str]:
        return self.outcome.statuses

    @property
    def report(self) -> dict[str, Any]:
        return self.outcome.report

    @property
    def audit(self) -> list[dict[str, Any]]:
        path = self.outcome.run_dir / "sandbox" / "audit.jsonl"
        return list(read_audit(path)) if path.exists() else []

    def duplicates(self) -> dict[tuple[str, str, str], int]:
        """Creates/starts that took effect more than once (should be empty)."""
        return duplicate_effects(self.audit)

    def max_per_second(self) -> dict[tuple[str, str, str], int]:
        return max_per_window(self.audit)


def run_plan(
    plan: Path,
    registry: Registry,
    workdir: Path,
    *,
    sandbox_config: SandboxConfig | None = None,
    wait_for_cutover: bool = False,
    resume: str | None = None,
) -> SandboxRun:
    """Run (or resume) ``plan`` against the in-process sandbox under ``workdir``."""
    options = RunOptions(
        runs_root=workdir / "runs",
        sandbox=True,
        sandbox_config=sandbox_config or SandboxConfig(time_scale=600),
        handle_signals=False,
        wait_for_cutover=wait_for_cutover,
    )
    if resume is not None:
        return SandboxRun(resume_run(resume, registry, options))
    return SandboxRun(start_run(str(plan), registry, options))
