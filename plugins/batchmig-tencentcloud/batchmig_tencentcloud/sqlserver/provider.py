"""The ``tencent-sqlserver`` provider (SQL Server API 2018-03-28).

Puts the scenario modules together: ``backup`` (a manual backup of the target) and
``restore`` (the cold-backup import), and adds what is per-provider: connection,
rate caps, cross-field checks and the read-only pre-flight.
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
from batchmig_tencentcloud.options import CREDENTIAL_ENV, REQUIRED_CREDENTIALS, TencentOptions
from batchmig_tencentcloud.sqlserver.backup import backup_steps
from batchmig_tencentcloud.sqlserver.restore import import_steps
from batchmig_tencentcloud.sqlserver.settings import SqlServerSettings, check_settings

__all__ = ["SQLSERVER_API", "SqlServerProvider"]

SQLSERVER_API = ApiInfo(
    service="sqlserver",
    version="2018-03-28",
    outputs={
        "DescribeDBInstances": ("DBInstances",),
        "CreateBackup": ("FlowId",),
        "DescribeBackupByFlowId": ("Status",),
        "DescribeBackups": ("Backups",),
        "DescribeFlowStatus": ("Status",),
        "CreateBackupMigration": ("BackupMigrationId",),
        "ModifyBackupMigration": ("BackupMigrationId",),
        "StartBackupMigration": ("FlowId",),
        "DescribeBackupMigration": ("BackupMigrationSet",),
        "CreateIncrementalMigration": ("IncrementalMigrationId",),
        "StartIncrementalMigration": ("FlowId",),
        "DescribeIncrementalMigration": ("IncrementalMigrationSet",),
    },
)

INSTANCE_STATUS = {
    1: "creating", 2: "running", 3: "restricted (switching)", 4: "isolated", 5: "being recycled",
    6: "recycled", 7: "task in progress", 8: "offline", 9: "scaling out", 10: "migrating",
    11: "read-only", 12: "restarting",
}  # fmt: skip


class SqlServerProvider(Provider):
    """Backups and cold-backup imports of TencentDB for SQL Server."""

    settings_model = SqlServerSettings
    options_model = TencentOptions
    actions = frozenset(SQLSERVER_API.outputs)
    # Every action is documented at 20 requests/second except DescribeDBInstances (70/s).
    default_rate_limits: ClassVar = {action: DEFAULT_RATE for action in SQLSERVER_API.outputs} | {
        "DescribeDBInstances": 70.0
    }
    credential_env = CREDENTIAL_ENV
    required_credentials = REQUIRED_CREDENTIALS
    # Typical cloud work for a database of a few GB (the dry run's estimate; plans set their own).
    step_estimates: ClassVar = {"wait-backup": 120.0, "wait-import": 600.0, "wait-*incremental*": 180.0}

    def connect(self, config: ProviderConfig, fetch: HttpFetch) -> Connection:
        return TencentConnection(config, SQLSERVER_API)

    def steps(self, instance: Instance) -> Sequence[Step]:
        settings: SqlServerSettings = instance.settings
        steps: list[Step] = []
        if settings.scenario in ("backup", "backup-then-import"):
            steps += backup_steps(instance)
        if settings.scenario in ("import", "backup-then-import"):
            steps += import_steps(instance)
        return steps

    def check(self, instance: Instance) -> Sequence[tuple[str, str]]:
        return list(check_settings(instance.settings))

    async def preflight(self, caller: Caller, instance: Instance) -> Sequence[str]:
        instance_id = instance.settings.instance_id
        try:
            answer = await caller.read(Call("DescribeDBInstances", {"InstanceIdSet": [instance_id]}))
        except ProviderError as error:
            return [f"could not look up {instance_id}: {error}"]
        found = [item for item in answer.payload.get("DBInstances") or [] if item.get("InstanceId") == instance_id]
        if not found:
            return [f"the instance {instance_id} does not exist in this region and account"]
        status = found[0].get("Status")
        if status != 2:
            meaning = INSTANCE_STATUS.get(status, "unknown") if isinstance(status, int) else "unknown"
            return [f"the instance {instance_id} is in status {status} ({meaning}), not running (2)"]
        return []
