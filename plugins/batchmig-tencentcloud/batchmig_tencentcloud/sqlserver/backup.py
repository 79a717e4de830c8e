"""The backup scenario: CreateBackup, then wait for the backup to finish.

CreateBackup is not idempotent and returns only a FlowId. batchmig always sends a
BackupName (the plan's, or a deterministic one), so after a lost answer
``reconcile`` finds the backup with DescribeBackups by that name. That lookup cannot
recover the FlowId, so the wait polls DescribeBackupByFlowId when it has the FlowId
and DescribeBackups by name when it does not. Both report the *backup* status
(0 creating, 1 success, 2 failed) — unlike DescribeFlowStatus, where 0 is success.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from batchmig.errors import NotFoundError
from batchmig.plugin import (
    Answer,
    Call,
    Caller,
    CallStep,
    Instance,
    Listing,
    Outputs,
    Poller,
    Step,
    WaitItem,
    WaitStatus,
    WaitStep,
    find_created,
    poll_listed,
)

from batchmig_tencentcloud.sqlserver.settings import SqlServerSettings

__all__ = ["BACKUP_POLLER", "backup_steps", "backups_named"]

_BEIJING = timezone(timedelta(hours=8))
# DescribeBackups needs a time window; a month either side of now outlasts any run.
_WINDOW = timedelta(days=30)


def backups_named(instance_id: str, name: str) -> Listing:
    """DescribeBackups of the instance filtered by BackupName (a search: it may lag)."""

    def page(offset: int) -> Call:
        now = datetime.fromtimestamp(time.time(), _BEIJING)
        params = {
            "InstanceId": instance_id,
            "StartTime": (now - _WINDOW).strftime("%Y-%m-%d %H:%M:%S"),
            "EndTime": (now + _WINDOW).strftime("%Y-%m-%d %H:%M:%S"),
            "BackupName": name,
            "Limit": 100,
        }
        if offset:  # documented as a page number; batchmig's lookups only need the first page
            params["Offset"] = offset // 100
        return Call("DescribeBackups", params)

    return Listing(page, lambda answer: answer.payload["Backups"])


def backup_steps(instance: Instance) -> list[Step]:
    settings: SqlServerSettings = instance.settings
    spec = settings.backup
    instance_id = settings.instance_id
    name = spec.name or instance.resource_name("backup")
    params: dict[str, Any] = {
        "InstanceId": instance_id,
        "Strategy": 1 if spec.strategy == "databases" else 0,
        "BackupName": name,
        "StorageStrategy": 1 if spec.keep_until_deactivated else 0,
    }
    if spec.strategy == "databases":
        params["DBNames"] = list(spec.databases)

    def build(outputs: Outputs) -> Call:
        return Call("CreateBackup", params, mutating=True, resource=f"backup:{instance_id}/{name}")

    def read(answer: Answer) -> Outputs:
        return {"backup_flow_id": answer.payload["FlowId"]}

    async def reconcile(caller: Caller, outputs: Outputs) -> Outputs | None:
        found = await find_created(caller, backups_named(instance_id, name),
                                   lambda backup: backup.get("BackupName") == name, what=f"the backup {name}")
        # The backup's list entry has no FlowId; the wait then polls by name.
        return None if found is None else {"backup_flow_id": None}

    return [
        CallStep("create-backup", build, read, reconcile),
        WaitStep("wait-backup", BACKUP_POLLER, {"backup_name": name}),
    ]


async def _poll(caller: Caller, batch: Sequence[WaitItem]) -> list[WaitStatus]:
    statuses = []
    for item in batch:
        instance_id, name = item.instance.settings.instance_id, item.context["backup_name"]
        flow_id = item.outputs.get("backup_flow_id")
        try:
            if flow_id is not None:
                backup: Any = (await caller.read(_by_flow(instance_id, flow_id))).payload
            else:
                seen = await poll_listed(caller, backups_named(instance_id, name), [name],
                                         lambda backup: backup.get("BackupName"))
                backup = seen[name].record if name in seen else None
        except NotFoundError as error:
            statuses.append(WaitStatus.failed(error.message, error.code, error.request_id))
            continue
        statuses.append(_status(backup, name))
    return statuses


def _status(backup: Any, name: str) -> WaitStatus:
    if backup is None:
        return WaitStatus.failed(f"the backup {name} no longer exists", "ResourceNotFound.BackupNotFound")
    status = backup.get("Status")
    if status == 1:
        return WaitStatus.succeeded({"backup_id": backup.get("Id"), "backup_file": backup.get("FileName")})
    if status == 2:
        return WaitStatus.failed(f"the backup {name} failed", "BackupFailed", backup.get("RequestId"))
    return WaitStatus.running(f"backup {name} is being created")


def _by_flow(instance_id: str, flow_id: Any) -> Call:
    # FlowId is an int in CreateBackup's answer but a string in this request.
    return Call("DescribeBackupByFlowId", {"InstanceId": instance_id, "FlowId": str(flow_id)})


BACKUP_POLLER = Poller(
    name="tencent-sqlserver.backup",
    action="DescribeBackupByFlowId",
    poll=_poll,
    max_batch=1,
    min_interval=10.0,
    example=lambda item: _by_flow(item.instance.settings.instance_id, item.outputs["backup_flow_id"]),
)
