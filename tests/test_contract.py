"""The typed seams between the core and providers (each a defect of the stringly typed contract).

* a success's request id reaches the journal wherever the cloud puts it — testcloud
  sends it in a header only, where the core's guess at payload keys never looked;
* an instance's error stays a ``Failure`` record from the engine through the journal;
* a run's exit code is an ``ExitCode``;
* the ``batchmig_check_plan`` hook's types are public, and no plugin re-declares the
  registry protocols.
"""

from __future__ import annotations

import ast
import typing
from pathlib import Path

from batchmig import hookspecs, plugin
from batchmig.errors import ExitCode, Failure
from batchmig.journal import Journal
from batchmig.testing import make_registry, run_plan
from batchmig.testing.testcloud import TestcloudPlugin

ROOT = Path(__file__).resolve().parent.parent


def test_header_borne_request_ids_reach_the_journal_and_failures_stay_typed(plan_file, tmp_path: Path) -> None:
    plan = plan_file("version: 1\nproviders: {tc: {type: testcloud, region: r}}\ndefaults: {provider: tc}\n"
                     "instances: [{id: ok}, {id: refused, settings: {reject: true}}]\n")
    result = run_plan(plan, make_registry(TestcloudPlugin()), tmp_path)
    assert result.statuses == {"ok": "succeeded", "refused": "failed"}
    assert isinstance(result.outcome.exit_code, ExitCode) and result.outcome.exit_code is ExitCode.FAILED
    journal = Journal.open(result.outcome.run_dir / "journal.sqlite")
    try:
        calls = journal.calls()
        records = journal.instances()
    finally:
        journal.close()
    done = [row for row in calls if row[4] == "done"]
    assert done and all(row[7] for row in done), "a mutating call's request id was lost"
    failure = records["refused"].error
    assert isinstance(failure, Failure)
    assert (failure.kind, failure.code, failure.step) == ("permanent", "InvalidParameterValue", "create-job")
    assert failure.request_id, "the error's request id (from the header) was lost"
    [entry] = [i for i in result.report["instances"] if i["id"] == "refused"]
    assert entry["error"]["request_id"] == failure.request_id


def test_the_check_plan_hook_is_typed_with_public_names() -> None:
    hints = typing.get_type_hints(hookspecs.batchmig_check_plan, vars(plugin))
    assert hints["plan"] is plugin.Plan
    assert plugin.PlanProblem in typing.get_args(typing.get_args(hints["return"])[0])
    for name in ("Plan", "PlannedInstance", "PlanProblem", "ProviderRegistry", "EmulatorRegistry"):
        assert name in plugin.__all__


def test_no_plugin_redeclares_what_the_public_api_offers() -> None:
    for path in ROOT.glob("plugins/*/batchmig_*/**/*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        classes = {node.name for node in ast.walk(tree) if isinstance(node, ast.ClassDef)}
        assert not {c for c in classes if c.lstrip("_").endswith("Registry")}, f"{path} declares its own registry"
