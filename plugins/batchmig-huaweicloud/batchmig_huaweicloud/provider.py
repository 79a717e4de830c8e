"""The ``huawei-drs`` provider: DRS v5 backup migration into RDS for SQL Server.

An instance becomes, per backup migration job (see ``jobs``), a create step and a wait
step. Creating the job starts it (there is no start call); the wait watches it with
the shared list-based poller until SUCCESS, FAILED or PRECHECK FAILED. The create is
not idempotent and takes no client token, so each job gets a deterministic name and
a lost answer is reconciled by looking that name up before anything is re-sent.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from batchmig.errors import PermanentError, ProviderError
from batchmig.plugin import (
    Answer,
    Call,
    Caller,
    CallStep,
    Connection,
    HttpFetch,
    Instance,
    Outputs,
    Provider,
    ProviderConfig,
    Step,
    WaitStep,
)
from pydantic import BaseModel

from batchmig_huaweicloud import api
from batchmig_huaweicloud.checks import settings_problems
from batchmig_huaweicloud.connection import DrsConnection
from batchmig_huaweicloud.jobs import JobPlan, create_body, job_plans
from batchmig_huaweicloud.polling import JOB_POLLER, find_job_by_name, show_call
from batchmig_huaweicloud.settings import DrsOptions, DrsSettings
from batchmig_huaweicloud.status import normalise_recovery_mode

__all__ = ["RATE_LIMITS", "DrsProvider"]

JOB_NAME_MAX = 50

RATE_LIMITS: Mapping[str, float] = {
    # DRS publishes no per-API limits (see the README). Reads use batchmig's default
    # per-API cap of 20/s; writes get half of it, since gateways commonly hold
    # writes to lower limits than reads and a create starts a restore on the target.
    api.CREATE: 10.0,
    api.UPDATE: 10.0,
    api.DELETE: 10.0,
    api.SHOW: 20.0,
    api.LIST: 20.0,
}


def _job_outputs(job: JobPlan, job_id: str) -> dict[str, Any]:
    # One key per job, so every job of a chain is in the report; the wait step
    # finds its own by its label (WaitStep.context).
    return {f"{job.label}_job_id": job_id}


class DrsProvider(Provider):
    settings_model = DrsSettings
    options_model = DrsOptions
    actions = frozenset({api.CREATE, api.LIST, api.SHOW})
    default_rate_limits = RATE_LIMITS
    # Typical precheck plus restore of a database of a few GB (the dry run's estimate).
    step_estimates = {"wait-full": 140.0, "wait-incr-*": 65.0}
    credential_env = {
        "ak": "HUAWEICLOUD_SDK_AK",
        "sk": "HUAWEICLOUD_SDK_SK",
        "project_id": "HUAWEICLOUD_SDK_PROJECT_ID",
        "security_token": "HUAWEICLOUD_SDK_SECURITY_TOKEN",
        "iam_password": "HUAWEICLOUD_IAM_PASSWORD",
    }
    required_credentials = ("ak", "sk")

    def required_credential_fields(self, options: BaseModel | None) -> Sequence[str]:
        """AK/SK signing needs the key pair; token auth needs the IAM password."""
        if isinstance(options, DrsOptions) and options.auth == "token":
            return ("iam_password",)
        return self.required_credentials

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock

    def connect(self, config: ProviderConfig, fetch: HttpFetch) -> Connection:
        options = config.options if isinstance(config.options, DrsOptions) else DrsOptions()
        endpoint = config.endpoint or api.drs_endpoint(config.region)
        iam_url = options.iam_endpoint or config.endpoint or api.iam_endpoint(config.region)
        return DrsConnection(
            region=config.region,
            account=config.account,
            endpoint=endpoint,
            iam_url=iam_url,
            options=options,
            credentials=config.credentials,
            fetch=fetch,
            clock=self._clock,
        )

    def jobs(self, instance: Instance) -> list[JobPlan]:
        """The backup migration jobs of ``instance``, in order."""
        return job_plans(
            instance.settings, lambda label: instance.resource_name(label, max_length=JOB_NAME_MAX)
        )

    def steps(self, instance: Instance) -> Sequence[Step]:
        settings: DrsSettings = instance.settings
        steps: list[Step] = []
        for job in self.jobs(instance):
            steps.append(
                CallStep(
                    name=job.create_step,
                    build=_builder(settings, job),
                    read=_reader(job),
                    reconcile=_reconciler(settings, job),
                    cutover=job.cutover,
                )
            )
            steps.append(WaitStep(job.wait_step, JOB_POLLER, {"label": job.label, "job_name": job.name}))
        return steps

    def check(self, instance: Instance) -> Sequence[tuple[str, str]]:
        return settings_problems(instance.settings, self.jobs(instance))

    async def preflight(self, caller: Caller, instance: Instance) -> Sequence[str]:
        problems: list[str] = []
        for job in self.jobs(instance):
            try:
                existing = await find_job_by_name(caller, job.name, relists=0, max_pages=2)
            except ProviderError as exc:
                return [f"cannot list DRS backup migration jobs: {exc}"]
            if existing is not None:
                problems.append(
                    f"a DRS task named {job.name!r} already exists ({existing.get('id')}, "
                    f"{existing.get('status')}); batchmig would adopt it instead of creating one"
                )
        return problems


def _builder(settings: DrsSettings, job: JobPlan) -> Callable[[Outputs], Call]:
    body = create_body(settings, job)
    return lambda outputs: Call(api.CREATE, {"body": body}, mutating=True, resource=job.name)


def _reader(job: JobPlan) -> Callable[[Answer], Outputs]:
    return lambda answer: _job_outputs(job, str(answer.payload["job_id"]))


def _reconciler(
    settings: DrsSettings, job: JobPlan
) -> Callable[[Caller, Outputs], Awaitable[Outputs | None]]:
    async def reconcile(caller: Caller, outputs: Outputs) -> Outputs | None:
        found = await find_job_by_name(caller, job.name)
        if found is None:
            return None
        detail = await caller.read(show_call(str(found["id"])))
        mismatch = _mismatch(settings, job, detail.payload)
        if mismatch:
            # Someone else's job has our name: adopting it would report their restore.
            raise PermanentError(
                "batchmig.NameTaken",
                f"DRS task {job.name!r} ({found['id']}) exists but {mismatch}; rename it or set task_name",
                request_id=detail.request_id,
            )
        return _job_outputs(job, str(found["id"]))

    return reconcile


def _mismatch(settings: DrsSettings, job: JobPlan, detail: Mapping[str, Any]) -> str | None:
    target = (detail.get("target_db_info") or {}).get("target_instance_id")
    if target and target != settings.target_instance_id:
        return f"restores into {target}, not {settings.target_instance_id}"
    mode = (detail.get("options") or {}).get("recovery_mode")
    if mode not in (None, "") and normalise_recovery_mode(mode) != job.recovery_mode:
        return f"has recovery_mode {mode!r}, not {job.recovery_mode!r}"
    return None
