"""A run's promises at its edges: changed plans, the run's retry budget and counters,
jobs the engine can no longer watch, reconciles that cannot tell, unknown statuses,
early cutover releases, and no request sent outside the one pipeline (issue 10,
items 3, 9, 10 and 11)."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import structlog
from aiohttp import web

from batchmig.cutover import release_selected
from batchmig.emulator import EmulatorSpec
from batchmig.engine.transport import HttpTransport
from batchmig.errors import ExitCode, UnknownOutcomeError, UsageError
from batchmig.journal import Journal
from batchmig.operations import RunOptions, resume_run, start_run
from batchmig.plugin import (
    Call,
    Caller,
    CallStep,
    HttpRequest,
    Instance,
    OutcomeUnsureError,
    Outputs,
    ProviderSpec,
    Step,
    hookimpl,
)
from batchmig.registry import Registry
from batchmig.sandbox.config import SandboxConfig
from batchmig.selection import Selection
from batchmig.testing import SandboxRun, make_registry, run_plan
from batchmig.testing.sandbox_process import SandboxProcess
from batchmig.testing.testcloud import DEMO_KEY_ID, DEMO_SECRET, TestcloudEmulator, TestcloudProvider

HEADER = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
  tc-other: {type: testcloud, region: eu-2}
defaults: {provider: tc}
run: {retry: {base_delay: 0.05, max_delay: 0.2}}
instances:
"""
GATED = "{cutover: manual, settings: {incremental: true, duration: 10}}"


def plan_text(*instances: str, header: str = HEADER) -> str:
    return header + "".join(f"  - {line}\n" for line in instances)


def release(run_dir: Path, registry: Registry, *ids: str) -> None:
    release_selected(run_dir, registry, Selection.parse(ids=list(ids)))


def journal_dump(path: Path) -> list[str]:
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return list(db.iterdump())
    finally:
        db.close()


# ------------------------------------------------------------ changed plans (item 9)


def test_removed_instances_are_abandoned_and_added_ones_run(plan_file, registry: Registry, tmp_path: Path) -> None:
    plan = plan_file(plan_text(f"{{id: keep, {GATED[1:]}", f"{{id: dropped, {GATED[1:]}", "{id: done}"))
    first = run_plan(plan, registry, tmp_path)
    assert first.outcome.exit_code == ExitCode.AWAITING_CUTOVER
    job = first.report["instances"][1]["remote_ids"]["JobId"]
    plan.write_text(plan_text(f"{{id: keep, {GATED[1:]}", "{id: done}", "{id: added}"))
    release(first.outcome.run_dir, registry, "keep")
    options = RunOptions(runs_root=tmp_path / "runs", handle_signals=False)
    second = resume_run(first.outcome.run_id, registry, options, accept_changed_plan=True)
    assert second.statuses == {"keep": "succeeded", "dropped": "abandoned", "done": "succeeded",
                               "added": "succeeded"}
    assert second.exit_code == ExitCode.OK  # the operator removed it: it does not fail the run
    abandoned = next(e for e in second.report["instances"] if e["id"] == "dropped")
    assert abandoned["error"]["code"] == "RemovedFromPlan"
    assert job in abandoned["error"]["message"] and "awaiting_cutover" in abandoned["error"]["message"]


def test_a_started_instance_that_changed_is_refused_and_nothing_is_written(
    plan_file, registry: Registry, tmp_path: Path
) -> None:
    plan = plan_file(plan_text(f"{{id: moving, {GATED[1:]}"))
    first = run_plan(plan, registry, tmp_path)
    journal_path = first.outcome.run_dir / "journal.sqlite"
    before = journal_dump(journal_path)
    for changed in (f"{{id: moving, provider: tc-other, {GATED[1:]}",  # another connection
                    "{id: moving, cutover: manual, settings: {incremental: true, duration: 11}}"):  # settings
        plan.write_text(plan_text(changed, "{id: newcomer}"))
        options = RunOptions(runs_root=tmp_path / "runs", handle_signals=False)
        with pytest.raises(UsageError, match=r"moving .*may have acted"):
            resume_run(first.outcome.run_id, registry, options, accept_changed_plan=True)
        assert journal_dump(journal_path) == before  # no plan hash, no instance, no invocation written


