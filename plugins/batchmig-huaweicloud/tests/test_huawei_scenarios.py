"""The provider's steps for all three scenarios, driven against the emulator."""

from __future__ import annotations

import re
from typing import Any

import aiohttp
import pytest
from batchmig.errors import PermanentError
from batchmig.plugin import CallStep, WaitStep
from huawei_kit import Client, InstanceFailedError, Sandbox, make_client, make_instance, run_instance

from batchmig_huaweicloud import api, polling
from batchmig_huaweicloud.demo import DEMO_CREDENTIALS
from batchmig_huaweicloud.provider import DrsProvider
from batchmig_huaweicloud.settings import DrsOptions

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


def created_bodies(client: Client, sandbox: Sandbox) -> list[dict[str, Any]]:
    jobs = sorted(sandbox.ctx.store.values("job"), key=lambda job: job["created_wall"])
    return [
        {"name": j["base_info"]["name"], **j["options"], "source": j["backup_info"]["file_source"]}
        for j in jobs
    ]


@pytest.mark.anyio
async def test_obs_full(client: Client, sandbox: Sandbox) -> None:
    instance = make_instance(OBS_FULL)
    outputs = await run_instance(client, instance)
    assert outputs["job_status"] == "SUCCESS" and outputs["full_job_id"] == outputs["job_id"]
    assert outputs["job_name"] == "bm-db01-a1b2c3d4-full"
    (job,) = created_bodies(client, sandbox)
    assert (job["recovery_mode"], job["is_last_backup"], job["source"]) == ("full", True, "OBS")
    assert sandbox.created() == ["bm-db01-a1b2c3d4-full"]
    assert client.calls.count(api.SHOW) == 0  # waits used the list call


@pytest.mark.anyio
async def test_obs_full_and_incremental_chain_with_manual_cutover(client: Client, sandbox: Sandbox) -> None:
    instance = make_instance(OBS_CHAIN)
    steps = client.provider.steps(instance)
    assert [s.name for s in steps] == [
        "create-full",
        "wait-full",
        "create-incr-1",
        "wait-incr-1",
        "create-incr-2",
        "wait-incr-2",
    ]
    assert [s.cutover for s in steps if isinstance(s, CallStep)] == [False, False, True]

    paused = await run_instance(client, instance, approve_cutover=False)
    assert paused["stopped_at"] == "create-incr-2"
    jobs = created_bodies(client, sandbox)
    assert [(j["recovery_mode"], j["is_last_backup"]) for j in jobs] == [("full", False), ("incre", False)]
    # Database RESTORING, not yet online: the operator approves the cutover later.
    outputs = await run_instance(client, instance, resume=paused)
    jobs = created_bodies(client, sandbox)
    assert [(j["recovery_mode"], j["is_last_backup"]) for j in jobs][-1] == ("incre", True)
    assert {outputs["full_job_id"], outputs["incr-1_job_id"], outputs["incr-2_job_id"]} == {
        j["id"] for j in sandbox.ctx.store.values("job")
    }
    assert sandbox.created() == [f"bm-db01-a1b2c3d4-{label}" for label in ("full", "incr-1", "incr-2")]


@pytest.mark.anyio
async def test_chain_left_restoring_has_no_cutover(client: Client, sandbox: Sandbox) -> None:
    instance = make_instance({**OBS_CHAIN, "is_last_backup": False})
    assert not any(s.cutover for s in client.provider.steps(instance) if isinstance(s, CallStep))
    await run_instance(client, instance)
    assert [j["is_last_backup"] for j in created_bodies(client, sandbox)] == [False, False, False]


@pytest.mark.anyio
async def test_rds_full_backup(client: Client, sandbox: Sandbox) -> None:
    outputs = await run_instance(client, make_instance(RDS_FULL))
    assert outputs["job_status"] == "SUCCESS"
    (job,) = sandbox.ctx.store.values("job")
    assert job["target_db_info"]["file_id"] == RDS_FULL["file_id"]
    assert job["backup_info"]["files"][0]["rds_version"] == "2019_EE"
    assert "bucket_name" not in job["backup_info"]


@pytest.mark.anyio
async def test_failure_reports_error_log(client: Client) -> None:
    settings = {**OBS_FULL, "files": [{"name": "db01-precheck-fail.bak"}]}
    with pytest.raises(
        InstanceFailedError, match=re.escape("PRECHECK FAILED: The backup file db01-precheck-fail.bak")
    ):
        await run_instance(client, make_instance(settings))


@pytest.mark.anyio
async def test_lost_create_answer_is_reconciled_not_repeated(client: Client, sandbox: Sandbox) -> None:
    sandbox.faults.append((api.CREATE, "drop_after"))
    outputs = await run_instance(client, make_instance(OBS_FULL))
    assert outputs["job_status"] == "SUCCESS"
    assert sandbox.created() == ["bm-db01-a1b2c3d4-full"]  # created once, though the client never heard
    assert client.calls.count(api.CREATE) == 1
    (job,) = sandbox.ctx.store.values("job")
    assert outputs["job_id"] == job["id"]


