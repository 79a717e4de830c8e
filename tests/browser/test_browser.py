"""In a real browser: the HTML report draws itself offline, and the live dashboard of a
running sandbox run updates, filters, refuses requests without the token, and releases a
cutover that reaches the running process."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchmig.journal import Journal
from batchmig.testing import write_plan

CLI = Path(__file__).parent.parent / "testcloud_cli.py"
REPORT_PLAN = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
defaults: {provider: tc, settings: {testcloud: {duration: 20}}}
waves: [{name: first}, {name: second}]
instances:
  - {id: ok-1, wave: first, tags: {team: crm}}
  - {id: waits, wave: first, cutover: manual, settings: {incremental: true}}
  - {id: broken, wave: first, settings: {fail: true}}
  - {id: refused, wave: second, settings: {reject: true}}
  - {id: ok-2, wave: second}
"""


def test_the_html_report_draws_offline(page: tuple[Any, list[str]], workdir: Path) -> None:
    tab, errors = page
    plan = write_plan(workdir, REPORT_PLAN)
    # In a process of its own: Playwright's sync API holds this thread's event loop.
    subprocess.run([sys.executable, str(CLI), "run", str(plan), "--sandbox", "--time-scale", "600", "--runs-root",
                    str(workdir / "runs"), "--no-progress"], capture_output=True, cwd=workdir, timeout=120, check=False)
    (report,) = (workdir / "runs").glob("*/report.html")
    tab.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else route.continue_())
    tab.goto(report.as_uri())
    tab.wait_for_selector("#app[data-rendered]")
    assert int(tab.get_attribute("#timeline", "data-bars")) >= 12  # every finished step is a bar
    assert tab.locator("#errors .error-group").count() == 2
    assert tab.locator("#instance-table tbody tr").count() == 5
    tab.select_option("select[name=status]", "failed")
    assert tab.locator("#instance-table tbody tr").count() == 2
    assert tab.get_attribute("#timeline", "data-rows") == "2"  # the timeline follows the filter
    tab.locator("#errors .error-group summary").first.click()
    tab.wait_for_selector("#errors .error-group table tr >> nth=1")  # the header and the instance
    tab.locator("a.inst", has_text="refused").first.click()
    tab.wait_for_selector("#instance-detail")
    assert "InvalidParameterValue" in tab.inner_text("#instance-detail")
    tab.locator("#timeline").hover()
    tab.mouse.wheel(0, -200)  # zoom in: it must still draw, without an error
    assert errors == []


