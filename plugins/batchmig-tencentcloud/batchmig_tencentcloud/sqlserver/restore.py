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
    Answer,
    Call,
    Caller,
    CallStep,
    Instance,
    Listing,
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

from batchmig_tencentcloud.sqlserver.settings import ImportSettings, SqlServerSettings

__all__ = ["IMPORT_POLLER", "INCREMENTAL_POLLER", "import_steps"]

STARTED = frozenset({7, 8, 9, 10, 12})
"""Task statuses that prove a start call took effect."""
PAGE = 100


def import_steps(instance: Instance) -> list[Step]:
    settings: SqlServerSettings = instance.settings
    spec = settings.import_
    assert spec is not None, "check() requires an import section for import scenarios"
    instance_id = settings.instance_id
    name = spec.migration_name or instance.resource_name("import")
    steps: list[Step] = [_create(instance_id, name, spec)]
    if spec.rename:
        steps.append(_rename(instance_id, spec.rename))
    steps += [_start(instance_id), _WAIT_IMPORT]
    count = len(spec.incremental_files)
    for number, file in enumerate(spec.incremental_files, start=1):
        steps += _incremental(instance_id, number, file, final=number == count)
    return steps


def _import(settings: SqlServerSettings) -> ImportSettings:
    assert settings.import_ is not None
    return settings.import_


# ------------------------------------------------------------------ full import


def _offset(offset: int) -> dict[str, int]:
    # Only past the first page: whether Offset counts rows or pages is not documented
    # clearly, and batchmig's lookups nearly always end on the first page.
    return {"Offset": offset} if offset else {}


def _imports(instance_id: str, **filters: Any) -> Listing:
    """DescribeBackupMigration of an instance, newest first (optionally filtered)."""

    def page(offset: int) -> Call:
        params = {"InstanceId": instance_id, **filters, "OrderBy": "createTime", "OrderByType": "desc",
                  "Limit": PAGE, **_offset(offset)}
        return Call("DescribeBackupMigration", params)

    return Listing(page, lambda answer: answer.payload["BackupMigrationSet"], PAGE)


