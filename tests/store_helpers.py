"""Helpers for the shared-store tests and campaigns: plans, runner processes, audit figures."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from batchmig.sandbox.machinery import duplicate_effects, max_per_window

HERE = Path(__file__).parent
TESTCLOUD_CLI = HERE / "testcloud_cli.py"


def fleet_plan(
    count: int,
    *,
    name: str = "fleet",
    account: str = "acct",
    waves: int = 1,
    incremental_every: int = 0,
    duration: float = 30,
    call_timeout: str = "3s",
    canary: int = 0,
    fail: tuple[str, ...] = (),
    budget: str | None = None,
    manual_every: int = 0,
    max_concurrency: int | None = None,
) -> str:
    """A testcloud plan of ``count`` instances over ``waves`` waves."""
    lines = [
        "version: 1",
        f"name: {name}",
        f"run: {{call_timeout: {call_timeout}, max_concurrency: {max_concurrency or 1000}}}",
        f"providers: {{tc: {{type: testcloud, region: r1, account: {account}}}}}",
        "defaults: {provider: tc}",
        "waves:",
    ]
    for wave in range(waves):
        extra = f", canary: {canary}" if canary and wave == 0 else ""
        extra += f", failure_budget: {budget}" if budget else ""
        lines.append(f"  - {{name: w{wave}{extra}}}")
    lines.append("instances:")
    per_wave = max(1, count // waves)
    for index in range(count):
        iid = f"{name}-{index:04d}"
        settings = [f"duration: {duration}"]
        if incremental_every and index % incremental_every == 0:
            settings.append("incremental: true")
        if iid in fail:
            settings.append("fail: true")
        cutover = ", cutover: manual" if manual_every and index % manual_every == 0 else ""
        wave = min(index // per_wave, waves - 1)
        lines.append(f"  - {{id: {iid}, wave: w{wave}{cutover}, settings: {{{', '.join(settings)}}}}}")
    return "\n".join(lines) + "\n"


def runner_command(*args: str) -> list[str]:
    """The real CLI with the core's testcloud provider registered."""
    return [sys.executable, str(TESTCLOUD_CLI), *args]


def start_runner(cwd: Path, stem: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(cwd / f"{stem}.out", "wb") as out, open(cwd / f"{stem}.err", "wb") as err:
        return subprocess.Popen(runner_command(*args), cwd=cwd, stdout=out, stderr=err,
                                env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})})


def audit_figures(entries: list[dict[str, Any]], caps: dict[str, float]) -> dict[str, Any]:
    """What the sandbox saw: repeated effects and the worst sliding second per (credential, action)."""
    windows = max_per_window(entries)
    over = {f"{k[1]}/{k[2]}": v for k, v in windows.items() if v > caps.get(k[2], 20)}
    return {
        "requests": len(entries),
        "repeated_effects": len(duplicate_effects(entries)),
        "throttled": sum(1 for e in entries if e.get("outcome") == "throttled"),
        "worst_second": {f"{k[1]}/{k[2]}": v for k, v in sorted(windows.items())},
        "over_cap": over,
    }


def created_jobs(entries: list[dict[str, Any]]) -> Iterator[str]:
    for entry in entries:
        if entry.get("action") == "CreateJob" and entry.get("changed"):
            yield str(entry.get("resource"))
