"""A DTS migration job's steps: (create) → check → start → (complete), with waits.

Job statuses (DescribeMigrateJobs): 1 creating, 3 checking, 4 check passed, 5 check
failed, 7 running, 8 ready to complete, 9 success, 10 failed, 11 stopping, 12
completing (older versions also emit 2 created and 6 waiting to run). StartMigrateJob
is only allowed at 4, so the start step always follows a waited-for check.

Every wait uses one poller, ``tencent-dts.jobs``, whose answer depends on the phase
the job's outputs record (``dts_phase``). One poller means the engine can batch every
waiting job of a connection into list calls of DescribeMigrateJobs (100 per page)
instead of one call per job.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from batchmig.plugin import (
    Call,
    Caller,
    CallStep,
    Instance,
    NotFoundError,
    OutcomeUnsureError,
    Outputs,
    Poller,
    Step,
    WaitStatus,
    WaitStep,
)

from batchmig_tencentcloud import secret_refs
from batchmig_tencentcloud.dts.settings import CONSISTENCY, MIGRATE_TYPES, DtsSettings, JobSpec, SourceSpec

__all__ = ["JOBS_POLLER", "create_params", "job_steps"]

STARTED = frozenset({6, 7, 8, 9, 10, 11, 12})
COMPLETED = frozenset({9, 12})
CHECKING = frozenset({3, 4, 5})
PAGE = 100


def job_steps(instance: Instance) -> list[Step]:
    settings: DtsSettings = instance.settings
    steps: list[Step] = []
    if settings.job is not None:
        name = settings.job.name or instance.resource_name("dts")
        steps.append(_create(create_params(settings.job, name, settings.migrate_type), name))

    def job_id(outputs: Outputs) -> str:
        return settings.job_id or str(outputs["job_id"])

    def phase_step(name: str, action: str, phase: str, done: frozenset[int], **extra: Any) -> CallStep:
        def build(outputs: Outputs) -> Call:
            return Call(action, {"JobId": job_id(outputs), **extra}, mutating=True, resource=job_id(outputs))

        # The answers carry nothing; the job id comes from the settings or create-job.
        remembered = {"dts_phase": phase} | ({"job_id": settings.job_id} if settings.job_id else {})

        async def reconcile(caller: Caller, outputs: Outputs) -> Outputs | None:
            job = await _job(caller, job_id(outputs))
            if job is None:  # it exists (it has an id): the list lags behind, so nothing is known yet
                raise OutcomeUnsureError("JobNotListed", f"the DTS job {job_id(outputs)} is not listed (yet)")
            return remembered if job.get("Status") in done else None

        return CallStep(name, build, lambda answer: remembered, reconcile, cutover=phase == "complete")

    steps += [
        phase_step("check-job", "CreateMigrateCheckJob", "check", CHECKING),
        WaitStep("wait-check", JOBS_POLLER),
        phase_step("start-job", "StartMigrateJob", "migrate", STARTED),
        WaitStep("wait-migration", JOBS_POLLER),
    ]
    if settings.migrate_type == "full-incremental":
        extra = {"CompleteMode": settings.complete_mode} if settings.complete_mode else {}
        steps += [
            phase_step("complete-job", "CompleteMigrateJob", "complete", COMPLETED, **extra),
            WaitStep("wait-complete", JOBS_POLLER),
        ]
    return steps


# ------------------------------------------------------------------- creation


def _create(params: Mapping[str, Any], name: str) -> CallStep:
    async def reconcile(caller: Caller, outputs: Outputs) -> Outputs | None:
        answer = await caller.read(Call("DescribeMigrateJobs", {"JobName": name, "Limit": PAGE}))
        for job in answer.get("JobList") or []:
            if job.get("JobName") == name:
                return {"job_id": job["JobId"]}
        return None

    return CallStep(
        "create-job",
        lambda outputs: Call("CreateMigrateJob", params, mutating=True, resource=f"job:{name}"),
        lambda answer: {"job_id": answer["JobId"]},
        reconcile,
    )


def _password(spec: Any) -> str | None:
    if spec.password_env:
        return secret_refs.env_ref(spec.password_env)
    if spec.password_credential:
        return secret_refs.credential_ref(spec.password_credential)
    return None


def _source_info(source: SourceSpec) -> dict[str, Any]:
    fields = {
        "Region": source.region, "Ip": source.ip, "Port": source.port, "User": source.user,
        "Password": _password(source), "InstanceId": source.instance_id,
        "CvmInstanceId": source.cvm_instance_id,
        "VpcId": source.vpc_id, "SubnetId": source.subnet_id, "UniqDcgId": source.uniq_dcg_id,
        "UniqVpnGwId": source.uniq_vpn_gw_id, "CcnId": source.ccn_id, "Supplier": source.supplier,
        "EngineVersion": source.engine_version,
    }  # fmt: skip
    return {key: value for key, value in fields.items() if value is not None}


# -------------------------------------------------------------------- polling


async def _job(caller: Caller, job_id: str) -> Mapping[str, Any] | None:
    answer = await caller.read(Call("DescribeMigrateJobs", {"JobId": job_id}))
    for job in answer.get("JobList") or []:
        if job.get("JobId") == job_id:
            found: Mapping[str, Any] = job
            return found
    return None


def _page(offset: int) -> Call:
    params = {"Offset": offset, "Limit": PAGE, "Order": "CreateTime", "OrderSeq": "DESC"}
    return Call("DescribeMigrateJobs", params)


async def _poll_jobs(caller: Caller, batch: Sequence[Outputs]) -> list[WaitStatus]:
    wanted = {str(outputs["job_id"]) for outputs in batch}
    jobs: dict[str, Mapping[str, Any]] = {}
    # Newest first: jobs being waited on are recent. A page costs one call, as does
    # one job looked up alone, so read at most one page per 10 jobs waited on.
    offset, pages = 0, 0
    while wanted - jobs.keys() and pages < math.ceil(len(wanted) / 10):
        answer = await caller.read(_page(offset))
        page = answer.get("JobList") or []
        jobs |= {job["JobId"]: job for job in page if job.get("JobId") in wanted}
        offset, pages = offset + len(page), pages + 1
        if not page or offset >= int(answer.get("TotalCount") or 0):
            break
    for job_id in sorted(wanted - jobs.keys()):
        job = await _job(caller, job_id)
        if job is not None:
            jobs[job_id] = job
    statuses = []
    for outputs in batch:
        job_id = str(outputs["job_id"])
        job = jobs.get(job_id)
        if job is None:  # lists lag behind creates: only a per-id read may say it is gone
            statuses.append(await _missing_from_list(caller, job_id))
            continue
        status = _status(job, outputs)
        if status is None:  # a failed check: its reason is only in DescribeMigrateCheckJob
            status = await _check_failure(caller, str(outputs["job_id"]))
        statuses.append(status)
    return statuses


async def _missing_from_list(caller: Caller, job_id: str) -> WaitStatus:
    """A job the list did not show: gone, or not listed yet (DescribeMigrateJobs is eventually
    consistent). DescribeMigrateCheckJob reads the job itself and tells the two apart."""
    try:
        await caller.read(Call("DescribeMigrateCheckJob", {"JobId": job_id}))
    except NotFoundError as exc:
        return WaitStatus.failed(f"the DTS job {job_id} no longer exists", exc.code, exc.request_id)
    return WaitStatus.running(f"the DTS job {job_id} exists but is not listed yet")


def _status(job: Mapping[str, Any], outputs: Outputs) -> WaitStatus | None:
    phase = outputs.get("dts_phase")
    status = job.get("Status")
    if status == 10:
        return WaitStatus.failed(_error_info(job) or f"the DTS job {job.get('JobId')} failed", "MigrationFailed")
    if phase == "check":
        if status == 5:
            return None
        return WaitStatus.succeeded() if status == 4 else _running(job)
    if phase == "migrate":
        return WaitStatus.succeeded({"dts_ready": status == 8}) if status in (8, 9) else _running(job)
    return WaitStatus.succeeded() if status == 9 else _running(job)


async def _check_failure(caller: Caller, job_id: str) -> WaitStatus:
    answer = await caller.read(Call("DescribeMigrateCheckJob", {"JobId": job_id}))
    message = answer.get("ErrorMessage") or "the migration check did not pass"
    return WaitStatus.failed(
        f"the check of {job_id} failed: {message}", "CheckNotPassed", answer.get("RequestId")
    )


def _error_info(job: Mapping[str, Any]) -> str:
    return "; ".join(
        str(item.get("ErrorLog", "")) for item in job.get("ErrorInfo") or [] if item.get("ErrorLog")
    )


def _running(job: Mapping[str, Any]) -> WaitStatus:
    detail = job.get("Detail") or {}
    progress = detail.get("Progress")
    return WaitStatus.running(f"status {job.get('Status')}" + (f", {progress}%" if progress else ""))


JOBS_POLLER = Poller(
    name="tencent-dts.jobs",
    action="DescribeMigrateJobs",
    poll=_poll_jobs,
    max_batch=PAGE,
    min_interval=15.0,
    example=lambda outputs: _page(0),
)


def create_params(spec: JobSpec, name: str, migrate_type: str) -> dict[str, Any]:
    """CreateMigrateJob's parameters; passwords are secret references, not values."""
    params: dict[str, Any] = {
        "JobName": name,
        "MigrateOption": {
            "RunMode": 1,
            "MigrateType": MIGRATE_TYPES[migrate_type],
            "MigrateObject": 2 if spec.migrate_object == "databases" else 1,
            "ConsistencyType": CONSISTENCY[spec.consistency_check],
            "IsOverrideRoot": 0,
        },
        "SrcDatabaseType": "sqlserver",
        "SrcAccessType": spec.source.access_type,
        "SrcInfo": _source_info(spec.source),
        "DstDatabaseType": "sqlserver",
        "DstAccessType": "cdb",
        "DstInfo": {
            key: value
            for key, value in {
                "Region": spec.target.region,
                "InstanceId": spec.target.instance_id,
                "User": spec.target.user,
                "Password": _password(spec.target),
            }.items()
            if value is not None
        },
    }
    if spec.databases:
        entries = []
        for database in spec.databases:
            entry: dict[str, Any] = {"Database": database.name}
            if database.schema_name:
                entry["Schema"] = database.schema_name
            if database.tables:
                entry["Table"] = list(database.tables)
            entries.append(entry)
        params["DatabaseInfo"] = json.dumps(entries)
    if spec.tags:
        params["Tags"] = [{"TagKey": key, "TagValue": value} for key, value in spec.tags.items()]
    return params
