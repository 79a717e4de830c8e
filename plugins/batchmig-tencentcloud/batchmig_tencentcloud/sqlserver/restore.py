"""The cold-backup import: CreateBackupMigration → (ModifyBackupMigration) →
StartBackupMigration → wait, then per incremental file Create/Start/wait.

Import task statuses (DescribeBackupMigration / DescribeIncrementalMigration):
2 created, 7 full import running, 8 waiting for an incremental, 9 succeeded,
10 failed, 12 incremental running. A FULL import ends at 9; FULL_LOG / FULL_DIFF
imports rest at 8 between incrementals, and the last incremental, sent with
``IsRecovery=YES``, brings the databases online (→ 9): its start is the cutover.

None of the create and start calls is idempotent and none takes a client token, so
every one has a ``reconcile``: the import task is found again by its deterministic
MigrationName, an incremental by its backup file, and a start by the task's status
having left 2.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from typing import Any

from batchmig.plugin import (
    Call,
    Caller,
    CallStep,
    Instance,
    OutcomeUnsureError,
    Outputs,
    Poller,
    Step,
    WaitStatus,
    WaitStep,
)

from batchmig_tencentcloud.sqlserver.settings import ImportSettings, SqlServerSettings

__all__ = ["IMPORT_POLLER", "INCREMENTAL_POLLER", "import_steps"]

STARTED = frozenset({7, 8, 9, 10, 12})
"""Task statuses that prove a start call took effect."""


def import_steps(instance: Instance) -> list[Step]:
    settings: SqlServerSettings = instance.settings
    spec = settings.import_
    assert spec is not None, "check() requires an import section for import scenarios"
    instance_id = settings.instance_id
    name = spec.migration_name or instance.resource_name("import")
    steps: list[Step] = [_create(instance_id, name, spec)]
    if spec.rename:
        steps.append(_rename(instance_id, spec.rename))
    steps += [_start(instance_id), WaitStep("wait-import", IMPORT_POLLER)]
    count = len(spec.incremental_files)
    for number, file in enumerate(spec.incremental_files, start=1):
        steps += _incremental(instance_id, number, file, final=number == count)
    return steps


# ------------------------------------------------------------------ full import


def _create(instance_id: str, name: str, spec: ImportSettings) -> CallStep:
    params = {
        "InstanceId": instance_id,
        "RecoveryType": spec.recovery_type,
        "UploadType": spec.upload_type,
        "MigrationName": name,
        "BackupFiles": [spec.backup_file],
    }

    def outputs_for(migration_id: str) -> Outputs:
        return {"instance_id": instance_id, "migration_id": migration_id, "recovery_type": spec.recovery_type}

    async def reconcile(caller: Caller, outputs: Outputs) -> Outputs | None:
        answer = await caller.read(
            Call("DescribeBackupMigration", {"InstanceId": instance_id, "MigrationName": name, "Limit": 100})
        )
        for task in answer.get("BackupMigrationSet") or []:
            if task.get("MigrationName") == name:
                return outputs_for(task["MigrationId"])
        return None

    return CallStep(
        "create-import",
        lambda outputs: Call(
            "CreateBackupMigration", params, mutating=True, resource=f"migration:{instance_id}/{name}"
        ),
        lambda answer: outputs_for(answer["BackupMigrationId"]),
        reconcile,
    )


def _rename(instance_id: str, rename: Mapping[str, str]) -> CallStep:
    wanted = [{"OldName": old, "NewName": new} for old, new in rename.items()]

    def build(outputs: Outputs) -> Call:
        params = {"InstanceId": instance_id, "BackupMigrationId": outputs["migration_id"], "DBRename": wanted}
        return Call("ModifyBackupMigration", params, mutating=True, resource=str(outputs["migration_id"]))

    async def reconcile(caller: Caller, outputs: Outputs) -> Outputs | None:
        task = await _listed_task(caller, instance_id, outputs["migration_id"])
        current = {(item.get("OldName"), item.get("NewName")) for item in task.get("DBRename") or []}
        return {} if current == {(item["OldName"], item["NewName"]) for item in wanted} else None

    return CallStep("rename-databases", build, lambda answer: {}, reconcile)


def _start(instance_id: str) -> CallStep:
    def build(outputs: Outputs) -> Call:
        params = {"InstanceId": instance_id, "BackupMigrationId": outputs["migration_id"]}
        return Call("StartBackupMigration", params, mutating=True, resource=str(outputs["migration_id"]))

    async def reconcile(caller: Caller, outputs: Outputs) -> Outputs | None:
        task = await _listed_task(caller, instance_id, outputs["migration_id"])
        return {} if task.get("Status") in STARTED else None

    return CallStep("start-import", build, lambda answer: {}, reconcile)


async def _listed_task(caller: Caller, instance_id: str, migration_id: str) -> Mapping[str, Any]:
    """The import task, which exists (it has an id): if the list does not show it, the
    list lags behind, and whether a call on it took effect cannot be told yet."""
    task = await _task(caller, instance_id, migration_id)
    if task is None:
        raise OutcomeUnsureError("TaskNotListed", f"the import task {migration_id} is not listed (yet)")
    return task


async def _task(caller: Caller, instance_id: str, migration_id: str) -> Mapping[str, Any] | None:
    answer = await caller.read(
        Call("DescribeBackupMigration", {"InstanceId": instance_id, "BackupMigrationId": migration_id})
    )
    for task in answer.get("BackupMigrationSet") or []:
        if task.get("MigrationId") == migration_id:
            found: Mapping[str, Any] = task
            return found
    return None


def _list_imports(outputs: Outputs) -> Call:
    # Newest first: the tasks being waited on are the recent ones, so one page of 100
    # covers every import into this instance that a run starts.
    params = {
        "InstanceId": outputs["instance_id"],
        "OrderBy": "createTime",
        "OrderByType": "desc",
        "Limit": 100,
    }
    return Call("DescribeBackupMigration", params)


async def _poll_imports(caller: Caller, batch: Sequence[Outputs]) -> list[WaitStatus]:
    answer = await caller.read(_list_imports(batch[0]))
    request_id = answer.get("RequestId")
    tasks = {task.get("MigrationId"): task for task in answer.get("BackupMigrationSet") or []}
    statuses = []
    for outputs in batch:
        migration_id = outputs["migration_id"]
        task = tasks.get(migration_id) or await _task(caller, outputs["instance_id"], migration_id)
        statuses.append(_import_status(task, outputs, request_id))
    return statuses


def _import_status(task: Mapping[str, Any] | None, outputs: Outputs, request_id: Any) -> WaitStatus:
    migration_id = outputs["migration_id"]
    if task is None:
        return WaitStatus.failed(
            f"the import task {migration_id} no longer exists", "ResourceNotFound.FullBackupMigrationNotExist"
        )
    status, message = task.get("Status"), task.get("Message") or ""
    if status == 9 or (status == 8 and outputs.get("recovery_type") != "FULL"):
        return WaitStatus.succeeded({}, message)
    if status == 10:
        return WaitStatus.failed(
            message or f"the import task {migration_id} failed", "ImportFailed", request_id
        )
    return WaitStatus.running(_progress(task))


def _progress(task: Mapping[str, Any]) -> str:
    detail = task.get("Detail") or {}
    progress = detail.get("Progress")
    return f"status {task.get('Status')}" + (f", {progress}%" if progress is not None else "")


def _group_by_instance(outputs: Outputs) -> Hashable:
    return str(outputs["instance_id"])


IMPORT_POLLER = Poller(
    name="tencent-sqlserver.import",
    action="DescribeBackupMigration",
    poll=_poll_imports,
    max_batch=100,
    group=_group_by_instance,
    min_interval=15.0,
    example=_list_imports,
)


# ----------------------------------------------------------------- incrementals


def _incremental(instance_id: str, number: int, file: str, *, final: bool) -> list[Step]:
    label = "final-incremental" if final else f"incremental-{number}"
    recovery = "YES" if final else "NO"
    slot = f"incremental_{number}_id"

    def outputs_for(incremental_id: str) -> Outputs:
        return {slot: incremental_id, "incremental_id": incremental_id, "incremental_recovery": recovery}

    def create(outputs: Outputs) -> Call:
        params = {
            "InstanceId": instance_id,
            "BackupMigrationId": outputs["migration_id"],
            "BackupFiles": [file],
            "IsRecovery": recovery,
        }
        resource = f"incremental:{outputs['migration_id']}/{file}"
        return Call("CreateIncrementalMigration", params, mutating=True, resource=resource)

    async def reconcile_create(caller: Caller, outputs: Outputs) -> Outputs | None:
        # Incrementals have no name; one task per backup file (check() forbids repeats).
        tasks = await _incrementals(caller, instance_id, outputs["migration_id"])
        for task in tasks:
            if list(task.get("BackupFiles") or []) == [file]:
                return outputs_for(task["MigrationId"])
        return None

    def start(outputs: Outputs) -> Call:
        params = {
            "InstanceId": instance_id,
            "BackupMigrationId": outputs["migration_id"],
            "IncrementalMigrationId": outputs[slot],
        }
        return Call("StartIncrementalMigration", params, mutating=True, resource=str(outputs[slot]))

    async def reconcile_start(caller: Caller, outputs: Outputs) -> Outputs | None:
        tasks = await _incrementals(caller, instance_id, outputs["migration_id"], outputs[slot])
        if not tasks:  # it exists (it has an id): the list lags behind
            raise OutcomeUnsureError("TaskNotListed", f"the incremental import {outputs[slot]} is not listed (yet)")
        return {} if any(task.get("Status") in STARTED for task in tasks) else None

    return [
        CallStep(f"create-{label}", create, lambda answer: outputs_for(answer["IncrementalMigrationId"]),
                 reconcile_create),
        CallStep(f"start-{label}", start, lambda answer: {}, reconcile_start, cutover=final),
        WaitStep(f"wait-{label}", INCREMENTAL_POLLER),
    ]  # fmt: skip


def _list_incrementals(outputs: Outputs, incremental_id: str | None = None) -> Call:
    params: dict[str, Any] = {
        "InstanceId": outputs["instance_id"],
        "BackupMigrationId": outputs["migration_id"],
        "Limit": 100,
    }
    if incremental_id is not None:
        params["IncrementalMigrationId"] = incremental_id
    return Call("DescribeIncrementalMigration", params)


async def _incrementals(
    caller: Caller, instance_id: str, migration_id: str, incremental_id: str | None = None
) -> list[Mapping[str, Any]]:
    outputs = {"instance_id": instance_id, "migration_id": migration_id}
    answer = await caller.read(_list_incrementals(outputs, incremental_id))
    return list(answer.get("IncrementalMigrationSet") or [])


async def _poll_incrementals(caller: Caller, batch: Sequence[Outputs]) -> list[WaitStatus]:
    answer = await caller.read(_list_incrementals(batch[0]))
    request_id = answer.get("RequestId")
    tasks = {task.get("MigrationId"): task for task in answer.get("IncrementalMigrationSet") or []}
    statuses = []
    for outputs in batch:
        incremental_id = outputs["incremental_id"]
        task = tasks.get(incremental_id)
        if task is None:
            found = await _incrementals(
                caller, outputs["instance_id"], outputs["migration_id"], incremental_id
            )
            task = found[0] if found else None
        statuses.append(_incremental_status(task, outputs, request_id))
    return statuses


def _incremental_status(task: Mapping[str, Any] | None, outputs: Outputs, request_id: Any) -> WaitStatus:
    incremental_id = outputs["incremental_id"]
    if task is None:
        return WaitStatus.failed(
            f"the incremental import task {incremental_id} no longer exists",
            "ResourceNotFound.IncreBackupMigrationNotExist",
        )
    status, message = task.get("Status"), task.get("Message") or ""
    final = outputs.get("incremental_recovery") == "YES"
    if status == 9 or (status == 8 and not final):
        return WaitStatus.succeeded({}, message)
    if status == 10:
        return WaitStatus.failed(
            message or f"the incremental import {incremental_id} failed", "ImportFailed", request_id
        )
    return WaitStatus.running(_progress(task))


def _group_by_task(outputs: Outputs) -> Hashable:
    return (outputs["instance_id"], outputs["migration_id"])


INCREMENTAL_POLLER = Poller(
    name="tencent-sqlserver.incremental",
    action="DescribeIncrementalMigration",
    poll=_poll_incrementals,
    max_batch=100,
    group=_group_by_task,
    min_interval=10.0,
    example=lambda outputs: _list_incrementals(outputs),
)
