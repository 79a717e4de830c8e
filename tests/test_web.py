"""`batchmig serve`'s application: the token, the CSRF and Host checks, cutover, /metrics, no secret served."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from batchmig.errors import UsageError
from batchmig.journal import Journal
from batchmig.registry import Registry
from batchmig.runsource import DirectorySource
from batchmig.testing import run_plan
from batchmig.web.app import make_app
from batchmig.web.security import COOKIE, Guard, load_or_create_token

HERE = Path(__file__).parent
TOKEN = "t" * 43
PLAN = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
defaults: {provider: tc, settings: {testcloud: {duration: 20}}}
waves: [{name: first}, {name: second}]
instances:
  - {id: a, wave: first, cutover: manual, settings: {incremental: true}}
  - {id: b, wave: first, cutover: manual, settings: {incremental: true}}
  - {id: c, wave: second, settings: {fail: true}}
"""


@pytest.fixture
def runs_root(plan_file, registry: Registry, tmp_path: Path) -> Path:
    result = run_plan(plan_file(PLAN), registry, tmp_path)
    assert result.statuses == {"a": "awaiting_cutover", "b": "awaiting_cutover", "c": "failed"}
    return tmp_path / "runs"


@pytest.fixture
async def client(runs_root: Path, registry: Registry) -> AsyncIterator[TestClient]:
    source = DirectorySource(runs_root, registry=lambda: registry)
    app = make_app(source, Guard(TOKEN, loopback=True), poll_seconds=0.05)
    async with TestClient(TestServer(app, host="127.0.0.1")) as test_client:
        yield test_client


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def run_id(runs_root: Path) -> str:
    (path,) = runs_root.iterdir()
    return path.name


@pytest.mark.anyio
async def test_every_request_needs_the_token(client: TestClient, runs_root: Path) -> None:
    run = run_id(runs_root)
    for path in ("/api/runs", f"/api/runs/{run}/view", "/metrics"):
        assert (await client.get(path)).status == 401
        assert (await client.get(path, headers={"Authorization": "Bearer wrong"})).status == 401
    page = await client.get(f"/runs/{run}")
    assert page.status == 401 and "needs its access token" in await page.text()
    refused = await client.post(f"/api/runs/{run}/cutover", json={"instances": ["a"]})
    assert refused.status == 401
    assert (await client.get("/api/runs", headers=AUTH)).status == 200
    assert (await client.get("/api/runs", headers={**AUTH, "Host": "attacker.example:80"})).status == 421


@pytest.mark.anyio
async def test_the_printed_url_becomes_a_cookie(client: TestClient, runs_root: Path) -> None:
    run = run_id(runs_root)
    answer = await client.get(f"/runs/{run}?token={TOKEN}", allow_redirects=False)
    assert answer.status == 303 and answer.headers["Location"] == f"/runs/{run}"
    cookie = answer.cookies[COOKIE]
    assert cookie.value == TOKEN and cookie["httponly"] and cookie["samesite"] == "Strict"
    page = await client.get(f"/runs/{run}")
    text = await page.text()
    assert page.status == 200 and TOKEN not in text and 'name="csrf-token"' in text
    assert page.headers["X-Frame-Options"] == "DENY" and "connect-src 'self'" in page.headers["Content-Security-Policy"]