def test_a_changed_instance_that_never_acted_restarts(plan_file, registry: Registry, tmp_path: Path) -> None:
    plan = plan_file(plan_text("{id: fixme, settings: {reject: true}}", "{id: fine}"))
    first = run_plan(plan, registry, tmp_path)
    assert first.statuses == {"fixme": "failed", "fine": "succeeded"}
    plan.write_text(plan_text("{id: fixme, provider: tc-other}", "{id: fine}"))
    options = RunOptions(runs_root=tmp_path / "runs", handle_signals=False)
    second = resume_run(first.outcome.run_id, registry, options, accept_changed_plan=True)
    assert second.statuses == {"fixme": "succeeded", "fine": "succeeded"}
    fixed = next(e for e in second.report["instances"] if e["id"] == "fixme")
    assert [s["name"] for s in fixed["steps"]] == ["create-job", "start-job", "wait-job"]
    audit = [json.loads(line) for line in (second.run_dir / "sandbox" / "audit.jsonl").read_text().splitlines()]
    assert sum(1 for e in audit if e.get("region") == "eu-2" and e.get("changed")) == 2  # create + start


# -------------------------------------------------------- the run's counters (item 10)


def test_the_retry_budget_is_the_runs_across_invocations(plan_file, registry: Registry, tmp_path: Path) -> None:
    header = HEADER.replace("retry: {", "retry: {budget: 4, ")
    plan = plan_file(plan_text(f"{{id: gated, {GATED[1:]}", header=header))
    throttles = SandboxConfig(600, faults=[{"kind": "throttle", "count": 3}])
    first = run_plan(plan, registry, tmp_path, sandbox_config=throttles)
    assert first.outcome.exit_code == ExitCode.AWAITING_CUTOVER
    assert first.report["calls"]["retries"] == 3
    release(first.outcome.run_dir, registry, "gated")
    # The resumed sandbox throttles 3 calls again, but only 1 retry of the run's 4 is left.
    second = run_plan(plan, registry, tmp_path, resume=first.outcome.run_id)
    assert second.outcome.exit_code == ExitCode.FAILED
    assert second.report["instances"][0]["error"]["code"] == "RetryBudgetExhausted"
    assert second.report["calls"]["retries"] == 4
    journal = Journal.open(second.outcome.run_dir / "journal.sqlite")
    try:
        invocations = journal.invocations()
    finally:
        journal.close()
    assert [(i.command, i.retries, i.exit_code) for i in invocations] == [("run", 3, 4), ("resume", 1, 1)]
    assert all(i.ended and i.ended >= i.started and i.pid and i.host and i.version for i in invocations)


def test_the_report_counts_every_invocations_calls(plan_file, registry: Registry, tmp_path: Path) -> None:
    plan = plan_file(plan_text(f"{{id: gated, {GATED[1:]}", "{id: plain}"))
    drops = SandboxConfig(600, seed=1, faults=[{"kind": "drop", "mutating_only": True, "count": 2}])
    first = run_plan(plan, registry, tmp_path, sandbox_config=drops)
    release(first.outcome.run_dir, registry, "gated")
    second = run_plan(plan, registry, tmp_path, resume=first.outcome.run_id)
    assert second.outcome.exit_code == ExitCode.OK
    calls = second.report["calls"]
    by_action: dict[str, int] = {}
    for entry in second.audit:
        by_action[entry["action"]] = by_action.get(entry["action"], 0) + 1
    assert calls["calls_by_action"] == by_action  # every request the cloud saw, over both invocations
    assert calls["unknown_outcomes"] >= 2 and calls["reconciled"] >= 2
    assert [i["command"] for i in second.report["invocations"]] == ["run", "resume"]
    assert sum(i["calls"]["calls"] for i in second.report["invocations"]) == len(second.audit)


