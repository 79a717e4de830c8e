"""What a run keeps of its plan: status shows the run's own tags and cutover policies
without the plan, and a journal of the previous schema is read as it is and upgraded
by the resume that opens it for writing."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from batchmig.cli import CliContext, main
from batchmig.journal import Journal
from batchmig.registry import Registry
from batchmig.testing import run_plan

PLAN = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
defaults: {provider: tc, cutover: manual, settings: {testcloud: {duration: 20}}}
waves: [{name: second}, {name: first}]
instances:
  - {id: a, wave: first, tags: {team: crm, tier: gold}, settings: {incremental: true}}
  - {id: b, wave: first, cutover: auto, tags: {team: billing}}
  - {id: c, wave: second, settings: {fail: true}}
"""


class NoPlanLoads(CliContext):
    """A CLI whose registry must not be needed: loading it means the plan is parsed again."""

    def load(self) -> Registry:
        raise AssertionError("status loaded the registry to parse the plan again")


def status(run_dir: Path, context: CliContext, *args: str) -> Any:
    result = CliRunner().invoke(main, ["status", str(run_dir), "--format", "json", *args], obj=context)
    assert result.exit_code == 0 and result.exception is None, result.output
    return json.loads(result.stdout)


def shown(document: dict[str, Any]) -> tuple[Any, ...]:
    """What status says of the instances and waves (the plan gave tags, cutover and wave order)."""
    return ([(i["id"], i["wave"], i["status"], i["tags"], i["cutover"]) for i in document["instances"]],
            document["waves"])


def as_schema_1(journal: Path) -> None:
    """The journal as a batchmig of schema version 1 wrote it: no tags, cutover or wave order."""
    db = sqlite3.connect(journal)
    db.executescript("ALTER TABLE instances DROP COLUMN tags; ALTER TABLE instances DROP COLUMN cutover; "
                     "DELETE FROM meta WHERE key = 'waves'; PRAGMA user_version = 1;")
    db.close()


def version(journal: Path) -> int:
    db = sqlite3.connect(journal)
    try:
        return int(db.execute("PRAGMA user_version").fetchone()[0])
    finally:
        db.close()


def test_status_shows_the_runs_own_tags_and_cutover_after_its_plan_changed_or_went(
    plan_file, registry: Registry, tmp_path: Path
) -> None:
    plan = plan_file(PLAN)
    run_dir = run_plan(plan, registry, tmp_path).outcome.run_dir
    before = shown(status(run_dir, CliContext(registry=registry)))
    assert before[0] == [
        ("a", "first", "awaiting_cutover", {"team": "crm", "tier": "gold"}, "manual"),
        ("b", "first", "succeeded", {"team": "billing"}, "auto"),
        ("c", "second", "failed", {}, "manual"),
    ]
    assert [w["name"] for w in before[1]] == ["second", "first"]  # the plan's order, not the instances'
    plan.write_text(PLAN.replace("team: crm", "team: other").replace("cutover: manual", "cutover: auto")
                    .replace("[{name: second}, {name: first}]", "[{name: first}, {name: second}]"))
    (run_dir / "plan.yaml").unlink()
    assert shown(status(run_dir, NoPlanLoads())) == before
    plan.unlink()
    assert shown(status(run_dir, NoPlanLoads())) == before
    selected = status(run_dir, NoPlanLoads(), "--tag", "team=crm")
    assert [i["id"] for i in selected["instances"]] == ["a"]


def test_a_schema_1_journal_is_read_as_it_is_and_upgraded_by_resume(
    plan_file, registry: Registry, tmp_path: Path
) -> None:
    plan = plan_file(PLAN)
    first = run_plan(plan, registry, tmp_path).outcome
    journal = first.run_dir / "journal.sqlite"
    expected = shown(status(first.run_dir, CliContext(registry=registry)))
    as_schema_1(journal)

    assert shown(status(first.run_dir, CliContext(registry=registry))) == expected  # tags from the plan
    assert version(journal) == 1, "status wrote to the journal"
    opened = Journal.open(journal, read_only=True)
    assert not opened.keeps_plan_details and all(r.tags is None for r in opened.instances().values())
    opened.close()

    second = run_plan(plan, registry, tmp_path, resume=first.run_id).outcome
    assert second.exit_code == first.exit_code  # the manual cutover still waits, the failure stays failed
    assert version(journal) == 2
    opened = Journal.open(journal, read_only=True)
    assert opened.keeps_plan_details and opened.instances()["a"].tags == {"team": "crm", "tier": "gold"}
    opened.close()
    plan.unlink()
    (first.run_dir / "plan.yaml").unlink()
    assert shown(status(first.run_dir, NoPlanLoads())) == expected
