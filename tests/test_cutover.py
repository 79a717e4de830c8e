"""Cutover by wave and tag, an honest answer for every selected instance, and the audit trail."""

from __future__ import annotations

import json
from pathlib import Path

from batchmig.cutover import answer
from batchmig.registry import Registry
from batchmig.report.model import CallSummary, InstanceReport, RunReport
from batchmig.testing import run_plan

PLAN = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
defaults: {provider: tc, cutover: manual, settings: {testcloud: {duration: 10, incremental: true}}}
waves: [{name: one}, {name: two}]
instances:
  - {id: one-a, wave: one, tags: {app: crm}}
  - {id: one-b, wave: one}
  - {id: one-auto, wave: one, cutover: auto}
  - {id: one-full, wave: one, settings: {incremental: false}}
  - {id: two-a, wave: two, tags: {app: crm}}
  - {id: two-b, wave: two}
"""


def test_cutover_by_wave_releases_exactly_that_wave(cli, plan_file, registry: Registry, tmp_path: Path) -> None:
    first = run_plan(plan_file(PLAN), registry, tmp_path)
    assert first.outcome.exit_code == 4
    waiting = sorted(i for i, s in first.statuses.items() if s == "awaiting_cutover")
    assert waiting == ["one-a", "one-b", "two-a", "two-b"]
    runs = str(tmp_path / "runs")
    code, out, err = cli("cutover", "latest", "--wave", "one", "--no-resume", "--runs-root", runs,
                            "--format", "json")
    answers = {row["instance"]: row["outcome"] for row in json.loads(out)}
    assert code == 0, err
    assert answers == {"one-a": "released", "one-b": "released", "one-auto": "finished", "one-full": "finished"}
    # asking again is answered, not repeated; the other wave is untouched
    code, out, _ = cli("cutover", "latest", "--select", "one-a", "--select", "two-*", "--no-resume",
                          "--runs-root", runs)
    assert code == 0 and "already released: 1 — one-a" in out and "released: 2 — two-a, two-b" in out
    code, out, _ = cli("status", "latest", "--runs-root", runs, "--format", "json")
    report = RunReport.load(json.loads(out))
    assert [(r.kind, r.selection, r.instances) for r in report.requests] == [
        ("cutover", "--wave one", 2), ("cutover", "--select one-a --select two-*", 2)]
    assert {c.instance for c in report.cutovers} == set(waiting)
    assert all(c.user and c.host and not c.before_gate for c in report.cutovers)
    # released and resumed: each instance cut over exactly once
    second = run_plan(plan_file(PLAN), registry, tmp_path, resume=first.outcome.run_id)
    assert set(second.statuses.values()) == {"succeeded"} and second.duplicates() == {}
    completes = [e for e in second.audit if e["action"] == "CompleteJob" and e.get("changed")]
    assert len(completes) == 5  # the four released, and one-auto's in the first run (the audit spans both)


def test_cutover_by_tag_and_nothing_to_release(cli, plan_file, registry: Registry, tmp_path: Path) -> None:
    run_plan(plan_file(PLAN), registry, tmp_path)
    runs = str(tmp_path / "runs")
    code, out, _ = cli("cutover", "latest", "--tag", "app=crm", "--no-resume", "--runs-root", runs)
    assert code == 0 and "released: 2 — one-a, two-a" in out
    code, out, err = cli("cutover", "latest", "--select", "one-auto", "--select", "one-full", "--no-resume",
                            "--runs-root", runs)
    assert code == 1 and "finished: 2" in out and "nothing released" in err
    code, _, err = cli("cutover", "latest", "--tag", "app=erp", "--runs-root", runs)
    assert code == 2 and "--tag app=erp" in err


def report_of(*instances: InstanceReport) -> RunReport:
    return RunReport(1, "r", "p", "", False, "running", None, None, 0.0, None, {}, CallSummary(), instances=instances)


def inst(iid: str, status: str, cutover: str = "manual", step: str | None = None) -> InstanceReport:
    return InstanceReport(iid, "tc", "w", status, step, 0, None, cutover=cutover)  # type: ignore[arg-type]


def test_every_selected_instance_gets_one_answer() -> None:
    fleet = [inst("waits", "awaiting_cutover", step="complete-job"), inst("early", "running", step="wait-job"),
             inst("pending", "pending"), inst("done", "succeeded"), inst("auto", "running", "auto"),
             inst("oneshot", "running")]
    answers = {a.instance: (a.outcome, a.detail) for a in answer(report_of(*fleet), fleet,
                                                                 has_gate=lambda iid: iid != "oneshot")}
    assert answers["waits"] == ("released", "was waiting at complete-job")
    assert answers["early"][0] == "pre-approved" and "running at wait-job" in answers["early"][1]
    assert answers["pending"][0] == "pre-approved"
    assert answers["done"][0] == "finished" and answers["auto"][0] == "automatic"
    assert answers["oneshot"] == ("no gate", "its workflow has no cutover step")
