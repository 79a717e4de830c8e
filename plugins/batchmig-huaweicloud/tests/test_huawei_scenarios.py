"""The provider's steps for all three scenarios, driven against the emulator."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from batchmig.errors import PermanentError
from batchmig.plugin import CallStep, Instance, WaitItem, WaitStep
from batchmig.testing import EmulatorHost, StepDriver, make_instance

from batchmig_huaweicloud import api, polling
from batchmig_huaweicloud.demo import DEMO_CREDENTIALS
from batchmig_huaweicloud.provider import DrsProvider
from batchmig_huaweicloud.settings import DrsOptions

PROVIDER = DrsProvider()

TARGET = "0a3182607bc549bcb46cc9a8755761a6in04"
OBS_FULL: dict[str, Any] = {
    "target_instance_id": TARGET,
    "bucket_name": "my-bak-bucket",
    "files": [{"name": "db01_full.bak", "obs_path": "full/"}],
    "tags": [{"key": "wave", "value": "1"}],
}
OBS_CHAIN: dict[str, Any] = {
    **OBS_FULL,
    "incrementals": [
        {"files": [{"name": "db01_log1.bak", "obs_path": "logs/"}]},
        {"files": [{"name": "db01_log2.bak", "obs_path": "logs/"}]},
    ],
}
RDS_FULL: dict[str, Any] = {
    "target_instance_id": TARGET,
    "file_source": "RDS",
    "file_id": "0d87037d934848999fdc10bbabb08e6fbr04",
    "files": [{"rds_version": "2019_EE", "rds_source_instance_id": "7fb189b57339473a929d41dabb3878a2in04"}],
}


def instance(settings: dict[str, Any], *, id: str = "db01", token: str = "a1b2c3d4") -> Instance:
    return make_instance(DrsProvider(), "huawei-drs", settings, id=id, token=token)


def created_bodies(client: StepDriver, sandbox: EmulatorHost) -> list[dict[str, Any]]:
    jobs = sorted(sandbox.context.store.values("job"), key=lambda job: job["created_wall"])
    return [
        {"name": j["base_info"]["name"], **j["options"], "source": j["backup_info"]["file_source"]}
        for j in jobs
    ]


@pytest.mark.anyio
async def test_obs_full(client: StepDriver, sandbox: EmulatorHost) -> None:
    run = await client.run(instance(OBS_FULL))
    outputs = run.outputs
    assert outputs["job_status"] == "SUCCESS" and outputs["full_job_id"]
    assert "job_name" not in outputs  # the plan's name is the plan's: not copied into the journal
    (job,) = created_bodies(client, sandbox)
    assert (job["recovery_mode"], job["is_last_backup"], job["source"]) == ("full", True, "OBS")
    assert sandbox.resources(api.CREATE) == ["bm-db01-a1b2c3d4-full"]
    assert client.calls.count(api.SHOW) == 0  # waits used the list call


@pytest.mark.anyio
async def test_obs_full_and_incremental_chain_with_manual_cutover(client: StepDriver, sandbox: EmulatorHost) -> None:
    chain = instance(OBS_CHAIN)
    steps = PROVIDER.steps(chain)
    assert [s.name for s in steps] == [
        "create-full",
        "wait-full",
        "create-incr-1",
        "wait-incr-1",
        "create-incr-2",
        "wait-incr-2",
    ]
    assert [s.cutover for s in steps if isinstance(s, CallStep)] == [False, False, True]

    paused = await client.run(chain, approve_cutover=False)
    assert paused.state == "awaiting_cutover" and paused.step == "create-incr-2"
    jobs = created_bodies(client, sandbox)
    assert [(j["recovery_mode"], j["is_last_backup"]) for j in jobs] == [("full", False), ("incre", False)]
    # Database RESTORING, not yet online: the operator approves the cutover later.
    outputs = (await client.run(chain, resume=paused)).outputs
    jobs = created_bodies(client, sandbox)
    assert [(j["recovery_mode"], j["is_last_backup"]) for j in jobs][-1] == ("incre", True)
    assert {outputs["full_job_id"], outputs["incr-1_job_id"], outputs["incr-2_job_id"]} == {
        j["id"] for j in sandbox.context.store.values("job")
    }
    assert sandbox.resources(api.CREATE) == [f"bm-db01-a1b2c3d4-{label}" for label in ("full", "incr-1", "incr-2")]


@pytest.mark.anyio
async def test_chain_left_restoring_has_no_cutover(client: StepDriver, sandbox: EmulatorHost) -> None:
    left = instance({**OBS_CHAIN, "is_last_backup": False})
    assert not any(s.cutover for s in PROVIDER.steps(left) if isinstance(s, CallStep))
    await client.run(left)
    assert [j["is_last_backup"] for j in created_bodies(client, sandbox)] == [False, False, False]


@pytest.mark.anyio
async def test_rds_full_backup(client: StepDriver, sandbox: EmulatorHost) -> None:
    outputs = (await client.run(instance(RDS_FULL))).outputs
    assert outputs["job_status"] == "SUCCESS"
    (job,) = sandbox.context.store.values("job")
    assert job["target_db_info"]["file_id"] == RDS_FULL["file_id"]
    assert job["backup_info"]["files"][0]["rds_version"] == "2019_EE"
    assert "bucket_name" not in job["backup_info"]


@pytest.mark.anyio
async def test_failure_reports_error_log(client: StepDriver) -> None:
    settings = {**OBS_FULL, "files": [{"name": "db01-precheck-fail.bak"}]}
    run = await client.run(instance(settings))
    assert run.state == "failed" and run.status is not None
    assert re.search(re.escape("PRECHECK FAILED: The backup file db01-precheck-fail.bak"), run.status.message)


@pytest.mark.anyio
async def test_lost_create_answer_is_reconciled_not_repeated(client: StepDriver, sandbox: EmulatorHost) -> None:
    sandbox.inject("drop", action=api.CREATE)
    outputs = (await client.run(instance(OBS_FULL))).outputs
    assert outputs["job_status"] == "SUCCESS"
    assert sandbox.resources(api.CREATE) == ["bm-db01-a1b2c3d4-full"]  # created once, though the client never heard
    assert client.calls.count(api.CREATE) == 1
    (job,) = sandbox.context.store.values("job")
    assert outputs["full_job_id"] == job["id"]


@pytest.mark.anyio
async def test_reconcile_says_none_when_nothing_was_created(client: StepDriver, sandbox: EmulatorHost) -> None:
    step = PROVIDER.steps(instance(OBS_FULL))[0]
    assert isinstance(step, CallStep)
    assert await client.reconcile(step, {}) is None
    assert sandbox.resources(api.CREATE) == []


@pytest.mark.anyio
async def test_reconcile_refuses_someone_elses_job_with_our_name(client: StepDriver) -> None:
    mine = instance({**OBS_FULL, "task_name": "shared-name"})
    theirs = instance(
        {**OBS_FULL, "task_name": "shared-name", "target_instance_id": "other-in04"}, id="x"
    )
    await client.run(theirs)
    step = PROVIDER.steps(mine)[0]
    assert isinstance(step, CallStep)
    with pytest.raises(PermanentError, match="restores into other-in04"):
        await client.reconcile(step, {})


@pytest.mark.anyio
async def test_many_jobs_polled_with_few_list_calls(
    client: StepDriver, sandbox: EmulatorHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(polling, "PAGE_SIZE", 10)
    # The emulator's clock moves only when the test says (FakeSandboxContext), so no restore (140 cloud
    # seconds) ends while the 35 are created and polled, however slow the machine.
    instances = [
        instance({**OBS_FULL, "target_instance_id": f"t{i:03d}in04"}, id=f"db{i:03d}", token=f"{i:08x}")
        for i in range(35)
    ]
    batch = []
    for one in instances:
        run = await client.run(one, stop_before="wait-full")
        batch.append(run.item("wait-full"))
    wait = PROVIDER.steps(instances[0])[1]
    assert isinstance(wait, WaitStep) and wait.poller.action == api.LIST
    before = len(client.calls)
    statuses = await client.poll(wait, batch[:10])
    assert [s.state for s in statuses] == ["running"] * 10
    # Their names share "bm-db00": the name filter puts all ten on one page.
    assert client.calls[before:] == [api.LIST]
    # Spread over the whole history (newest first): the poll pages down to the oldest.
    sandbox.context.advance(1.0)  # well past every restore, at time scale 1000
    before = len(client.calls)
    statuses = await client.poll(wait, [batch[0], batch[15], batch[30]])
    assert [s.state for s in statuses] == ["succeeded"] * 3
    assert client.calls[before:] == [api.LIST] * 4


@pytest.mark.anyio
async def test_unseen_jobs_fall_back_to_show(
    client: StepDriver, sandbox: EmulatorHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(polling, "PAGE_SIZE", 2)
    monkeypatch.setattr(polling, "MAX_PAGES", 1)
    items = []
    for i in range(4):
        one = instance({**OBS_FULL, "target_instance_id": f"t{i}"}, id=f"db{i}", token=f"{i:08x}")
        items.append((await client.run(one, stop_before="wait-full")).item("wait-full"))
    items.append(WaitItem(items[0].instance, {"full_job_id": "gone-jb000"}, {"label": "full", "job_name": "bm-gone"}))
    before = len(client.calls)
    statuses = await polling.poll_jobs(client, items)
    assert client.calls[before:].count(api.SHOW) == 3  # two oldest jobs and the missing one
    assert [s.state for s in statuses] == ["running"] * 4 + ["failed"]
    assert "no longer exists" in statuses[-1].message


@pytest.mark.anyio
async def test_token_auth_and_project_lookup_against_the_sandbox(
    sandbox: EmulatorHost, make_client: Callable[..., StepDriver]
) -> None:
    options = DrsOptions(auth="token", iam_user="sandbox-user", iam_domain="sandbox-domain")
    token_client = make_client(credentials={"iam_password": "sandbox-password"}, options=options)
    assert (await token_client.run(instance(OBS_FULL))).outputs["job_status"] == "SUCCESS"
    aksk_only = make_client(
        credentials={"ak": DEMO_CREDENTIALS["ak"], "sk": DEMO_CREDENTIALS["sk"]}, region="ap-southeast-1"
    )
    outputs = (await aksk_only.run(instance(OBS_FULL, id="db02"))).outputs
    assert outputs["job_status"] == "SUCCESS"
    assert len(sandbox.calls("KeystoneListProjects")) == len(sandbox.calls("KeystoneCreateUserTokenByPassword")) == 1


def test_dry_run_calls_are_pure_and_only_creates_mutate() -> None:
    chain = instance(OBS_CHAIN)
    steps = PROVIDER.steps(chain)
    calls = [s.build({}) for s in steps if isinstance(s, CallStep)]
    assert all(c.action == api.CREATE and c.mutating for c in calls)
    assert [c.resource for c in calls] == [f"bm-db01-a1b2c3d4-{x}" for x in ("full", "incr-1", "incr-2")]
    body = calls[0].params["body"]
    assert body["backup_info"] == {
        "file_source": "OBS",
        "bucket_name": "my-bak-bucket",
        "files": [{"name": "db01_full.bak", "obs_path": "full/"}],
    }
    assert body["base_info"]["tags"] == [{"key": "wave", "value": "1"}]
    wait = steps[1]
    assert isinstance(wait, WaitStep) and wait.poller.example is not None
    assert wait.poller.example(WaitItem(chain, {}, wait.context)).action == api.LIST
