"""DescribeMigrateJobs on an emulator holding many jobs answers as rendering and sorting
every job would: the unfiltered list by CreateTime (the poller's) is served from a kept
order of the region's jobs, and must agree with the general path and with the plain
definition (all views, sorted by the field and JobId, then sliced) for every page,
direction and lagging list, while jobs are created, deleted and renamed."""

from __future__ import annotations

import random
from typing import Any

from batchmig.emulator import RequestInfo
from batchmig.testing import FakeSandboxContext

from batchmig_tencentcloud.emulator import DtsEmulator
from batchmig_tencentcloud.emulator.base import cloud_time

REGION = "ap-guangzhou"
JOB = {
    "MigrateOption": {"RunMode": 1, "MigrateType": 2}, "SrcDatabaseType": "sqlserver",
    "SrcAccessType": "extranet", "SrcInfo": {"Ip": "203.0.113.1", "Port": 1433, "Region": REGION},
    "DstDatabaseType": "sqlserver", "DstAccessType": "cdb",
    "DstInfo": {"Region": REGION, "InstanceId": "mssql-abcd1234"},
}  # fmt: skip


def info(action: str, lag: float = 0.0, region: str = REGION) -> RequestInfo:
    return RequestInfo(action=action, credential="AKID", region=region, mutating=False, list_lag=lag)


def by_definition(dts: DtsEmulator, params: dict[str, Any], lag: float) -> dict[str, Any]:
    """What the list answers by definition: every listed job rendered, sorted, sliced."""
    now = dts.ctx.now()
    jobs = [job for job in dts.ctx.store.values("job")
            if job["Region"] == REGION and info("", lag).listed(job["created_at"], now)]
    views = [dts._view(job, "") for job in jobs]
    order = params.get("Order", "CreateTime")
    views.sort(key=lambda view: (view[order], view["JobId"]), reverse=params.get("OrderSeq", "DESC") == "DESC")
    offset, limit = params.get("Offset", 0), params.get("Limit", 20)
    return {"TotalCount": len(views), "JobList": views[offset : offset + limit]}


def test_every_page_of_a_big_region_is_the_defined_answer() -> None:
    rng = random.Random(5)
    sandbox = FakeSandboxContext(time_scale=100)
    dts = DtsEmulator(sandbox)
    created: list[str] = []
    for round_ in range(40):
        for _ in range(rng.randrange(0, 12)):  # several jobs per cloud second: ties broken by JobId
            answer = dts.create_migrate_job({**JOB, "JobName": f"job-{rng.randrange(1000)}"}, info("Create"))
            created.append(answer.payload["JobId"])
            sandbox.advance(rng.choice([0.0, 0.001, 0.3, 0.7]))
        if created and rng.random() < 0.3:  # a job leaves (deleted while still deletable)
            gone = created.pop(rng.randrange(len(created)))
            dts.delete_migrate_job({"JobId": gone}, info("Delete"))
        if created and rng.random() < 0.3:
            dts.modify_migrate_job({"JobId": rng.choice(created), "JobName": "renamed"}, info("Modify"))
        if round_ == 20:  # another region's jobs never show
            dts.create_migrate_job({**JOB, "JobName": "elsewhere"}, info("Create", region="ap-shanghai"))
        for _ in range(6):
            params: dict[str, Any] = {"Offset": rng.randrange(0, len(created) + 3), "Limit": rng.choice([1, 7, 100])}
            if rng.random() < 0.5:
                params["OrderSeq"] = rng.choice(["ASC", "DESC"])
            if rng.random() < 0.3:
                params["Order"] = "CreateTime"
            lag = rng.choice([0.0, 0.0, 0.5, 1.5, 4.0, float("inf")])
            fast = dts.describe_migrate_jobs(dict(params), info("Describe", lag)).payload
            general = dts.describe_migrate_jobs({**params, "JobName": ""}, info("Describe", lag)).payload
            assert fast == general == by_definition(dts, params, lag), (round_, params, lag)


def test_other_orders_and_filters_are_the_defined_answer() -> None:
    sandbox = FakeSandboxContext(time_scale=100)
    dts = DtsEmulator(sandbox)
    ids = []
    for n in range(30):
        ids.append(dts.create_migrate_job({**JOB, "JobName": f"j{n % 7}"}, info("Create")).payload["JobId"])
        if n % 3 == 0:
            dts.create_migrate_check_job({"JobId": ids[-1]}, info("Check"))
        sandbox.advance(0.4)
    for order in ("JobId", "JobName", "Status", "CreateTime"):
        for seq in ("ASC", "DESC"):
            params = {"Order": order, "OrderSeq": seq, "Offset": 3, "Limit": 10}
            assert dts.describe_migrate_jobs(dict(params), info("Describe")).payload == by_definition(dts, params, 0)
    one = dts.describe_migrate_jobs({"JobId": ids[4]}, info("Describe")).payload
    assert [job["JobId"] for job in one["JobList"]] == [ids[4]] and one["TotalCount"] == 1
    assert dts.describe_migrate_jobs({"JobId": "dts-missing0"}, info("Describe")).payload["TotalCount"] == 0
    named = dts.describe_migrate_jobs({"JobName": "j3", "Limit": 100}, info("Describe")).payload
    assert sorted(job["JobId"] for job in named["JobList"]) == sorted(ids[3::7])


def test_the_kept_order_is_rebuilt_from_the_state_a_restarted_sandbox_finds() -> None:
    sandbox = FakeSandboxContext()
    first = DtsEmulator(sandbox)
    for n in range(5):
        first.create_migrate_job({**JOB, "JobName": f"j{n}"}, info("Create"))
        sandbox.advance(1.0)
    first.describe_migrate_jobs({}, info("Describe"))  # the first emulator has built its order
    again = DtsEmulator(sandbox)  # the same state, as a sandbox serving it again finds it
    again.create_migrate_job({**JOB, "JobName": "after"}, info("Create"))
    answer = again.describe_migrate_jobs({"Limit": 100}, info("Describe")).payload
    assert [job["JobName"] for job in answer["JobList"]] == ["after", "j4", "j3", "j2", "j1", "j0"]
    assert answer["JobList"][0]["CreateTime"] == cloud_time(sandbox.now())
