"""Campaign 5 — secrets: known credential values appear nowhere the run writes.

Every credential a plan can hold gets a known, unique value in the environment:
Tencent SecretId/SecretKey, Huawei AK/SK, and the two kinds of database password
DTS passes on (``password_env`` and ``password_credential``). Then three runs of the
real CLI, each scanned byte for byte — stdout, stderr and every file of the run
directory (journal and its WAL, events.jsonl, report.json, plan copy):

1. against a sandbox in its own process, with faults, planned failures and ``-v``
   (the emulators' demo keys replace SecretId/SecretKey/AK/SK there, but the
   database passwords are the plan's — the test proves they reached the cloud);
2. the same fleet with no faults and no ``-v``, ending in success;
3. live, against a loopback server that answers every call with an error whose
   message *echoes the request it received* — headers and body, so the signed
   Authorization header and the DTS passwords come back inside the cloud's own
   error message, the way some APIs quote parameters in InvalidParameter errors.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from .conftest import Cli
from .fleet import fleet_plan

pytest.importorskip("batchmig_tencentcloud")
pytest.importorskip("batchmig_huaweicloud")

SECRETS = {
    "TENCENTCLOUD_SECRET_ID": "AKIDcampaignSecretId0000000000000001",
    "TENCENTCLOUD_SECRET_KEY": "campaignSecretKey-Tc-7f3a9",
    "HUAWEICLOUD_SDK_AK": "HWCAMPAIGNAK0000001",
    "HUAWEICLOUD_SDK_SK": "campaignSecretKey-Hw-c41d2",
    "CAMPAIGN_SOURCE_PW": "campaign-src-pw-91b7",  # ASCII: an escaped \\u form would hide from the scan
    "CAMPAIGN_TARGET_PW": "campaign-tgt-pw-d0c5e",
}
ENV = {**SECRETS, "HUAWEICLOUD_SDK_PROJECT_ID": "0a1b2c3d4e5f60718293a4b5c6d7e8f9"}


def secret_plan(count: int, *, endpoint: str | None = None, doomed: bool = False) -> str:
    document = yaml.safe_load(fleet_plan(count, name="campaign-secrets", run={
        "call_timeout": "5s", "retry": {"max_attempts": 3, "base_delay": 0.02, "max_delay": 0.1}}))
    document["providers"]["tencent-dts"]["credentials"]["campaign_target_pw"] = "${env:CAMPAIGN_TARGET_PW}"
    job = document["defaults"]["settings"]["tencent-dts"]["job"]
    job["source"] = {**job["source"], "password_credential": None, "password_env": "CAMPAIGN_SOURCE_PW"}
    job["source"].pop("password_credential")
    job["target"]["password_credential"] = "campaign_target_pw"
    if endpoint:
        for provider in document["providers"].values():
            provider["endpoint"] = endpoint
    if doomed:
        document["instances"] += [
            {"id": "doomed-dts", "provider": "tencent-dts",
             "settings": {"job": {**job, "name": "campaign-sandbox-fail-check"}}},
            {"id": "doomed-drs", "provider": "huawei-drs",
             "settings": {"target_instance_id": "d0000000000000000000000000000002in04",
                          "files": [{"name": "x_restore-fail.bak", "obs_path": "f/"}]}},
        ]
    return yaml.safe_dump(document, sort_keys=False)


def leaks(texts: dict[str, bytes]) -> list[str]:
    """'where: NAME' for every secret found in any of ``texts`` (raw bytes, UTF-8 and JSON-escaped)."""
    found = []
    for where, data in texts.items():
        for name, value in SECRETS.items():
            forms = {value.encode(), json.dumps(value).strip('"').encode()}
            if any(form in data for form in forms):
                found.append(f"{where}: {name}")
    return found


def everything_written(cli: Cli, run_dir: Path) -> dict[str, bytes]:
    texts = {}
    for stem in sorted(cli.cwd.glob("cli-*.out")) + sorted(cli.cwd.glob("cli-*.err")):
        texts[stem.name] = stem.read_bytes()
    for path in run_dir.rglob("*"):
        if path.is_file():
            texts[str(path.relative_to(run_dir))] = path.read_bytes()
    return texts


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with an error quoting the whole request, in the caller's dialect."""

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        quoted = f"{self.command} {self.path} {dict(self.headers)} {body.decode('utf-8', 'replace')}"
        if self.headers.get("X-TC-Action"):
            status, answer = 200, {"Response": {"Error": {"Code": "InvalidParameter", "Message": f"bad: {quoted}"},
                                                "RequestId": "echo-1"}}
        else:
            status, answer = 400, {"error_code": "DRS.M00289", "error_msg": f"bad: {quoted}"}
        data = json.dumps(answer, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_sandbox_runs_with_failures_and_verbose_leak_no_secret(tmp_path: Path, cli: Cli, sandbox_process,
                                                               figures) -> None:
    faults = [{"kind": "error", "probability": 0.05}, {"kind": "drop", "mutating_only": True, "probability": 0.1}]
    box = sandbox_process({"time_scale": 600, "seed": 5, "faults": faults})
    failing = tmp_path / "failing.yaml"
    failing.write_text(secret_plan(14, doomed=True))
    run_a = tmp_path / "run-a"
    first = cli.run("-v", "run", str(failing), "--sandbox-at", str(box.directory), "--run-dir", str(run_a),
                    "--no-progress", env=ENV)
    assert first.returncode == 1, first.stderr[-3000:]
    assert "JobFailed" in first.stdout + first.stderr or "failed" in first.stdout
    clean = sandbox_process({"time_scale": 600}, name="sandbox-clean")  # the first run's targets are restored
    passing = tmp_path / "passing.yaml"
    passing.write_text(secret_plan(14).replace("campaign-secrets", "campaign-secrets-ok"))
    run_b = tmp_path / "run-b"
    second = cli.run("run", str(passing), "--sandbox-at", str(clean.directory), "--run-dir", str(run_b),
                     "--no-progress", env=ENV)
    assert second.returncode == 0, second.stderr[-3000:]

    # the passwords really went to the cloud (so the scan below looks for values that were in play)
    jobs = []
    for directory in (box.directory, clean.directory):
        db = sqlite3.connect(directory / "state.sqlite")
        jobs += [json.loads(v) for (v,) in db.execute("SELECT value FROM state WHERE emulator='tencent-dts'")
                 if "JobId" in json.loads(v)]
        db.close()
    assert jobs and all(j["SrcInfo"]["Password"] == SECRETS["CAMPAIGN_SOURCE_PW"] for j in jobs)
    assert all(j["DstInfo"]["Password"] == SECRETS["CAMPAIGN_TARGET_PW"] for j in jobs)

    texts = {**everything_written(cli, run_a), **{f"b/{k}": v for k, v in everything_written(cli, run_b).items()}}
    assert leaks(texts) == []
    figures.update({"runs": 2, "files_scanned": len(texts), "bytes_scanned": sum(map(len, texts.values())),
                    "secret_values": len(SECRETS), "leaks": 0})


def test_a_cloud_that_echoes_the_request_leaks_no_secret(tmp_path: Path, cli: Cli, echo_server: str,
                                                         figures) -> None:
    plan = tmp_path / "live.yaml"
    plan.write_text(secret_plan(7, endpoint=echo_server))
    run_dir = tmp_path / "run"
    done = cli.run("-v", "run", str(plan), "--run-dir", str(run_dir), "--no-progress", env=ENV)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "InvalidParameter" in done.stdout and "DRS.M00289" in done.stdout
    report = json.loads((run_dir / "report.json").read_text())
    assert {entry["status"] for entry in report["instances"]} == {"failed"}
    texts = everything_written(cli, run_dir)
    assert leaks(texts) == [], leaks(texts)
    figures.update({"runs": 1, "files_scanned": len(texts), "echoed_errors": len(report["instances"]), "leaks": 0})
