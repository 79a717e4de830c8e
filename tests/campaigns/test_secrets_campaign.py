"""Campaign 5 — secrets: no registered secret appears anywhere, in any encoding.

Every credential a plan can hold gets a known, unique and *hostile* value — quotes,
backslash, slash, ``<>&``, ``+``, ``=``, ``%``, spaces, non-ASCII and an emoji, so
that every encoding of it differs from the raw text: Tencent SecretId/SecretKey,
Huawei AK/SK/project id, and the two kinds of database password DTS passes on
(``password_env`` and ``password_credential``). The sandbox's demo credentials, which
replace the keys in sandbox runs, are registered secrets too and are scanned for.

Two clouds quote the requests they refuse:

1. the sandbox in its own process with the ``echo`` fault (``batchmig.sandbox.echo``):
   error answers that carry the whole request — headers and body — as received,
   URL-encoded, JSON-escaped once and twice, and base64; DTS creates refused that way
   fail their instance, other calls are echoed at random and retried; plus errors and
   dropped answers, planned failures and ``-v``. Then ``run --check`` against an
   in-process sandbox that echoes every read;
2. live: a loopback server answering every request with such an error, in each
   cloud's dialect (Tencent: HTTP 200 with Error; Huawei: 400 with error_msg), for
   ``run`` and for ``run --check``.

After each, ``status`` in text and JSON. The scanner (``leakscan.py``, independent of
the redactor) then searches stdout and stderr of every command and every file of the
run directory (the journal's cells included) for every value in each of its distinct
forms (up to 30): raw, JSON-escaped 1-3 times, URL-encoded three ways, base64 and
URL-safe base64 with and without padding, inside a longer base64 text at each
alignment, hex. Target: 0 occurrences (with a redactor that masks raw values only,
the live run alone leaves 128). The run directory's files must all be 0600, its
directories 0700.
"""

from __future__ import annotations

import json
import sqlite3
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from batchmig.registry import load_registry
from batchmig.sandbox.echo import echo_text

from .conftest import Cli
from .fleet import fleet_plan
from .leakscan import Scan, everything_in

pytest.importorskip("batchmig_tencentcloud")
pytest.importorskip("batchmig_huaweicloud")

SECRETS = {
    "TENCENTCLOUD_SECRET_ID": "AKIDcampaign+Id/0001=%20&x",
    "TENCENTCLOUD_SECRET_KEY": 'campaign"SecretKey\\Tc/é<7f3a9>',
    "HUAWEICLOUD_SDK_AK": "HWCAMPAIGN+AK/0001",
    "HUAWEICLOUD_SDK_SK": "campaign SK <Hw> & é c41d2",
    "HUAWEICLOUD_SDK_PROJECT_ID": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
    "CAMPAIGN_SOURCE_PW": 'src pw "q" \\ / <é€> & + = % 😀 91b7',
    "CAMPAIGN_TARGET_PW": "tgt'pw+/=?&#é€ d0c5e",
}
ENV = dict(SECRETS)


def demo_credentials() -> dict[str, str]:
    """The sandbox's demo credentials: registered like any credential when a run uses them."""
    registry = load_registry()
    return {f"{emulator}.{field}": value for emulator, spec in registry.emulators.items()
            for field, value in spec.demo_credentials.items()}


def secret_plan(count: int, *, endpoint: str | None = None, doomed: bool = False, attempts: int = 3) -> str:
    document = yaml.safe_load(fleet_plan(count, name="campaign-secrets", run={
        "call_timeout": "5s", "retry": {"max_attempts": attempts, "base_delay": 0.02, "max_delay": 0.1}}))
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


class EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with an error quoting the whole request, in the caller's dialect."""

    def do_POST(self) -> None:
        self._answer()

    def do_GET(self) -> None:
        self._answer()

    def _answer(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        echo = echo_text(self.command, self.path, self.headers.items(), body)
        if self.headers.get("X-TC-Action"):
            status, answer = 200, {"Response": {"Error": {"Code": "InvalidParameter", "Message": f"bad: {echo}"},
                                                "RequestId": "echo-1"}}
        else:
            status, answer = 400, {"error_code": "DRS.M00289", "error_msg": f"bad: {echo}"}
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


def command_outputs(cli: Cli) -> dict[str, bytes]:
    """stdout and stderr of every command the test ran."""
    return {path.name: path.read_bytes() for path in sorted(cli.cwd.glob("cli-*.*")) if path.suffix in (".out", ".err")}


def status_both_ways(cli: Cli, run_dir: Path) -> None:
    for args in ((), ("--format", "json")):
        shown = cli.run("status", str(run_dir), *args, env=ENV)
        assert shown.returncode == 0, shown.stderr[-2000:]


def assert_private(run_dir: Path) -> int:
    """Every file 0600 and every directory 0700 under ``run_dir``; returns how many were checked."""
    paths = [run_dir, *run_dir.rglob("*")]
    wrong = [f"{p}: {stat.S_IMODE(p.stat().st_mode):o}" for p in paths
             if stat.S_IMODE(p.stat().st_mode) != (0o700 if p.is_dir() else 0o600)]
    assert wrong == [], wrong
    return len(paths)


def test_a_sandbox_that_echoes_requests_leaks_no_secret(tmp_path: Path, cli: Cli, sandbox_process, figures) -> None:
    faults = [
        {"kind": "echo", "emulator": "tencent-dts", "action": "CreateMigrateJob", "code": "InvalidParameterValue",
         "count": 2},
        {"kind": "echo", "probability": 0.15},
        {"kind": "error", "probability": 0.03},
        {"kind": "drop", "mutating_only": True, "probability": 0.05},
    ]
    box = sandbox_process({"time_scale": 600, "seed": 5, "faults": faults})
    plan = tmp_path / "plan.yaml"
    # 18 % of calls answer an echo or an error: with 3 attempts, a poll failing three times in a row
    # (0.6 % of polls, and there are hundreds) stopped watching a job, and the run ended needing attention.
    plan.write_text(secret_plan(14, doomed=True, attempts=10))
    run_dir = tmp_path / "run"
    done = cli.run("-v", "run", str(plan), "--sandbox-at", str(box.directory), "--run-dir", str(run_dir),
                   "--no-progress", env=ENV)
    assert done.returncode == 1, done.stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    echoed = [e for e in report["instances"] if "url-encoded:" in (e.get("error") or {}).get("message", "")]
    assert len(echoed) >= 2, "the echoed DTS creates must have failed their instances"
    status_both_ways(cli, run_dir)
    echo_config = tmp_path / "echo-everything.yaml"
    echo_config.write_text(yaml.safe_dump({"time_scale": 600, "faults": [{"kind": "echo"}]}))
    for args in ((), ("--format", "json")):
        checked = cli.run("run", str(plan), "--check", "--sandbox", "--sandbox-config", str(echo_config), *args,
                          env=ENV)
        assert checked.returncode == 1 and "url-encoded:" in checked.stdout, checked.stdout[-2000:]

    # the passwords really went to the cloud, and came back: the scan looks for values that were in play
    db = sqlite3.connect(box.directory / "state.sqlite")
    jobs = [json.loads(v) for (v,) in db.execute("SELECT value FROM state WHERE emulator = 'tencent-dts'")]
    db.close()
    jobs = [job for job in jobs if "JobId" in job]
    assert jobs and all(j["SrcInfo"]["Password"] == SECRETS["CAMPAIGN_SOURCE_PW"] for j in jobs)
    assert all(j["DstInfo"]["Password"] == SECRETS["CAMPAIGN_TARGET_PW"] for j in jobs)
    echoes = [e for e in box.audit() if e.get("outcome") == "fault:echo"]

    scan = Scan({**SECRETS, **demo_credentials()}).search({**command_outputs(cli), **everything_in(run_dir)})
    assert scan.occurrences == [], scan.occurrences[:20]
    figures.update({**scan.figures(), "echoed_requests": len(echoes), "echoed_failures": len(echoed),
                    "private_paths": assert_private(run_dir)})


def test_a_live_cloud_that_echoes_requests_leaks_no_secret(tmp_path: Path, cli: Cli, echo_server: str,
                                                           figures) -> None:
    plan = tmp_path / "live.yaml"
    plan.write_text(secret_plan(7, endpoint=echo_server))
    run_dir = tmp_path / "run"
    done = cli.run("-v", "run", str(plan), "--run-dir", str(run_dir), "--no-progress", env=ENV)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "InvalidParameter" in done.stdout and "DRS.M00289" in done.stdout
    report = json.loads((run_dir / "report.json").read_text())
    assert {entry["status"] for entry in report["instances"]} == {"failed"}
    status_both_ways(cli, run_dir)
    for args in ((), ("--format", "json")):
        checked = cli.run("run", str(plan), "--check", *args, env=ENV)
        assert checked.returncode == 1 and "DRS.M00289" in checked.stdout, checked.stdout[-2000:]
    scan = Scan(SECRETS).search({**command_outputs(cli), **everything_in(run_dir)})
    assert scan.occurrences == [], scan.occurrences[:20]
    figures.update({**scan.figures(), "echoed_failures": len(report["instances"]),
                    "private_paths": assert_private(run_dir)})