@pytest.mark.anyio
async def test_cutover_needs_the_csrf_check_and_is_audited(client: TestClient, runs_root: Path) -> None:
    run = run_id(runs_root)
    client.session.cookie_jar.update_cookies({COOKIE: TOKEN})
    csrf = Guard(TOKEN, loopback=True).csrf_token
    url = f"/api/runs/{run}/cutover"
    assert (await client.post(url, json={"instances": ["a"]})).status == 403  # cookie, no CSRF token
    foreign = await client.post(url, json={"instances": ["a"]},
                                headers={"X-CSRF-Token": csrf, "Origin": "http://attacker.example"})
    assert foreign.status == 403
    not_json = await client.post(url, data="instances=a", headers={"X-CSRF-Token": csrf,
                                                                   "Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status == 415
    not_waiting = await client.post(url, json={"instances": ["c"]}, headers={"X-CSRF-Token": csrf})
    assert not_waiting.status == 409 and "does not await" in (await not_waiting.json())["error"].replace("(es)", "es")
    released = await client.post(url, json={"instances": ["a"]}, headers={"X-CSRF-Token": csrf})
    body = await released.json()
    assert released.status == 200 and body["released"] == ["a"] and "batchmig resume" in body["message"]
    by_wave = await client.post(url, json={"wave": "first"}, headers=AUTH)  # a script: the header is the check
    assert by_wave.status == 200 and (await by_wave.json())["released"] == ["b"]
    journal = Journal.open(runs_root / run / "journal.sqlite")
    try:
        requests = journal.requests()
        assert journal.released_cutovers() == {"a", "b"}
    finally:
        journal.close()
    assert [(r.selection, list(r.instances)) for r in requests] == [("dashboard: a", ["a"]),
                                                                    ("dashboard: wave first", ["b"])]
    assert requests[0].user.endswith("via dashboard") and requests[0].host == "127.0.0.1"


@pytest.mark.anyio
async def test_views_events_instances_and_metrics(client: TestClient, runs_root: Path) -> None:
    run = run_id(runs_root)
    view = await (await client.get(f"/api/runs/{run}/view", headers=AUTH)).json()
    assert [row[0] for row in view["instances"]] == ["a", "b", "c"] and view["state"] == "failed"
    instance = await (await client.get(f"/api/runs/{run}/instances/a", headers=AUTH)).json()
    assert instance["remote_ids"]["JobId"] and [c["action"] for c in instance["calls"]] == ["CreateJob", "StartJob"]
    assert all(c["request_id"] for c in instance["calls"])
    async with client.get(f"/api/runs/{run}/events", headers=AUTH) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        assert (await stream.content.readline()) == b"event: view\n"
        data = (await stream.content.readline()).decode()
        assert json.loads(data.removeprefix("data: "))["run"] == run
    metrics = await (await client.get("/metrics", headers=AUTH)).text()
    families = {f.name: f for f in text_string_to_metric_families(metrics)}
    assert {s.labels["status"]: s.value for s in families["batchmig_instances"].samples} == {
        "awaiting_cutover": 2, "failed": 1}
    assert (await client.get("/api/runs/no-such-run/view", headers=AUTH)).status == 404


def test_the_token_file_is_private(tmp_path: Path) -> None:
    path = tmp_path / "home" / "dir" / "serve-token"
    token, created = load_or_create_token(path)
    assert created and len(token) >= 40 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert all(stat.S_IMODE(d.stat().st_mode) == 0o700 for d in (path.parent, path.parent.parent))
    assert load_or_create_token(path) == (token, False)
    assert load_or_create_token(path, renew=True)[0] != token
    os.chmod(path, 0o644)
    with pytest.raises(UsageError, match="chmod 600"):
        load_or_create_token(path)


# ------------------------------------------------------------------ no secret reaches a page

SECRET = "DashboardSecret-9931-never-shown"
KEY_ID = "KEYID-dashboard-5150"


@pytest.fixture
def echo_cloud() -> Iterator[str]:
    """A cloud that refuses every call with an error quoting the whole request, headers and body."""

    class Echo(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            quoted = f"{self.headers}\n{body.decode()}"
            answer = json.dumps({"error": {"code": "InvalidParameter", "message": quoted}}).encode()
            self.send_response(400)
            self.send_header("X-Test-Request-Id", "req-echo-1")  # testcloud's request ids travel in a header
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.mark.anyio
async def test_no_secret_reaches_a_served_page(tmp_path: Path, echo_cloud: str, registry: Registry) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "version: 1\nproviders:\n  tc:\n    type: testcloud\n    region: r\n    endpoint: " + echo_cloud + "\n"
        "    credentials: {key_id: '${env:BM_KEY}', secret: '${env:BM_SECRET}'}\n"
        "instances: [{id: a, provider: tc}, {id: b, provider: tc}]\n"
    )
    env = {**os.environ, "BM_KEY": KEY_ID, "BM_SECRET": SECRET}
    proc = subprocess.run([sys.executable, str(HERE / "testcloud_cli.py"), "run", str(plan), "--runs-root",
                           str(tmp_path / "runs"), "--no-progress"], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    run = run_id(tmp_path / "runs")
    app = make_app(DirectorySource(tmp_path / "runs", registry=lambda: registry), Guard(TOKEN, loopback=True))
    pages = []
    async with TestClient(TestServer(app, host="127.0.0.1")) as web:
        for path in ("/", f"/runs/{run}", "/api/runs", f"/api/runs/{run}/view", f"/api/runs/{run}/instances/a",
                     "/metrics", f"/runs/{run}?token=wrong"):
            answer = await web.get(path, headers=AUTH)
            assert answer.status == 200, path
            pages.append(await answer.text())
    assert "InvalidParameter" in pages[3] and "req-echo-1" in pages[3]  # the error is shown...
    for page in pages:  # ...but never a credential, nor the access token
        for value in (SECRET, KEY_ID, TOKEN, json.dumps(SECRET)[1:-1]):
            assert value not in page