def _create(instance_id: str, name: str, spec: ImportSettings) -> CallStep:
    params = {
        "InstanceId": instance_id,
        "RecoveryType": spec.recovery_type,
        "UploadType": spec.upload_type,
        "MigrationName": name,
        "BackupFiles": [spec.backup_file],
    }

    async def reconcile(caller: Caller, outputs: Outputs) -> Outputs | None:
        task = await find_created(caller, _imports(instance_id, MigrationName=name),
                                  lambda task: task.get("MigrationName") == name,
                                  what=f"the import task {name}")
        return None if task is None else {"migration_id": task["MigrationId"]}

    return CallStep(
        "create-import",
        lambda outputs: Call(
            "CreateBackupMigration", params, mutating=True, resource=f"migration:{instance_id}/{name}"
        ),
        lambda answer: {"migration_id": answer.payload["BackupMigrationId"]},
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


def _describe_import(instance_id: str, migration_id: str) -> Call:
    return Call("DescribeBackupMigration", {"InstanceId": instance_id, "BackupMigrationId": migration_id})


async def _task(caller: Caller, instance_id: str, migration_id: str) -> Mapping[str, Any] | None:
    seen = await poll_listed(caller, _imports(instance_id, BackupMigrationId=migration_id), [migration_id],
                             _migration_id)
    return seen[migration_id].record if migration_id in seen else None


def _migration_id(task: Mapping[str, Any]) -> object:
    return task.get("MigrationId")


async def _poll_imports(caller: Caller, batch: Sequence[WaitItem]) -> list[WaitStatus]:
    # Newest first: the tasks being waited on are the recent ones, so one page of 100
    # covers every import into this instance that a run starts; the rest by id.
    instance_id = batch[0].instance.settings.instance_id
    seen = await poll_listed(
        caller, _imports(instance_id), [item.outputs["migration_id"] for item in batch], _migration_id,
        describe=lambda migration_id: _describe_import(instance_id, migration_id),
    )
    statuses = []
    for item in batch:
        found = seen.get(str(item.outputs["migration_id"]))
        full_only = _import(item.instance.settings).recovery_type == "FULL"
        statuses.append(_import_status(found.record if found else None, item, full_only,
                                       found.request_id if found else None))
    return statuses


def _import_status(task: Mapping[str, Any] | None, item: WaitItem, full_only: bool, request_id: Any) -> WaitStatus:
    migration_id = item.outputs["migration_id"]
    if task is None:  # lists lag behind creates, even filtered by id: not listed is not gone
        return WaitStatus.running(f"the import task {migration_id} is not listed yet")
    status, message = task.get("Status"), task.get("Message") or ""
    if status == 9 or (status == 8 and not full_only):
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


def _group_by_instance(item: WaitItem) -> Hashable:
    return str(item.instance.settings.instance_id)


IMPORT_POLLER = Poller(
    name="tencent-sqlserver.import",
    action="DescribeBackupMigration",
    poll=_poll_imports,
    max_batch=PAGE,
    group=_group_by_instance,
    min_interval=15.0,
    example=lambda item: _imports(item.instance.settings.instance_id).page(0),
)


# ----------------------------------------------------------------- incrementals


def _incremental(instance_id: str, number: int, file: str, *, final: bool) -> list[Step]:
    label = "final-incremental" if final else f"incremental-{number}"
    recovery = "YES" if final else "NO"
    slot = f"incremental_{number}_id"

    def create(outputs: Outputs) -> Call:
        params = {
            "InstanceId": instance_id,
            "BackupMigrationId": outputs["migration_id"],
            "BackupFiles": [file],
            "IsRecovery": recovery,
        }
        resource = f"incremental:{outputs['migration_id']}/{file}"
        return Call("CreateIncrementalMigration", params, mutating=True, resource=resource)

    def read(answer: Answer) -> Outputs:
        return {slot: answer.payload["IncrementalMigrationId"]}

    async def reconcile_create(caller: Caller, outputs: Outputs) -> Outputs | None:
        # Incrementals have no name; one task per backup file (check() forbids repeats).
        task = await find_created(caller, _incrementals(instance_id, outputs["migration_id"]),
                                  lambda task: list(task.get("BackupFiles") or []) == [file],
                                  what=f"the incremental import of {file}")
        return None if task is None else {slot: task["MigrationId"]}

    def start(outputs: Outputs) -> Call:
        params = {
            "InstanceId": instance_id,
            "BackupMigrationId": outputs["migration_id"],
            "IncrementalMigrationId": outputs[slot],
        }
        return Call("StartIncrementalMigration", params, mutating=True, resource=str(outputs[slot]))

    async def reconcile_start(caller: Caller, outputs: Outputs) -> Outputs | None:
        incremental_id = str(outputs[slot])
        listing = _incrementals(instance_id, outputs["migration_id"], incremental_id)
        seen = await poll_listed(caller, listing, [incremental_id], _migration_id)
        task = seen[incremental_id].record if incremental_id in seen else None
        if task is None:  # it exists (it has an id): the list lags behind
            raise OutcomeUnsureError("TaskNotListed", f"the incremental import {incremental_id} is not listed (yet)")
        return {} if task.get("Status") in STARTED else None

    return [
        CallStep(f"create-{label}", create, read, reconcile_create),
        CallStep(f"start-{label}", start, lambda answer: {}, reconcile_start, cutover=final),
        WaitStep(f"wait-{label}", INCREMENTAL_POLLER, {"slot": slot, "final": final}),
    ]


def _incrementals(instance_id: str, migration_id: str, incremental_id: str | None = None) -> Listing:
    """DescribeIncrementalMigration of one import task (optionally of one incremental)."""

    def page(offset: int) -> Call:
        params: dict[str, Any] = {"InstanceId": instance_id, "BackupMigrationId": migration_id,
                                  "Limit": PAGE, **_offset(offset)}
        if incremental_id is not None:
            params["IncrementalMigrationId"] = incremental_id
        return Call("DescribeIncrementalMigration", params)

    return Listing(page, lambda answer: answer.payload["IncrementalMigrationSet"], PAGE)


def _incremental_id(item: WaitItem) -> str:
    return str(item.outputs[item.context["slot"]])


async def _poll_incrementals(caller: Caller, batch: Sequence[WaitItem]) -> list[WaitStatus]:
    instance_id, migration_id = batch[0].instance.settings.instance_id, batch[0].outputs["migration_id"]
    seen = await poll_listed(
        caller, _incrementals(instance_id, migration_id), [_incremental_id(item) for item in batch], _migration_id,
        describe=lambda incremental_id: _incrementals(instance_id, migration_id, incremental_id).page(0),
    )
    statuses = []
    for item in batch:
        found = seen.get(_incremental_id(item))
        statuses.append(_incremental_status(found.record if found else None, item,
                                            found.request_id if found else None))
    return statuses


def _incremental_status(task: Mapping[str, Any] | None, item: WaitItem, request_id: Any) -> WaitStatus:
    incremental_id = _incremental_id(item)
    if task is None:  # lists lag behind creates, even filtered by id: not listed is not gone
        return WaitStatus.running(f"the incremental import task {incremental_id} is not listed yet")
    status, message = task.get("Status"), task.get("Message") or ""
    if status == 9 or (status == 8 and not item.context["final"]):
        return WaitStatus.succeeded({}, message)
    if status == 10:
        return WaitStatus.failed(
            message or f"the incremental import {incremental_id} failed", "ImportFailed", request_id
        )
    return WaitStatus.running(_progress(task))

_WAIT_IMPORT = WaitStep("wait-import", IMPORT_POLLER)
"""The same for every instance: made once, not for each instance's steps."""


def _group_by_task(item: WaitItem) -> Hashable:
    return (item.instance.settings.instance_id, item.outputs["migration_id"])


INCREMENTAL_POLLER = Poller(
    name="tencent-sqlserver.incremental",
    action="DescribeIncrementalMigration",
    poll=_poll_incrementals,
    max_batch=PAGE,
    group=_group_by_task,
    min_interval=10.0,
    example=lambda item: _incrementals(item.instance.settings.instance_id, item.outputs["migration_id"]).page(0),
)
