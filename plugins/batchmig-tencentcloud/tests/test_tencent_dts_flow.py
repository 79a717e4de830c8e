"""The tencent-dts steps driven end to end against the emulator over loopback."""

from __future__ import annotations

import json
from typing import Any

import pytest
from batchmig.errors import PermanentError
from batchmig.plugin import Call, CallStep, Instance
from batchmig.testing import call_step, wait_step

from batchmig_tencentcloud.dts import DtsProvider, DtsSettings

pytestmark = pytest.mark.anyio

PROVIDER = DtsProvider()

JOB: dict[str, Any] = {
    "migrate_type": "full-incremental",
    "job": {
        "migrate_object": "databases",
        "databases": [{"name": "sales"}, {"name": "hr", "schema": "dbo", "tables": ["staff"]}],
        "source": {
            "access_type": "extranet",
            "region": "ap-guangzhou",
            "ip": "203.0.113.10",
            "port": 1433,
            "user": "dts",
            "password_env": "SRC_DB_PASSWORD",
        },
        "target": {
            "region": "ap-guangzhou",
            "instance_id": "mssql-abcd1234",
            "user": "dts",
            "password_credential": "target_password",
        },
        "tags": {"team": "dba"},
    },
}


def instance(settings: dict[str, Any], *, id: str = "db01", token: str = "t0k3n") -> Instance:
    model = DtsSettings.model_validate(settings)
    made = Instance(id=id, provider="tencent-dts", connection="tc", settings=model, token=token)
    assert PROVIDER.check(made) == []
    return made


@pytest.fixture(autouse=True)
def source_password(monkeypatch):
    monkeypatch.setenv("SRC_DB_PASSWORD", "source-secret")


async def test_create_check_start_complete(dts):
    inst = instance(JOB)
    steps = PROVIDER.steps(inst)
    assert [step.name for step in steps] == [
        "create-job", "check-job", "wait-check", "start-job", "wait-migration",
        "complete-job", "wait-complete",
    ]  # fmt: skip
    assert [step.name for step in steps if isinstance(step, CallStep) and step.cutover] == ["complete-job"]
    run = await dts.driver.run(inst, steps)
    assert run.state == "succeeded", run
    [job] = dts.sandbox.store.values("job")
    assert job["JobName"] == inst.resource_name("dts")
    assert json.loads(job["DatabaseInfo"])[1] == {"Database": "hr", "Schema": "dbo", "Table": ["staff"]}
    answer = await dts.driver.read(Call("DescribeMigrateJobs", {"JobId": run.outputs["job_id"]}))
    assert answer.payload["JobList"][0]["Status"] == 9


async def test_passwords_reach_the_server_but_not_the_call(dts):
    inst = instance(JOB)
    call = call_step(PROVIDER.steps(inst), "create-job").build({})
    text = json.dumps(call.params)
    assert "source-secret" not in text and "target-secret" not in text
    await dts.driver.run(inst, PROVIDER.steps(inst)[:1])
    [job] = dts.sandbox.store.values("job")
    assert job["SrcInfo"]["Password"] == "source-secret"
    assert job["DstInfo"]["Password"] == "target-secret"


async def test_lost_answers_are_reconciled_without_duplicates(dts):
    inst = instance(JOB)
    steps = PROVIDER.steps(inst)
    mutating = [step.name for step in steps if isinstance(step, CallStep)]
    run = await dts.driver.run(inst, steps, lose=mutating)
    assert run.state == "succeeded", run
    for action in ("CreateMigrateJob", "CreateMigrateCheckJob", "StartMigrateJob", "CompleteMigrateJob"):
        assert len(dts.server.effects(action)) == 1, action


async def test_start_reconcile_is_none_before_the_start(dts):
    inst = instance(JOB)
    steps = PROVIDER.steps(inst)
    run = await dts.driver.run(inst, steps, stop_before="start-job")
    assert await dts.driver.reconcile(call_step(steps, "start-job"), run.outputs) is None
    assert await dts.driver.reconcile(call_step(steps, "complete-job"), run.outputs) is None
    assert await dts.driver.reconcile(call_step(steps, "create-job"), {}) == {
        "job_id": run.outputs["job_id"]
    }


async def test_existing_job_by_id_full_only(dts):
    other = instance({**JOB, "migrate_type": "full"}, id="other")
    created = await dts.driver.run(other, PROVIDER.steps(other)[:1])
    settings = {"job_id": created.outputs["job_id"], "migrate_type": "full"}
    inst = instance(settings)
    assert await PROVIDER.preflight(dts.driver, inst) == []
    steps = PROVIDER.steps(inst)
    assert [step.name for step in steps] == ["check-job", "wait-check", "start-job", "wait-migration"]
    run = await dts.driver.run(inst, steps)
    assert run.state == "succeeded"
    assert run.outputs == {"dts_ready": False}  # the plan's job_id is the plan's: not copied into the journal
    [problem] = await PROVIDER.preflight(dts.driver, inst)
    assert "status 9" in problem


async def test_preflight_finds_missing_job_and_wrong_type(dts):
    [problem] = await PROVIDER.preflight(
        dts.driver, instance({"job_id": "dts-nothere", "migrate_type": "full"})
    )
    assert "does not exist" in problem
    full = instance({**JOB, "migrate_type": "full"})
    created = await dts.driver.run(full, PROVIDER.steps(full)[:1])
    wrong = instance({"job_id": created.outputs["job_id"], "migrate_type": "full-incremental"})
    [problem] = await PROVIDER.preflight(dts.driver, wrong)
    assert "MigrateType 2" in problem


async def test_failed_check_reports_the_check_message(dts):
    settings = {**JOB, "job": {**JOB["job"], "name": "sandbox-fail-check-job"}}
    run = await dts.driver.run(instance(settings), PROVIDER.steps(instance(settings)))
    assert run.state == "failed" and run.step == "wait-check"
    assert "do not exist" in run.status.message and run.status.code == "CheckNotPassed"
    assert not dts.server.calls("StartMigrateJob")


async def test_failed_migration_reports_error_info(dts):
    settings = {**JOB, "job": {**JOB["job"], "databases": [{"name": "sandbox-fail-migration"}]}}
    run = await dts.driver.run(instance(settings), PROVIDER.steps(instance(settings)))
    assert run.state == "failed" and run.step == "wait-migration"
    assert "source database went offline" in run.status.message


async def test_emulator_refuses_start_before_a_passed_check(dts):
    run = await dts.driver.run(instance(JOB), PROVIDER.steps(instance(JOB))[:1])
    with pytest.raises(PermanentError) as failure:
        await dts.driver.send(Call("StartMigrateJob", {"JobId": run.outputs["job_id"]}, mutating=True))
    assert failure.value.code == "FailedOperation.StatusInConflict" and failure.value.request_id


async def test_many_jobs_are_polled_with_list_calls(dts):
    items = []
    for n in range(120):
        inst = instance(JOB, id=f"db{n}", token=f"t{n}")
        run = await dts.driver.run(inst, PROVIDER.steps(inst), stop_before="wait-check")
        items.append(run.item())
    wait = wait_step(PROVIDER.steps(instance(JOB)), "wait-check")
    assert wait.poller.max_batch == 100
    before = len(dts.server.calls("DescribeMigrateJobs"))
    statuses = await dts.driver.poll(wait, items[:100])
    assert {s.state for s in statuses} == {"running"}
    assert len(dts.server.calls("DescribeMigrateJobs")) - before == 2  # two pages of 100 cover them
    dts.sandbox.advance(120)
    statuses = await dts.driver.poll(wait, items[100:])
    assert {s.state for s in statuses} == {"succeeded"}
