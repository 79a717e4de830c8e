"""The run report: the typed model built from the journal, report.json and its JSON Schema."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import FrozenInstanceError, fields, replace
from datetime import UTC, datetime
from pathlib import Path

import jsonschema
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from batchmig.journal import Journal, Requester
from batchmig.registry import Registry
from batchmig.report import SCHEMA_VERSION, RunReport, build_run_report, read_report, report_schema, run_state
from batchmig.report.model import moment
from batchmig.testing import run_plan

DOCS = Path(__file__).parent.parent / "docs"
PLAN = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
defaults: {provider: tc, cutover: manual, settings: {testcloud: {duration: 20}}}
waves: [{name: first}, {name: second}]
instances:
  - {id: a, wave: first, tags: {team: crm}, settings: {incremental: true}}
  - {id: b, wave: first}
  - {id: c, wave: second, settings: {fail: true}}
"""


def validate(document: dict) -> None:
    jsonschema.Draft202012Validator(report_schema(), format_checker=jsonschema.FormatChecker()).validate(document)


def _shape(schema: dict) -> dict[str, tuple[list[str], list[str], list[str]]]:
    """What the model decides in a schema: per record its fields, the required ones and the
    documented ones. How pydantic spells the rest changes between its releases (the
    ``latest`` and ``oldest`` runs), and is not ours to pin."""
    return {
        name: (sorted(record.get("properties", {})), sorted(record.get("required", [])),
               sorted(k for k, v in record.get("properties", {}).items() if v.get("description")))
        for name, record in {"RunReport": schema, **schema.get("$defs", {})}.items()
    }


def test_the_published_schema_is_the_generated_one() -> None:
    published = json.loads((DOCS / "report-schema.json").read_text(encoding="utf-8"))
    assert _shape(published) == _shape(report_schema()), \
        "regenerate: batchmig schema --report > docs/report-schema.json"
    jsonschema.Draft202012Validator.check_schema(published)


PARSES_DURING_PREPARE = """
import ast
import batchmig.report.formats as formats
parsed = []
real_parse = ast.parse
ast.parse = lambda *args, **kwargs: parsed.append(1) or real_parse(*args, **kwargs)
formats.prepare()
print(len(parsed))
"""


