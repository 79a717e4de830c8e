"""A DTS migration job's steps: (create) → check → start → (complete), with waits.

Job statuses (DescribeMigrateJobs): 1 creating, 3 checking, 4 check passed, 5 check
failed, 7 running, 8 ready to complete, 9 success, 10 failed, 11 stopping, 12
completing (older versions also emit 2 created and 6 waiting to run). StartMigrateJob
is only allowed at 4, so the start step always follows a waited-for check.

Every wait uses one poller, ``tencent-dts.jobs``, whose answer depends on the phase
its wait step names (``WaitStep.context["phase"]``). One poller means the engine can
batch every waiting job of a connection into list calls of DescribeMigrateJobs (100
per page, newest first) instead of one call per job.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from batchmig.plugin import (
    Call,
    Caller,
    CallStep,
    Instance,
    Listing,
    NotFoundError,
    OutcomeUnsureError,
    Outputs,
    Poller,
    Step,
    WaitItem,
    WaitStatus,
    WaitStep,
    find_created,
    poll_listed,
)

from batchmig_tencentcloud import secret_refs
from batchmig_tencentcloud.dts.settings import CONSISTENCY, MIGRATE_TYPES, DtsSettings, JobSpec, SourceSpec

__all__ = ["JOBS_POLLER", "create_params", "job_id", "job_steps"]

STARTED = frozenset({6, 7, 8, 9, 10, 11, 12})
COMPLETED = frozenset({9, 12})
PAGE = 100


def job_steps(instance: Instance) -> list[Step]:
    settings: DtsSettings = instance.settings
    steps: list[Step] = []
    if settings.job is not None:
        name = settings.job.name or instance.resource_name("dts")
        steps.append(_create(create_params(settings.job, name, settings.migrate_type), name))
    return steps + list(_phase_steps(settings.job_id, settings.migrate_type, settings.complete_mode))


@functools.lru_cache(maxsize=64)
def _phase_steps(planned_job: str | None, migrate_type: str, complete_mode: str | None) -> tuple[Step, ...]:
    """The steps after create-job. They depend on the instance only through the plan's
    ``job_id`` (else the job is the one create-job made): every instance whose job
    batchmig creates shares one set, built once rather than for each instance."""

    def phase_step(name: str, action: str, phase: str, done: frozenset[int], **extra: Any) -> CallStep:
        def build(outputs: Outputs) -> Call:
            job = _job_of(planned_job, outputs)
            return Call(action, {"JobId": job, **extra}, mutating=True, resource=job)

        async def reconcile(caller: Caller, outputs: Outputs) -> Outputs | None:
            job = _job_of(planned_job, outputs)
            if phase == "check":  # the check job's own read does not lag behind a new job, unlike the list
                answer = await caller.read(Call("DescribeMigrateCheckJob", {"JobId": job}))
                return {} if answer.payload.get("Status") not in (None, "unavailable") else None
            found = await _job(caller, job)
            if found is None:  # it exists (it has an id): the list lags behind, so nothing is known yet
                raise OutcomeUnsureError("JobNotListed", f"the DTS job {job} is not listed (yet)")
            return {} if found.get("Status") in done else None

        # The answers carry nothing; the job id comes from the settings or create-job.
        return CallStep(name, build, lambda answer: {}, reconcile, cutover=phase == "complete")

    steps: list[Step] = [
        phase_step("check-job", "CreateMigrateCheckJob", "check", frozenset()),
        WaitStep("wait-check", JOBS_POLLER, {"phase": "check"}),
        phase_step("start-job", "StartMigrateJob", "migrate", STARTED),
        WaitStep("wait-migration", JOBS_POLLER, {"phase": "migrate"}),
    ]
    if migrate_type == "full-incremental":
        extra = {"CompleteMode": complete_mode} if complete_mode else {}
        steps += [
            phase_step("complete-job", "CompleteMigrateJob", "complete", COMPLETED, **extra),
            WaitStep("wait-complete", JOBS_POLLER, {"phase": "complete"}),
        ]
    return tuple(steps)


def job_id(instance: Instance, outputs: Outputs) -> str:
    """The job an instance works on: the plan's ``job_id``, else the one create-job made."""
    settings: DtsSettings = instance.settings
    return _job_of(settings.job_id, outputs)


def _job_of(planned_job: str | None, outputs: Outputs) -> str:
    return planned_job or str(outputs["job_id"])


# ------------------------------------------------------------------- creation


def _create(params: Mapping[str, Any], name: str) -> CallStep:
    async def reconcile(caller: Caller, outputs: Outputs) -> Outputs | None:
        job = await find_created(caller, _jobs(JobName=name), lambda job: job.get("JobName") == name,
                                 what=f"the DTS job {name}")
        return None if job is None else {"job_id": job["JobId"]}

    return CallStep(
        "create-job",
        lambda outputs: Call("CreateMigrateJob", params, mutating=True, resource=f"job:{name}"),
        lambda answer: {"job_id": answer.payload["JobId"]},
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


def _jobs(**filters: Any) -> Listing:
    """DescribeMigrateJobs, newest first (optionally filtered by JobName or JobId)."""

    def page(offset: int) -> Call:
        params = {**filters, "Offset": offset, "Limit": PAGE, "Order": "CreateTime", "OrderSeq": "DESC"}
        return Call("DescribeMigrateJobs", params)

    return Listing(page, lambda answer: answer.payload["JobList"], PAGE)


def _job_key(job: Mapping[str, Any]) -> object:
    return job.get("JobId")


async def _job(caller: Caller, job: str) -> Mapping[str, Any] | None:
    seen = await poll_listed(caller, _jobs(JobId=job), [job], _job_key)
    return seen[job].record if job in seen else None


async def _poll_jobs(caller: Caller, batch: Sequence[WaitItem]) -> list[WaitStatus]:
    wanted = [job_id(item.instance, item.outputs) for item in batch]
    # Newest first: jobs being waited on are recent. A page costs one call, as does
    # one job looked up alone, so read at most one page per 10 jobs waited on.
    seen = await poll_listed(caller, _jobs(), wanted, _job_key,
                             describe=lambda job: _jobs(JobId=job).page(0),
                             max_pages=math.ceil(len(set(wanted)) / 10))
    statuses = []
    for item, job in zip(batch, wanted, strict=True):
        found = seen.get(job)
        if found is None or found.record is None:  # lists lag behind creates; the check job's read does not
            statuses.append(await _unlisted(caller, job))
            continue
        status = _status(found.record, job, item.context["phase"])
        if status is None:  # a failed check: its reason is only in DescribeMigrateCheckJob
            status = await _check_failure(caller, job)
        statuses.append(status)
    return statuses


async def _unlisted(caller: Caller, job_id: str) -> WaitStatus:
    """A job the lists do not show (yet): gone if its check job is gone too, else running."""
    try:
        await caller.read(Call("DescribeMigrateCheckJob", {"JobId": job_id}))
    except NotFoundError as error:
        return WaitStatus.failed(f"the DTS job {job_id} no longer exists", error.code, error.request_id)
    return WaitStatus.running(f"the DTS job {job_id} is not listed yet")


def _status(job: Mapping[str, Any], job_id: str, phase: str) -> WaitStatus | None:
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
    message = answer.payload.get("ErrorMessage") or "the migration check did not pass"
    return WaitStatus.failed(f"the check of {job_id} failed: {message}", "CheckNotPassed", answer.request_id)


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
    example=lambda item: _jobs().page(0),
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
