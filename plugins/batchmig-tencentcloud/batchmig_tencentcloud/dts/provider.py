"""The ``tencent-dts`` provider (DTS API 2018-03-30): migration jobs.

The steps live in ``jobs``; this module adds the connection, rate caps, cross-field
checks and the pre-flight for jobs given by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from batchmig.errors import ProviderError
from batchmig.plugin import (
    DEFAULT_RATE,
    Call,
    Caller,
    Connection,
    HttpFetch,
    Instance,
    Provider,
    ProviderConfig,
    Step,
)

from batchmig_tencentcloud.connection import ApiInfo, TencentConnection
from batchmig_tencentcloud.dts.answers import JOBS_ANSWER
from batchmig_tencentcloud.dts.jobs import job_steps
from batchmig_tencentcloud.dts.settings import MIGRATE_TYPES, DtsSettings, check_settings
from batchmig_tencentcloud.options import CREDENTIAL_ENV, REQUIRED_CREDENTIALS, TencentOptions

__all__ = ["DTS_API", "DtsProvider"]

DTS_API = ApiInfo(
    service="dts",
    version="2018-03-30",
    outputs={
        "CreateMigrateJob": ("JobId",),
        "DescribeMigrateJobs": ("JobList",),
        "DescribeMigrateCheckJob": ("Status", "CheckFlag"),
        "CreateMigrateCheckJob": (),
        "StartMigrateJob": (),
        "CompleteMigrateJob": (),
    },
    lean={"DescribeMigrateJobs": JOBS_ANSWER},
)

CHECKABLE = frozenset({1, 2, 4, 5, 10})
"""Job statuses from which a check (and then a start) can proceed."""


class DtsProvider(Provider):
    """SQL Server migration jobs of Tencent Cloud DTS."""

    settings_model = DtsSettings
    options_model = TencentOptions
    actions = frozenset(DTS_API.outputs)
    # Every DTS action is documented at 20 requests/second.
    default_rate_limits: ClassVar = {action: DEFAULT_RATE for action in DTS_API.outputs}
    credential_env = CREDENTIAL_ENV
    required_credentials = REQUIRED_CREDENTIALS
    # Typical cloud work for a database of a few GB (the dry run's estimate; plans set their own).
    step_estimates: ClassVar = {"wait-check": 60.0, "wait-migration": 900.0, "wait-complete": 60.0}

    def connect(self, config: ProviderConfig, fetch: HttpFetch) -> Connection:
        return TencentConnection(config, DTS_API)

    def steps(self, instance: Instance) -> Sequence[Step]:
        return job_steps(instance)

    def check(self, instance: Instance) -> Sequence[tuple[str, str]]:
        return list(check_settings(instance.settings))

    def required_secrets(self, instance: Instance) -> Sequence[str]:
        """The database passwords a job created by batchmig carries."""
        job = instance.settings.job
        if job is None:
            return ()
        needs = []
        for spec in (job.source, job.target):
            if spec.password_env:
                needs.append(f"env:{spec.password_env}")
            elif spec.password_credential:
                needs.append(f"credential:{spec.password_credential}")
        return needs

    async def preflight(self, caller: Caller, instance: Instance) -> Sequence[str]:
        settings: DtsSettings = instance.settings
        if settings.job_id is None:
            return []
        try:
            answer = await caller.read(Call("DescribeMigrateJobs", {"JobId": settings.job_id}))
        except ProviderError as error:
            return [f"could not look up {settings.job_id}: {error}"]
        jobs = [job for job in answer.payload.get("JobList") or [] if job.get("JobId") == settings.job_id]
        if not jobs:
            return [f"the DTS job {settings.job_id} does not exist in this region and account"]
        problems = []
        status = jobs[0].get("Status")
        if status not in CHECKABLE:
            problems.append(
                f"the DTS job {settings.job_id} is in status {status}; it cannot be checked and started"
            )
        kind = (jobs[0].get("MigrateOption") or {}).get("MigrateType")
        if kind is not None and kind != MIGRATE_TYPES[settings.migrate_type]:
            problems.append(
                f"the DTS job {settings.job_id} has MigrateType {kind}, "
                f"but the plan says migrate_type {settings.migrate_type}"
            )
        return problems
