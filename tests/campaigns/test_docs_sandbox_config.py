"""The sandbox configuration shown in docs/operations.md, with the demo fleet, as the doc says.

It used to fail the demo: ten throttles in a row during a canary's poll exhausted its
retries, the canary failed and 36 instances were skipped (and `resume` failed the
same way). The example is run here exactly as written, so it stays true.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import Cli

pytest.importorskip("batchmig_tencentcloud")
pytest.importorskip("batchmig_huaweicloud")

ROOT = Path(__file__).resolve().parents[2]


def documented_config() -> str:
    text = (ROOT / "docs/operations.md").read_text(encoding="utf-8")
    start = text.index("```yaml\n# sandbox configuration\n") + len("```yaml\n")
    return text[start:text.index("```", start)]


def test_the_demo_fleet_succeeds_under_the_documented_rough_day(cli: Cli, tmp_path: Path, figures) -> None:
    config = tmp_path / "rough-day.yaml"
    config.write_text(documented_config(), encoding="utf-8")
    result = cli.run("run", str(ROOT / "plans/demo-fleet.yaml"), "--sandbox", "--sandbox-config", str(config),
                     "--runs-root", str(tmp_path / "runs"), "--no-progress", timeout=600)
    (run_dir,) = (tmp_path / "runs").iterdir()
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    statuses = {entry["id"]: entry["status"] for entry in report["instances"]}
    audit = [json.loads(line) for line in (run_dir / "sandbox/audit.jsonl").read_text().splitlines()]
    faults = sorted({e["outcome"] for e in audit if e["outcome"] not in ("answered", "refused")})
    figures.update({"instances": len(statuses), "faults_seen": faults, "seconds": round(result.seconds, 1),
                    "retries": report["calls"].get("retries")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert set(statuses.values()) == {"succeeded"}, statuses
    assert "fault:throttle" in faults, "the documented throttles never happened: the test proved nothing"