@pytest.mark.anyio
async def test_no_request_is_re_sent_outside_the_pipeline(tmp_path: Path) -> None:
    """aiohttp re-sends a GET silently when a kept-alive connection breaks: that request
    would bypass the limiter, the retry policy and the counts."""
    seen: list[str] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        seen.append(request.path)
        if request.path == "/drop" and request.transport is not None:
            request.transport.abort()
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_get("/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        async with HttpTransport(5) as transport:
            ok = await transport.send(HttpRequest("GET", f"http://127.0.0.1:{port}/ok", {}))
            assert ok.status == 200  # the connection is now kept alive, ready for reuse
            for _ in range(3):
                with pytest.raises(UnknownOutcomeError):
                    await transport.send(HttpRequest("GET", f"http://127.0.0.1:{port}/drop", {}))
    finally:
        await runner.cleanup()
    assert seen == ["/ok", "/drop", "/drop", "/drop"]  # one request per send, none behind our back


# -------------------------------------------- jobs the engine cannot watch (item 10)


def test_a_poll_that_exhausts_its_retries_needs_attention_and_resume_finishes(
    plan_file, registry: Registry, tmp_path: Path
) -> None:
    header = HEADER.replace("retry: {", "retry: {max_attempts: 3, ")
    plan = plan_file(plan_text("{id: watched, settings: {duration: 20}}", header=header))
    faults = [{"kind": "latency", "seconds": 0, "action": "StartJob", "name": "started"},
              {"kind": "throttle", "action": "DescribeJobs", "after": "started"}]
    with SandboxProcess(tmp_path / "sandbox", {"time_scale": 600, "faults": faults}) as box:
        options = RunOptions(runs_root=tmp_path / "runs", sandbox_at=box.directory, handle_signals=False)
        first = start_run(str(plan), registry, options)
        assert first.statuses == {"watched": "needs_attention"}
        assert first.exit_code == ExitCode.NEEDS_ATTENTION
        error = first.report["instances"][0]["error"]
        assert error["step"] == "wait-job" and error["code"] == "Throttled"
        assert "may still be running" in error["message"]
        box.configure(faults=[])
        second = resume_run(first.run_id, registry, RunOptions(runs_root=tmp_path / "runs", handle_signals=False))
        assert second.statuses == {"watched": "succeeded"}
        effects = sorted(e["action"] for e in box.audit() if e.get("changed"))
        assert effects == ["CreateJob", "StartJob"]  # the resume only watched


def test_an_unknown_status_is_logged_once_and_named_at_the_timeout(
    plan_file, registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    original = TestcloudEmulator._view

    def view(self: TestcloudEmulator, job: dict[str, Any]) -> dict[str, Any]:
        shown = original(self, job)
        return {**shown, "status": "STATUS_77"} if shown["status"] == "running" else shown

    monkeypatch.setattr(TestcloudEmulator, "_view", view)
    header = HEADER.replace("defaults: {provider: tc}", "defaults: {provider: tc, timeouts: {wait-job: 3s}}")
    slow = "settings: {duration: 36000}"
    plan = plan_file(plan_text(f"{{id: a, {slow}}}", f"{{id: b, {slow}}}", header=header))
    with structlog.testing.capture_logs() as events:
        result = run_plan(plan, registry, tmp_path)
    for entry in result.report["instances"]:
        assert entry["error"]["code"] == "StepTimeout"
        assert "STATUS_77" in entry["error"]["message"] and "does not know" in entry["error"]["message"]
    logged = [e["instance"] for e in events if e["event"] == "poll.unrecognised_status"]
    assert sorted(logged) == ["a", "b"]  # once per instance, however many polls
    assert result.report["polls"]["jobs"] > 4


# ---------------------------------------------------- a reconcile that is unsure (item 3)


class UnsureProvider(TestcloudProvider):
    """testcloud, but a by-name search that finds nothing right after a lost create is
    no proof: the search may lag behind the create (eventual consistency). It looks
    once per reconcile, so the engine's own asking again is what catches up."""

    def steps(self, instance: Instance) -> Sequence[Step]:
        steps = list(super().steps(instance))
        create = steps[0]
        assert isinstance(create, CallStep) and create.reconcile is not None
        name = instance.resource_name("job")

        async def reconcile(caller: Caller, outputs: Outputs) -> Outputs | None:
            answer = await caller.read(Call("DescribeJobs", {"Name": name}))
            found = [job for job in answer.payload["jobs"] if job["name"] == name]
            if not found:
                raise OutcomeUnsureError("SearchMayLag", f"no job named {name} listed yet")
            return {"JobId": found[0]["id"]}

        steps[0] = replace(create, reconcile=reconcile)
        return steps


class UnsurePlugin:
    @hookimpl
    def batchmig_register_providers(self, registry: Any) -> None:
        registry.add(ProviderSpec("testcloud", UnsureProvider(), emulator="testcloud"))

    @hookimpl
    def batchmig_register_emulators(self, registry: Any) -> None:
        registry.add(EmulatorSpec("testcloud", TestcloudEmulator, {"key_id": DEMO_KEY_ID, "secret": DEMO_SECRET}))


def test_an_unsure_reconcile_needs_attention_and_never_re_sends(plan_file, tmp_path: Path) -> None:
    registry = make_registry(UnsurePlugin())
    plan = plan_file(plan_text("{id: lagging}", "{id: fine}"))
    faults = [{"kind": "drop", "action": "CreateJob", "count": 1, "name": "lost"},
              {"kind": "list_lag", "seconds": 3600, "action": "DescribeJobs", "after": "lost"}]
    with SandboxProcess(tmp_path / "sandbox", {"time_scale": 600, "faults": faults}) as box:
        options = RunOptions(runs_root=tmp_path / "runs", sandbox_at=box.directory, handle_signals=False)
        first = start_run(str(plan), registry, options)
        (unsure,) = [iid for iid, status in first.statuses.items() if status == "needs_attention"]
        assert first.exit_code == ExitCode.NEEDS_ATTENTION
        error = next(e for e in first.report["instances"] if e["id"] == unsure)["error"]
        assert error["code"] == "SearchMayLag" and error["step"] == "create-job" and "listed yet" in error["message"]
        box.configure(faults=[])  # the list has caught up
        second = resume_run(first.run_id, registry, RunOptions(runs_root=tmp_path / "runs", handle_signals=False))
        assert second.statuses == {"lagging": "succeeded", "fine": "succeeded"}
        creates = [e for e in box.audit() if e["action"] == "CreateJob" and e.get("changed")]
        assert len(creates) == 2  # one per instance: the unsure one was looked up again, not re-sent


def test_an_unsure_reconcile_is_asked_again_until_the_list_catches_up(plan_file, tmp_path: Path) -> None:
    registry = make_registry(UnsurePlugin())
    plan = plan_file(plan_text("{id: lagging}").replace("retry: {", "retry: {max_attempts: 12, "))
    faults = [{"kind": "drop", "action": "CreateJob", "count": 1, "name": "lost"},
              {"kind": "list_lag", "seconds": 0.5, "action": "DescribeJobs", "after": "lost"}]
    result = run_plan(plan, registry, tmp_path, sandbox_config=SandboxConfig(600, faults=faults))
    assert result.statuses == {"lagging": "succeeded"}
    assert [e["action"] for e in result.audit if e.get("changed")] == ["CreateJob", "StartJob"]
    assert result.report["calls"]["reconciled"] == 1 and result.report["calls"]["retries"] >= 1


# ------------------------------------------------------ cutover released early (item 11)


def test_a_cutover_released_before_the_gate_is_a_pre_approval(plan_file, registry: Registry, tmp_path: Path) -> None:
    plan = plan_file(plan_text("{id: early, cutover: manual, settings: {incremental: true, duration: 600}}"))
    results: list[SandboxRun] = []
    runner = threading.Thread(
        target=lambda: results.append(run_plan(plan, registry, tmp_path, sandbox_config=SandboxConfig(300))))
    runner.start()
    deadline = time.monotonic() + 30
    while not list((tmp_path / "runs").glob("*/sandbox/audit.jsonl")):  # the runner is at work
        assert time.monotonic() < deadline, "the run never sent a request"
        time.sleep(0.01)
    run_dir = next((tmp_path / "runs").glob("*"))
    release(run_dir, registry, "early")  # long before its gate
    runner.join(timeout=60)
    (result,) = results
    assert [e["action"] for e in result.audit if e.get("changed")][:2] == ["CreateJob", "StartJob"]
    assert result.statuses == {"early": "succeeded"}, result.report["instances"]
    assert result.outcome.exit_code == ExitCode.OK


def test_an_idempotent_call_whose_answers_were_all_lost_needs_attention_and_resume_repeats_it(
    plan_file, registry: Registry, tmp_path: Path
) -> None:
    """With a client token nothing is looked up: out of attempts, the outcome is unknown
    (needs attention, not failed); resume sends the same call again, and the cloud acts once."""
    text = plan_text("{id: tok, settings: {client_token: true}}")
    plan = plan_file(text.replace("retry: {", "retry: {max_attempts: 2, "))
    lost = SandboxConfig(600, faults=[{"kind": "drop", "action": "CreateJob", "count": 2}])
    first = run_plan(plan, registry, tmp_path, sandbox_config=lost)
    assert first.statuses == {"tok": "needs_attention"}
    assert first.report["instances"][0]["error"]["step"] == "create-job"
    second = run_plan(plan, registry, tmp_path, resume=first.outcome.run_id, sandbox_config=lost)
    creates = [e for e in second.audit if e["action"] == "CreateJob"]
    assert len(creates) == 4  # two per invocation, each answer lost again (the sandbox's faults restart with it)
    assert len({e["resource"] for e in creates}) == 1 and sum(1 for e in creates if e.get("changed")) == 1
