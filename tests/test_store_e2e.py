"""Several runners on one run in the PostgreSQL store, against the sandbox in its own process."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from batchmig.testing.sandbox_process import SandboxProcess
from store_helpers import audit_figures, fleet_plan, runner_command, start_runner

import subprocess


def test_two_runners_share_one_run(postgres_dsn: str, tmp_path: Path) -> None:
    subprocess.run(runner_command("store", "init", "--store", postgres_dsn), check=True, cwd=tmp_path)
    (tmp_path / "plan.yaml").write_text(fleet_plan(40, waves=2, duration=20))
    with SandboxProcess(tmp_path / "sandbox", {"time_scale": 60}) as sandbox:
        first = start_runner(tmp_path, "r1", "run", "plan.yaml", "--store", postgres_dsn,
                             "--sandbox-at", str(sandbox.directory), "--lease-ttl", "12", "--no-progress")
        import time
        time.sleep(3)
        runs = subprocess.run(runner_command("status", "fleet", "--store", postgres_dsn, "--format", "json"),
                              cwd=tmp_path, capture_output=True, text=True)
        print(runs.stdout[:300], runs.stderr[-2000:])
        second = start_runner(tmp_path, "r2", "join", "fleet", "--store", postgres_dsn, "--lease-ttl", "12",
                              "--no-progress")
        assert first.wait(120) == 0, (tmp_path / "r1.err").read_text()[-3000:]
        assert second.wait(120) == 0, (tmp_path / "r2.err").read_text()[-3000:]
        figures = audit_figures(sandbox.audit(), {})
    print(json.dumps(figures, indent=1))
    assert figures["repeated_effects"] == 0 and not figures["over_cap"]
