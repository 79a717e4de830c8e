"""Shared pieces of the reliability campaigns (see docs/reliability.md).

* ``SOAK`` is true under ``BATCHMIG_SOAK=1``: campaigns then use more kills, more
  instances and more generated inputs; the default is the bounded CI version.
* ``Cli`` starts the real CLI as a subprocess (``python -m batchmig``) with output
  to files — a 200-instance run logs megabytes, which would fill a pipe nobody reads —
  and kills, at the end of the test, every process it started that is still alive,
  by its own PID.
* ``figures`` collects what each campaign tried and found; the numbers are printed in
  pytest's terminal summary and, with ``BATCHMIG_CAMPAIGN_FIGURES=path``, written as
  JSON, which is where docs/reliability.md takes its measured figures from.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batchmig.testing.cli_process import cli_command
from batchmig.testing.sandbox_process import SandboxProcess

SOAK = os.environ.get("BATCHMIG_SOAK") == "1"

FIGURES: dict[str, dict[str, Any]] = {}


@dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


class Cli:
    """The real ``batchmig`` CLI in subprocesses, one working directory per test."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.started: list[subprocess.Popen[bytes]] = []
        self._count = 0

    def start(self, *args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
              plugins: tuple[object, ...] = ()) -> tuple[subprocess.Popen[bytes], Path]:
        """Start ``[PREFIX...] batchmig ARGS`` (with exactly ``plugins``, if given); returns the
        process and the stem of its output files."""
        self._count += 1
        stem = self.cwd / f"cli-{self._count:03d}"
        command = cli_command(*args, plugins=plugins) if plugins else [sys.executable, "-m", "batchmig", *args]
        with open(f"{stem}.out", "wb") as out, open(f"{stem}.err", "wb") as err:
            proc = subprocess.Popen([*prefix, *command], cwd=self.cwd, stdout=out,
                                    stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})
        self.started.append(proc)
        return proc, stem

    def run(self, *args: str, env: dict[str, str] | None = None, timeout: float = 180,
            prefix: tuple[str, ...] = (), plugins: tuple[object, ...] = ()) -> Finished:
        began = time.monotonic()
        proc, stem = self.start(*args, env=env, prefix=prefix, plugins=plugins)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            raise AssertionError(f"batchmig {' '.join(args)} did not finish within {timeout}s") from None
        return Finished(proc.returncode, *read_outputs(stem), time.monotonic() - began)

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def read_outputs(stem: Path) -> tuple[str, str]:
    return (Path(f"{stem}.out").read_text(errors="replace"), Path(f"{stem}.err").read_text(errors="replace"))


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    runner = Cli(tmp_path)
    try:
        yield runner
    finally:
        runner.cleanup()


@pytest.fixture
def sandbox_process(tmp_path: Path) -> Iterator[Any]:
    """``sandbox_process(config) -> SandboxProcess``, stopped at the end of the test."""
    opened: list[SandboxProcess] = []

    def start(config: dict[str, Any], name: str = "sandbox") -> SandboxProcess:
        box = SandboxProcess(tmp_path / name, config).__enter__()
        opened.append(box)
        return box

    try:
        yield start
    finally:
        for box in opened:
            box.__exit__(None, None, None)


@pytest.fixture
def figures(request: pytest.FixtureRequest) -> dict[str, Any]:
    """What this campaign tried and found, reported at the end of the session."""
    entry: dict[str, Any] = {"mode": "soak" if SOAK else "ci"}
    FIGURES[request.node.name] = entry
    return entry


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("reliability campaign figures")
    for name, entry in FIGURES.items():
        terminalreporter.write_line(f"{name}: {json.dumps(entry, sort_keys=True, default=str)}")
    target = os.environ.get("BATCHMIG_CAMPAIGN_FIGURES")
    if target:
        Path(target).write_text(json.dumps(FIGURES, indent=2, sort_keys=True, default=str) + "\n")