PLAN = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
defaults: {provider: tc, wave: main, settings: {testcloud: {duration: 40}}}
waves: [{name: main}]
instances:
"""


def live_plan() -> str:
    lines = [f"  - {{id: db-{n:02d}, settings: {{duration: {20 + 12 * n}}}}}" for n in range(8)]
    lines += [f"  - {{id: cut-{n}, cutover: manual, settings: {{incremental: true, duration: 10}}}}" for n in range(3)]
    lines.append("  - {id: doomed, settings: {fail: true, duration: 30}}")
    return PLAN + "\n".join(lines) + "\n"


@pytest.fixture
def live(workdir: Path) -> Iterator[dict[str, Any]]:
    """A sandbox run that takes ~10 s and waits for its cutovers, and `batchmig serve` over it."""
    plan = write_plan(workdir, live_plan())
    runs = workdir / "runs"
    runner = subprocess.Popen([sys.executable, str(CLI), "run", str(plan), "--sandbox", "--time-scale", "10",
                               "--wait-for-cutover", "--runs-root", str(runs), "--no-progress"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=workdir)
    serve = subprocess.Popen([sys.executable, str(CLI), "serve", "--port", "0", "--runs-root", str(runs),
                              "--token-file", str(workdir / "token")], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, cwd=workdir)
    try:
        url = ""
        assert serve.stdout is not None
        for line in serve.stdout:
            if line.startswith("open: "):
                url = line.removeprefix("open: ").strip()
                break
        assert url, "batchmig serve printed no URL"
        deadline = time.monotonic() + 30
        while not list(runs.glob("*/journal.sqlite")) and time.monotonic() < deadline:
            time.sleep(0.1)
        (run_dir,) = [p.parent for p in runs.glob("*/journal.sqlite")]
        yield {"url": url, "base": url.split("?")[0].rstrip("/"), "run": run_dir.name, "run_dir": run_dir,
               "runner": runner}
    finally:
        for process in (runner, serve):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


def counts(tab: Any) -> dict[str, int]:
    statuses: dict[str, int] = {}
    for status in tab.eval_on_selector_all("#instance-table tbody tr", "rows => rows.map(r => r.dataset.status)"):
        statuses[status] = statuses.get(status, 0) + 1
    return statuses


def test_the_dashboard_follows_a_live_run_and_releases_its_cutover(page: tuple[Any, list[str]],
                                                                   live: dict[str, Any]) -> None:
    tab, errors = page
    run_url = f"{live['base']}/runs/{live['run']}"
    refused = tab.goto(run_url)
    assert refused.status == 401 and "access token" in tab.inner_text("body")
    no_token = tab.request.post(f"{live['base']}/api/runs/{live['run']}/cutover", data={"instances": ["cut-0"]})
    assert no_token.status == 401

    tab.goto(live["url"].replace("/?token", f"/runs/{live['run']}?token"))
    tab.wait_for_selector("#app[data-rendered]")
    assert "?token" not in tab.url and tab.locator(".badge.live").count() == 1
    errors.clear()  # the refused loads above logged their 401s on purpose
    first = counts(tab).get("succeeded", 0)
    tab.wait_for_function("() => document.querySelectorAll('#instance-table tr[data-status=succeeded]').length >= 4",
                          timeout=60_000)
    assert counts(tab)["succeeded"] > first, "the table did not update as instances finished"

    tab.wait_for_function(
        "() => document.querySelectorAll('#instance-table tr[data-status=awaiting_cutover]').length === 3",
        timeout=60_000)
    tab.select_option("select[name=status]", "awaiting_cutover")
    assert set(counts(tab)) == {"awaiting_cutover"}
    tab.select_option("select[name=status]", "")

    forged = tab.evaluate("""async (url) => (await fetch(url, {method: 'POST', headers: {'Content-Type':
        'application/json'}, body: JSON.stringify({instances: ['cut-0']})})).status""",
                          f"/api/runs/{live['run']}/cutover")
    assert forged == 403  # the cookie alone is not enough: no CSRF token
    errors.clear()

    tab.check("input[data-instance=cut-0]")
    tab.check("input[data-instance=cut-1]")
    tab.click("#release-selected")
    tab.wait_for_selector("dialog#confirm-cutover[open]")
    tab.click("#confirm-release")
    tab.wait_for_selector("#cutover-message.ok")
    tab.wait_for_function(
        "() => ['cut-0', 'cut-1'].every(id => document.querySelector(`tr[data-instance='${id}']`)"
        "?.dataset.status === 'succeeded')", timeout=60_000)
    assert tab.get_attribute("tr[data-instance=cut-2]", "data-status") == "awaiting_cutover"

    tab.select_option("#cutover-wave", "main")
    tab.click("#release-wave")
    tab.click("#confirm-release")
    live["runner"].wait(timeout=60)
    assert live["runner"].returncode == 1  # every instance finished; `doomed` failed as planned
    tab.wait_for_function("() => document.querySelector(`tr[data-instance='cut-2']`).dataset.status === 'succeeded'",
                          timeout=30_000)
    journal = Journal.open(live["run_dir"] / "journal.sqlite")
    try:
        requests = [(r.selection, sorted(r.instances)) for r in journal.requests()]
        statuses = {iid: record.status for iid, record in journal.instances().items()}
    finally:
        journal.close()
    assert requests == [("dashboard: cut-0 cut-1", ["cut-0", "cut-1"]), ("dashboard: wave main", ["cut-2"])]
    assert statuses["doomed"] == "failed" and all(s == "succeeded" for i, s in statuses.items() if i != "doomed")
    tab.reload()
    tab.wait_for_selector("#app[data-rendered]")
    assert re.search(r"dashboard: wave main", tab.inner_text("#cutover-audit"))
    assert errors == []
