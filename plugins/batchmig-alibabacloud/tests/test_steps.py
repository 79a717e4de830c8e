"""The provider's steps against its emulator, with batchmig's kit (no engine, no plan).

``EmulatorHost`` runs the emulator inside batchmig's sandbox host on loopback (audit
log, per-call faults); ``FakeSandboxContext`` is its clock, moved by the driver between
polls; ``StepDriver`` runs an instance's steps as the engine would, reconciling or
repeating calls whose answer was lost and checking what it recovers.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping

import pytest
from batchmig.plugin import CallStep, Instance, OutcomeUnsureError
from batchmig.testing import (
    EmulatorHost,
    FakeSandboxContext,
    StepDriver,
    call_step,
    http_client,
    make_instance,
    provider_config,
)

from batchmig_alibabacloud.emulator import DEMO_CREDENTIALS
from batchmig_alibabacloud.provider import AlibabaRdsProvider

pytestmark = pytest.mark.anyio
Host = EmulatorHost[FakeSandboxContext]

PROVIDER = AlibabaRdsProvider()
OSS = "oss-cn-hangzhou.aliyuncs.com:bm-backups"
ONE_SHOT = {"instance_id": "rm-steps001", "database": "sales", "full": {"oss_object": f"{OSS}:sales_full.bak"}}
CHAIN = {"instance_id": "rm-steps001", "database": "hr", "mode": "chain", "full": {"oss_object": f"{OSS}:hr.bak"},
         "logs": [{"oss_object": f"{OSS}:hr_1.trn"}, {"oss_object": f"{OSS}:hr_2.trn"}]}




@pytest.fixture
async def driver(host: Host) -> AsyncIterator[StepDriver]:
    async with http_client() as send:
        config = provider_config("alibaba-rds-sqlserver", host.url, DEMO_CREDENTIALS, region="cn-hangzhou")
        yield StepDriver(PROVIDER.connect(config, send), send, provider=PROVIDER, clock=host.context)


def instance(settings: Mapping[str, object], token: str = "a1b2c3d4") -> Instance:
    return make_instance(PROVIDER, "alibaba-rds-sqlserver", settings, token=token)


async def test_a_one_shot_migration_is_one_online_full_task(driver: StepDriver, host: Host) -> None:
    run = await driver.run(instance(ONE_SHOT))
    assert run.state == "succeeded", run
    assert set(run.outputs) == {"earlier_tasks", "full_task_id"}  # remote ids only
    [create] = host.calls("CreateMigrateTask")
    assert host.resources("CreateMigrateTask") == ["rm-steps001/sales/FULL"]
    assert create["status"] == 200


async def test_a_chain_restores_every_log_then_goes_online(driver: StepDriver, host: Host) -> None:
    run = await driver.run(instance(CHAIN))
    assert run.state == "succeeded", run
    assert host.resources("CreateMigrateTask") == [
        "rm-steps001/hr/FULL", f"rm-steps001/hr/UPDF/{OSS}:hr_1.trn", f"rm-steps001/hr/UPDF/{OSS}:hr_2.trn"]
    assert host.resources("CreateOnlineDatabaseTask") == ["rm-steps001/hr/online"]
    assert {"full_task_id", "log_1_task_id", "log_2_task_id"} <= set(run.outputs)


async def test_every_lost_answer_is_recovered_without_a_second_effect(driver: StepDriver, host: Host) -> None:
    mutating = [step.name for step in PROVIDER.steps(instance(CHAIN)) if isinstance(step, CallStep)]
    run = await driver.run(instance(CHAIN), lose=mutating)
    assert run.state == "succeeded", run
    assert len(host.effects("CreateMigrateTask")) == 3
    assert len(host.effects("CreateOnlineDatabaseTask")) == 1
    assert len(host.calls("CreateOnlineDatabaseTask")) == 2  # repeated with its ClientToken, no second effect


async def test_a_reconcile_before_the_create_says_not_created(driver: StepDriver) -> None:
    run = await driver.run(instance(CHAIN), stop_before="create-log-2")
    assert await driver.reconcile(call_step(run.steps, "create-log-2"), run.outputs) is None
    assert await driver.reconcile(call_step(run.steps, "create-full"), run.outputs) == {
        "full_task_id": run.outputs["full_task_id"]}


async def test_an_earlier_runs_task_of_the_database_is_never_adopted(driver: StepDriver, host: Host) -> None:
    failed = {**ONE_SHOT, "full": {"oss_object": f"{OSS}:sales_fail.bak"}}
    first = await driver.run(instance(failed, token="run00001"))
    assert first.state == "failed" and first.status is not None and "Failed to restore" in first.status.message
    second = await driver.run(instance(ONE_SHOT, token="run00002"), stop_before="create-full")
    assert second.outputs["earlier_tasks"] == first.outputs["full_task_id"]
    # The first run's FULL task is in the list, but it is not this run's: not created yet.
    assert await driver.reconcile(call_step(second.steps, "create-full"), second.outputs) is None


async def test_a_list_that_never_answers_usably_makes_the_reconcile_unsure(driver: StepDriver, host: Host) -> None:
    run = await driver.run(instance(ONE_SHOT), stop_before="create-full")
    host.inject("error", action="DescribeMigrateTasks", count=None, code="InternalError")
    with pytest.raises(OutcomeUnsureError):
        await driver.reconcile(call_step(run.steps, "create-full"), run.outputs)


async def test_a_manual_cutover_stops_before_the_online_task(driver: StepDriver, host: Host) -> None:
    paused = await driver.run(instance(CHAIN), approve_cutover=False)
    assert paused.state == "awaiting_cutover" and paused.step == "bring-online"
    assert not host.calls("CreateOnlineDatabaseTask")
    assert (await driver.run(instance(CHAIN), resume=paused)).state == "succeeded"


async def test_preflight_reads_the_instance_and_its_version(driver: StepDriver, host: Host) -> None:
    assert await PROVIDER.preflight(driver, instance(ONE_SHOT)) == []
    legacy = await PROVIDER.preflight(driver, instance({**ONE_SHOT, "instance_id": "rm-steps2008r2"}))
    assert legacy == ["rm-steps2008r2 runs SQL Server 2008r2: full: SQL Server 2008 R2 takes backup files only "
                      "by OSSUrls: give urls instead"]
    missing = await PROVIDER.preflight(driver, instance({**ONE_SHOT, "instance_id": "rm-missing001"}))
    assert len(missing) == 1 and "Forbidden.InstanceNotFound" in missing[0]
    assert not [entry for entry in host.audit if entry.get("mutating")]