@pytest.mark.anyio
async def test_reconcile_says_none_when_nothing_was_created(client: Client, sandbox: Sandbox) -> None:
    step = client.provider.steps(make_instance(OBS_FULL))[0]
    assert isinstance(step, CallStep) and step.reconcile is not None
    assert await step.reconcile(client, {}) is None
    assert sandbox.created() == []


@pytest.mark.anyio
async def test_reconcile_refuses_someone_elses_job_with_our_name(client: Client) -> None:
    mine = make_instance({**OBS_FULL, "task_name": "shared-name"})
    theirs = make_instance(
        {**OBS_FULL, "task_name": "shared-name", "target_instance_id": "other-in04"}, id="x"
    )
    await run_instance(client, theirs)
    step = client.provider.steps(mine)[0]
    assert isinstance(step, CallStep) and step.reconcile is not None
    with pytest.raises(PermanentError, match="restores into other-in04"):
        await step.reconcile(client, {})


@pytest.mark.anyio
async def test_many_jobs_polled_with_few_list_calls(
    client: Client, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(polling, "PAGE_SIZE", 10)
    # Real time: a restore lasts 140 s, so none ends while the 35 are created and polled, however slow
    # the machine (at the fixture's time scale of 1000 they lasted 0.14 s and some finished first).
    sandbox.ctx.time_scale = 1.0
    instances = [
        make_instance({**OBS_FULL, "target_instance_id": f"t{i:03d}in04"}, id=f"db{i:03d}", token=f"{i:08x}")
        for i in range(35)
    ]
    batch = []
    for instance in instances:
        create = client.provider.steps(instance)[0]
        assert isinstance(create, CallStep)
        batch.append(dict(create.read(await client.send(create.build({})))))
    wait = client.provider.steps(instances[0])[1]
    assert isinstance(wait, WaitStep) and wait.poller.action == api.LIST
    before = len(client.calls)
    statuses = await wait.poller.poll(client, batch[:10])
    assert [s.state for s in statuses] == ["running"] * 10
    # Their names share "bm-db00": the name filter puts all ten on one page.
    assert client.calls[before:] == [api.LIST]
    # Spread over the whole history (newest first): the poll pages down to the oldest.
    sandbox.ctx.offset = 600.0  # ten minutes on: past every restore, within the gateway's signing skew
    before = len(client.calls)
    statuses = await wait.poller.poll(client, [batch[0], batch[15], batch[30]])
    assert [s.state for s in statuses] == ["succeeded"] * 3
    assert client.calls[before:] == [api.LIST] * 4


@pytest.mark.anyio
async def test_unseen_jobs_fall_back_to_show(
    client: Client, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(polling, "PAGE_SIZE", 2)
    monkeypatch.setattr(polling, "MAX_PAGES", 1)
    outputs = []
    for i in range(4):
        instance = make_instance({**OBS_FULL, "target_instance_id": f"t{i}"}, id=f"db{i}", token=f"{i:08x}")
        create = client.provider.steps(instance)[0]
        assert isinstance(create, CallStep)
        outputs.append(dict(create.read(await client.send(create.build({})))))
    outputs.append({"job_id": "gone-jb000", "job_name": "bm-gone"})
    before = len(client.calls)
    statuses = await polling.poll_jobs(client, outputs)
    assert client.calls[before:].count(api.SHOW) == 3  # two oldest jobs and the missing one
    assert [s.state for s in statuses] == ["running"] * 4 + ["failed"]
    assert "no longer exists" in statuses[-1].message


@pytest.mark.anyio
async def test_token_auth_and_project_lookup_against_the_sandbox(
    sandbox: Sandbox, http: aiohttp.ClientSession
) -> None:
    options = DrsOptions(auth="token", iam_user="sandbox-user", iam_domain="sandbox-domain")
    token_client = make_client(
        sandbox.url, http, credentials={"iam_password": "sandbox-password"}, options=options
    )
    assert (await run_instance(token_client, make_instance(OBS_FULL)))["job_status"] == "SUCCESS"
    aksk_only = make_client(
        sandbox.url,
        http,
        credentials={"ak": DEMO_CREDENTIALS["ak"], "sk": DEMO_CREDENTIALS["sk"]},
        region="ap-southeast-1",
    )
    outputs = await run_instance(aksk_only, make_instance(OBS_FULL, id="db02"))
    assert outputs["job_status"] == "SUCCESS"
    assert (
        sandbox.count("KeystoneListProjects") == 1 and sandbox.count("KeystoneCreateUserTokenByPassword") == 1
    )


def test_dry_run_calls_are_pure_and_only_creates_mutate() -> None:
    steps = DrsProvider().steps(make_instance(OBS_CHAIN))
    calls = [s.build({"job_id": "<job_id>"}) for s in steps if isinstance(s, CallStep)]
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
    assert wait.poller.example({"job_name": "<name>"}).action == api.LIST
