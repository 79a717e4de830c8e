"""The tencent-sqlserver steps driven end to end against the emulator over loopback."""

from __future__ import annotations

from typing import Any

import pytest
from batchmig.plugin import Call, CallStep, Instance
from batchmig.testing import StepRun, call_step, wait_step

from batchmig_tencentcloud.sqlserver import SqlServerProvider, SqlServerSettings

pytestmark = pytest.mark.anyio

PROVIDER = SqlServerProvider()


def instance(settings: dict[str, Any], *, id: str = "db01", token: str = "t0k3n") -> Instance:
    model = SqlServerSettings.model_validate(settings)
    made = Instance(id=id, provider="tencent-sqlserver", connection="tc", settings=model, token=token)
    assert PROVIDER.check(made) == []
    return made


def list_imports(run: StepRun) -> Call:
    """The import poller's list call (DescribeBackupMigration of the target instance)."""
    example = wait_step(run.steps, "wait-import").poller.example
    assert example is not None
    return example(run.item("wait-import"))


async def test_backup_instance(sqlserver):
    inst = instance({"instance_id": "mssql-abcd1234", "scenario": "backup"})
    run = await sqlserver.driver.run(inst, PROVIDER.steps(inst))
    assert run.state == "succeeded", run
    assert run.outputs["backup_id"] > 0
    assert run.outputs["backup_file"].endswith(".bak")
    assert sqlserver.server.resources("CreateBackup") == [
        f"backup:mssql-abcd1234/{inst.resource_name('backup')}"
    ]


async def test_backup_of_listed_databases_sends_strategy_1(sqlserver):
    inst = instance(
        {
            "instance_id": "mssql-abcd1234",
            "scenario": "backup",
            "backup": {"strategy": "databases", "databases": ["sales", "hr"], "keep_until_deactivated": True},
        }
    )
    call = call_step(PROVIDER.steps(inst), "create-backup").build({})
    assert call.params["Strategy"] == 1 and call.params["DBNames"] == ["sales", "hr"]
    assert call.params["StorageStrategy"] == 1 and call.mutating
    run = await sqlserver.driver.run(inst, PROVIDER.steps(inst))
    assert run.state == "succeeded"


async def test_failed_backup_fails_the_wait(sqlserver):
    inst = instance(
        {"instance_id": "mssql-abcd1234", "scenario": "backup", "backup": {"name": "sandbox-fail-1"}}
    )
    run = await sqlserver.driver.run(inst, PROVIDER.steps(inst))
    assert run.state == "failed" and run.step == "wait-backup"
    assert "sandbox-fail-1" in run.status.message


async def test_lost_backup_answer_is_reconciled_and_waited_by_name(sqlserver):
    inst = instance({"instance_id": "mssql-abcd1234", "scenario": "backup"})
    run = await sqlserver.driver.run(inst, PROVIDER.steps(inst), lose={"create-backup"})
    assert run.state == "succeeded"
    assert len(sqlserver.server.effects("CreateBackup")) == 1
    assert sqlserver.server.calls("DescribeBackups")  # waited by name, without the FlowId


async def test_backup_reconcile_says_not_done_when_nothing_was_created(sqlserver):
    inst = instance({"instance_id": "mssql-abcd1234", "scenario": "backup"})
    assert await sqlserver.driver.reconcile(call_step(PROVIDER.steps(inst), "create-backup"), {}) is None


FULL: dict[str, Any] = {
    "instance_id": "mssql-abcd1234",
    "scenario": "import",
    "import": {"backup_file": "https://bucket-125.cos.ap-guangzhou.myqcloud.com/sales.bak"},
}


async def test_full_import(sqlserver):
    inst = instance(FULL)
    assert [step.name for step in PROVIDER.steps(inst)] == ["create-import", "start-import", "wait-import"]
    run = await sqlserver.driver.run(inst, PROVIDER.steps(inst))
    assert run.state == "succeeded", run
    assert run.outputs["migration_id"].startswith("mssql-backup-migration-")
    task = sqlserver.sandbox.store.get("migration", f"ap-guangzhou/{run.outputs['migration_id']}")
    assert task["MigrationName"] == inst.resource_name("import")
    assert run.waits["wait-import"] > 1


async def test_full_import_of_a_corrupt_file_fails_with_the_task_message(sqlserver):
    inst = instance({**FULL, "import": {"backup_file": "https://b.cos.myqcloud.com/sandbox-corrupt.bak"}})
    run = await sqlserver.driver.run(inst, PROVIDER.steps(inst))
    assert run.state == "failed" and run.step == "wait-import"
    assert "damaged" in run.status.message and run.status.request_id


LOG: dict[str, Any] = {
    "instance_id": "mssql-abcd1234",
    "scenario": "import",
    "import": {
        "recovery_type": "FULL_LOG",
        "upload_type": "COS_UPLOAD",
        "backup_file": "sales_full.bak",
        "incremental_files": ["sales_log1.trn", "sales_log2.trn"],
        "rename": {"sales": "sales_new"},
    },
}