def test_preparing_the_renderers_in_a_thread_parses_no_source() -> None:
    """A runner prepares the report's serializers in a thread while its event loop runs: on
    CPython 3.11 an ``ast`` parse there can break one on another thread at the same time
    ("AST constructor recursion depth mismatch"), so preparing must not parse source (pydantic
    does, for fields' docstrings, when asked for them). A fresh interpreter: pydantic builds
    each serializer once per process."""
    done = subprocess.run([sys.executable, "-c", PARSES_DURING_PREPARE], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["0"], done.stderr
    assert any(v.get("description") for v in report_schema()["$defs"]["InstanceReport"]["properties"].values())


def test_a_real_report_validates_and_reads_back(plan_file, registry: Registry, tmp_path: Path) -> None:
    result = run_plan(plan_file(PLAN), registry, tmp_path)
    document = json.loads((result.outcome.run_dir / "report.json").read_text(encoding="utf-8"))
    validate(document)
    assert document["schema_version"] == SCHEMA_VERSION and document["sandbox"] is True
    assert document["state"] == "failed" and document["counts"] == {"awaiting_cutover": 1, "failed": 1,
                                                                    "succeeded": 1}
    report = read_report(result.outcome.run_dir / "report.json")
    assert report == RunReport.load(document) and report.to_json_dict() == document
    by_id = {i.id: i for i in report.instances}
    assert by_id["a"].tags == {"team": "crm"} and by_id["a"].cutover == "manual" and by_id["a"].step == "complete-job"
    assert by_id["c"].error is not None and by_id["c"].error.code == "JobFailed"
    steps = by_id["b"].steps
    assert [s.name for s in steps] == ["create-job", "start-job", "wait-job"]
    for step in steps:  # ISO-8601 in the file, with the duration beside the times
        assert step.started and step.ended and step.duration_seconds is not None
        assert step.duration_seconds == pytest.approx((step.ended - step.started).total_seconds(), abs=0.002)
    assert datetime.fromisoformat(document["instances"][1]["steps"][0]["started"]).tzinfo is not None
    (invocation,) = report.invocations
    assert invocation.command == "run" and invocation.exit_code == 1 and invocation.calls.calls > 0
    assert report.calls == invocation.calls and report.duration_seconds == invocation.duration_seconds
    assert [(w.name, w.instances) for w in report.waves] == [("first", 2), ("second", 1)]
    assert any(key.endswith("/CreateJob") for key in report.rate_limits)


def test_built_records_are_those_their_init_makes(plan_file, registry: Registry, tmp_path: Path) -> None:
    """``build_run_report`` makes its instance and step records without ``__init__`` (``model.made``):
    each must hold every field, equal the record ``__init__`` makes of the same values, and stay frozen."""
    journal = Journal.open(run_plan(plan_file(PLAN), registry, tmp_path).outcome.run_dir / "journal.sqlite")
    try:
        built = build_run_report(journal)
    finally:
        journal.close()
    records = [record for instance in built.instances for record in (instance, *instance.steps)]
    assert len(records) > len(built.instances)
    for record in records:
        assert list(vars(record)) == [f.name for f in fields(record)]
        assert replace(record) == record
    with pytest.raises(FrozenInstanceError):
        built.instances[0].steps[0].name = "changed"  # type: ignore[misc]
    assert RunReport.load(built.to_json_dict()) == built


def test_cutover_requests_are_audited(plan_file, registry: Registry, tmp_path: Path) -> None:
    result = run_plan(plan_file(PLAN), registry, tmp_path)
    journal = Journal.open(result.outcome.run_dir / "journal.sqlite")
    try:
        journal.release_cutovers({"a": "awaiting_cutover"}, Requester("dba", "jump-1"), "--select a")
        journal.release_cutovers({"b": "running"}, Requester("dba", "jump-2"), "--tag team=crm")
        report = build_run_report(journal)
    finally:
        journal.close()
    validate(report.to_json_dict())
    assert [(r.kind, r.user, r.host, r.selection, r.instances) for r in report.requests] == [
        ("cutover", "dba", "jump-1", "--select a", 1), ("cutover", "dba", "jump-2", "--tag team=crm", 1)]
    assert [(c.instance, c.host, c.before_gate) for c in report.cutovers] == [("a", "jump-1", False),
                                                                             ("b", "jump-2", True)]
    assert report.state == "failed"


def test_the_current_user_is_named() -> None:
    who = Requester.current()
    assert who.user and who.host


@pytest.mark.parametrize(
    ("statuses", "active", "start_error", "state"),
    [
        (["succeeded"], True, None, "running"),
        (["pending", "pending"], False, "credentials not set", "not_started"),
        (["succeeded", "running"], False, None, "interrupted"),
        (["succeeded", "failed", "awaiting_cutover"], False, None, "failed"),
        (["succeeded", "awaiting_cutover"], False, None, "awaiting_cutover"),
        (["succeeded", "needs_attention", "failed"], False, None, "needs_attention"),
        (["succeeded"], False, None, "succeeded"),
    ],
)
def test_run_state(statuses: list[str], active: bool, start_error: str | None, state: str) -> None:
    assert run_state(statuses, active=active, start_error=start_error) == state


def test_schema_command_prints_the_report_schema() -> None:
    from batchmig.cli import main

    result = CliRunner().invoke(main, ["schema", "--report"])
    assert result.exit_code == 0 and json.loads(result.stdout) == report_schema()


def test_the_report_counts_every_call_of_a_start_and_two_resumes(plan_file, registry: Registry,
                                                                  tmp_path: Path) -> None:
    from batchmig.cutover import release_selected
    from batchmig.sandbox.machinery import read_audit
    from batchmig.selection import Selection

    plan = plan_file(PLAN.replace("{id: c, wave: second, settings: {fail: true}}", "{id: c, wave: second}"))
    first = run_plan(plan, registry, tmp_path)
    assert first.statuses["a"] == "awaiting_cutover"
    run_plan(plan, registry, tmp_path, resume=first.outcome.run_id)  # still waiting: a second invocation
    release_selected(first.outcome.run_dir, registry, Selection.parse(waves=["first"]))
    third = run_plan(plan, registry, tmp_path, resume=first.outcome.run_id)
    assert set(third.statuses.values()) == {"succeeded"}
    document = json.loads((first.outcome.run_dir / "report.json").read_text(encoding="utf-8"))
    validate(document)
    report = RunReport.load(document)
    assert [i.command for i in report.invocations] == ["run", "resume", "resume"]
    audit = list(read_audit(first.outcome.run_dir / "sandbox" / "audit.jsonl"))
    assert report.calls.calls == len(audit) == sum(i.calls.calls for i in report.invocations)
    assert report.started is not None and report.ended is not None and report.elapsed_seconds
    assert report.duration_seconds == pytest.approx(sum(i.duration_seconds or 0 for i in report.invocations))


@settings(max_examples=2000, deadline=None)
@given(st.floats(min_value=0, max_value=32503680000) | st.builds(
    lambda whole, offset: whole / 1000 + 0.0005 + offset,
    st.integers(min_value=0, max_value=32503680000 * 1000), st.sampled_from([0.0, 1e-9, -1e-9, 1e-12, -1e-12, 2e-7])))
def test_a_moment_is_the_rounded_timestamp(epoch: float) -> None:
    """``moment``'s fast way to the millisecond gives exactly what rounding to 3 decimals gives."""
    assert moment(epoch) == datetime.fromtimestamp(round(epoch, 3), UTC)
