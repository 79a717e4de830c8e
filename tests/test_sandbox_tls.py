"""`sandbox serve --tls` serves https; a run pointed at it with --sandbox-at trusts its CA."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def test_a_run_against_a_tls_sandbox(plan_file, tmp_path: Path) -> None:
    box = tmp_path / "box"
    serve = subprocess.Popen([sys.executable, str(HERE / "testcloud_cli.py"), "sandbox", "serve", "--tls", "--port",
                              "0", "--dir", str(box), "--time-scale", "600"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while not (box / "endpoints.json").exists():
            assert time.monotonic() < deadline and serve.poll() is None, serve.stderr.read().decode()[-2000:]
            time.sleep(0.05)
        endpoints = json.loads((box / "endpoints.json").read_text())
        assert all(url.startswith("https://127.0.0.1:") for url in endpoints.values())
        assert (box / "ca.pem").read_text().startswith("-----BEGIN CERTIFICATE-----")
        plan = plan_file("version: 1\nproviders: {tc: {type: testcloud, region: r}}\ndefaults: {provider: tc}\n"
                         "instances: [{id: a}, {id: b}]\n")
        run = subprocess.run([sys.executable, str(HERE / "testcloud_cli.py"), "run", str(plan), "--sandbox-at",
                              str(box), "--runs-root", str(tmp_path / "runs"), "--no-progress"],
                             capture_output=True, text=True, timeout=120, cwd=tmp_path)
        assert run.returncode == 0, run.stderr[-2000:]
        audit = [json.loads(line) for line in (box / "audit.jsonl").read_text().splitlines()]
        assert sum(1 for e in audit if e["action"] == "CreateJob" and e.get("changed")) == 2
    finally:
        serve.terminate()
        serve.wait(timeout=30)