async def test_full_log_import_with_rename_and_incrementals(sqlserver):
    inst = instance(LOG)
    steps = PROVIDER.steps(inst)
    assert [step.name for step in steps] == [
        "create-import", "rename-databases", "start-import", "wait-import",
        "create-incremental-1", "start-incremental-1", "wait-incremental-1",
        "create-final-incremental", "start-final-incremental", "wait-final-incremental",
    ]  # fmt: skip
    assert [step.name for step in steps if isinstance(step, CallStep) and step.cutover] == [
        "start-final-incremental"
    ]
    run = await sqlserver.driver.run(inst, steps)
    assert run.state == "succeeded", run
    key = f"ap-guangzhou/{run.outputs['migration_id']}"
    task = sqlserver.sandbox.store.get("migration", key)
    assert task["DBRename"] == [{"OldName": "sales", "NewName": "sales_new"}]
    incrementals = [
        sqlserver.sandbox.store.get("incremental", f"ap-guangzhou/{i}") for i in task["incrementals"]
    ]
    assert [(i["BackupFiles"], i["IsRecovery"]) for i in incrementals] == [
        (["sales_log1.trn"], "NO"),
        (["sales_log2.trn"], "YES"),
    ]
    answer = await sqlserver.driver.read(list_imports(run))
    [view] = answer.payload["BackupMigrationSet"]
    assert view["Status"] == 9


async def test_manual_cutover_stops_at_status_8_until_the_final_incremental(sqlserver):
    inst = instance(LOG)
    run = await sqlserver.driver.run(inst, PROVIDER.steps(inst), stop_before="start-final-incremental")
    assert run.state == "stopped"
    sqlserver.sandbox.advance(3600)
    answer = await sqlserver.driver.read(list_imports(run))
    assert answer.payload["BackupMigrationSet"][0]["Status"] == 8


async def test_every_mutating_step_reconciles_after_a_lost_answer(sqlserver):
    inst = instance(LOG)
    steps = PROVIDER.steps(inst)
    mutating = [step.name for step in steps if isinstance(step, CallStep)]
    run = await sqlserver.driver.run(inst, steps, lose=mutating)
    assert run.state == "succeeded", run
    for action in ("CreateBackupMigration", "StartBackupMigration", "ModifyBackupMigration"):
        assert len(sqlserver.server.effects(action)) == 1, action
    assert len(sqlserver.server.effects("CreateIncrementalMigration")) == 2
    assert len(sqlserver.server.effects("StartIncrementalMigration")) == 2


async def test_reconcile_of_starts_is_none_before_the_start(sqlserver):
    inst = instance(LOG)
    steps = PROVIDER.steps(inst)
    driver = sqlserver.driver
    run = await driver.run(inst, steps, stop_before="start-import")
    assert await driver.reconcile(call_step(steps, "start-import"), run.outputs) is None
    run = await driver.run(inst, steps[2:], run.outputs, stop_before="start-incremental-1")
    assert await driver.reconcile(call_step(steps, "start-incremental-1"), run.outputs) is None
    assert await driver.reconcile(call_step(steps, "create-final-incremental"), run.outputs) is None


async def test_backup_then_import(sqlserver):
    inst = instance({**FULL, "scenario": "backup-then-import"})
    assert [step.name for step in PROVIDER.steps(inst)][:2] == ["create-backup", "wait-backup"]
    run = await sqlserver.driver.run(inst, PROVIDER.steps(inst))
    assert run.state == "succeeded"
    assert run.outputs["backup_id"] and run.outputs["migration_id"]


async def test_imports_into_one_instance_are_polled_with_one_call(sqlserver):
    instances = [instance(FULL, id=f"db{n}", token=f"tok{n}") for n in range(5)]
    items = []
    for inst in instances:
        run = await sqlserver.driver.run(inst, PROVIDER.steps(inst), stop_before="wait-import")
        items.append(run.item())
    wait = wait_step(PROVIDER.steps(instances[0]), "wait-import")
    assert len({wait.poller.group(item) for item in items}) == 1 and wait.poller.max_batch >= 5
    before = len(sqlserver.server.calls("DescribeBackupMigration"))
    statuses = await sqlserver.driver.poll(wait, items)
    assert [s.state for s in statuses] == ["running"] * 5
    sqlserver.sandbox.advance(3600)
    statuses = await sqlserver.driver.poll(wait, items)
    assert [s.state for s in statuses] == ["succeeded"] * 5
    assert len(sqlserver.server.calls("DescribeBackupMigration")) - before == 2


async def test_preflight(sqlserver):
    assert await PROVIDER.preflight(sqlserver.driver, instance(FULL)) == []
    missing = instance({**FULL, "instance_id": "mssql-nothere"})
    [problem] = await PROVIDER.preflight(sqlserver.driver, missing)
    assert "does not exist" in problem
    run = await sqlserver.driver.run(instance(FULL), PROVIDER.steps(instance(FULL)), stop_before="wait-import")
    assert run.state == "stopped"
    [problem] = await PROVIDER.preflight(sqlserver.driver, instance(FULL))
    assert "status 10 (migrating)" in problem
