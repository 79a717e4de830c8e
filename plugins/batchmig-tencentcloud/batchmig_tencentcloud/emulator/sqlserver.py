"""The sandbox's SQL Server API: instances, backups, flows and cold-backup imports.

State lives in ``ctx.store`` as plain records with the wall-clock times at which
things were created and started; every status is *computed* from those times when
asked (``ctx.cloud_seconds_since``), so nothing runs in the background and a
restarted sandbox finds work finished meanwhile.

Lifecycles (durations are sandbox options, in cloud seconds):

- backup: 0 creating → 1 success after ``backup_seconds`` (120), or 2 failed when the
  BackupName contains ``sandbox-fail``;
- import task: 2 created → (start) 7 → after ``import_seconds`` (600) 9 for FULL, 8
  (waiting for incremental) for FULL_LOG/FULL_DIFF, or 10 when the backup file name
  contains ``sandbox-corrupt``;
- incremental: 2 → (start) 12 → after ``incremental_seconds`` (180) 9 (its parent goes
  back to 8, or to 9 for ``IsRecovery=YES``) or 10;
- a flow (DescribeFlowStatus) mirrors what it started: 2 running, 0 success, 1 failed;
- an instance id of the form ``mssql-`` + 8 lower-case letters/digits exists on first
  use (or only the ids of the ``instances`` option, when set); it shows status 10
  (migrating) while an import of it runs, 7 while a backup runs, else 2.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from batchmig.emulator import RequestInfo, SandboxContext

from batchmig_tencentcloud.emulator.base import (
    Outcome,
    TencentEmulator,
    cloud_time,
    key,
    parse_cloud_time,
)
from batchmig_tencentcloud.emulator.instances import instance_view, matches
from batchmig_tencentcloud.emulator.params import ApiError, is_english
from batchmig_tencentcloud.emulator.sqlserver_schema import ACTIONS, RATE_LIMITS

__all__ = ["SqlServerEmulator"]

INSTANCE_ID = re.compile(r"^mssql-[0-9a-z]{8}$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,59}$")
APP_ID = 1250000000
ALL_ACTIONS = ["view", "modify", "start", "incremental", "delete", "upload"]
ALLOWED = {
    2: ["view", "modify", "delete", "upload", "start"],
    7: ["view"],
    8: ["view", "incremental", "delete"],
    9: ["view", "delete"],
    10: ["view", "delete"],
    12: ["view"],
}
FAIL_BACKUP = "sandbox-fail"
CORRUPT_FILE = "sandbox-corrupt"
MESSAGES_ZH = {
    "": "",
    "The full backup is being restored.": "全量备份恢复中。",
    "The backup file is damaged or is not a SQL Server backup.": "备份文件已损坏或不是 SQL Server 备份文件。",
    "The backup was imported.": "备份导入成功。",
    "An incremental backup is being restored.": "增量备份恢复中。",
    "The backup was imported and the databases are online.": "备份导入成功，数据库已上线。",
    "The full backup was restored; waiting for incremental backups.": "全量备份已恢复，等待导入增量备份。",
    "The incremental backup is being restored.": "增量备份恢复中。",
    "The incremental backup file is damaged or does not follow the previous one.": (
        "增量备份文件已损坏或与上一个备份不连续。"
    ),
    "The incremental backup was restored.": "增量备份恢复成功。",
}
"""A task's ``Message`` in zh-CN, the default language (``X-TC-Language``)."""


class SqlServerEmulator(TencentEmulator):
    """SQL Server API 2018-03-28 on loopback."""

    service = "sqlserver"
    version = "2018-03-28"
    actions = ACTIONS
    rate_limits = RATE_LIMITS

    def __init__(self, ctx: SandboxContext) -> None:
        super().__init__(ctx)
        listed = ctx.options.get("instances")
        self.listed_instances: frozenset[str] | None = frozenset(listed) if listed is not None else None

    # ---------------------------------------------------------------- instances

    def _instance(self, region: str, instance_id: str) -> dict[str, Any]:
        store = self.ctx.store
        record = store.get("instance", key(region, instance_id))
        if record is not None:
            return record
        known = self.listed_instances
        if (instance_id in known) if known is not None else bool(INSTANCE_ID.match(instance_id)):
            record = {"InstanceId": instance_id, "Region": region, "created_at": self.ctx.now()}
            store.put("instance", key(region, instance_id), record)
            return record
        raise ApiError(
            "ResourceNotFound.InstanceNotFound",
            f"The instance {instance_id} does not exist.",
            f"实例 {instance_id} 不存在。",
        )

    def _instance_status(self, region: str, instance_id: str) -> int:
        def mine(kind: str) -> Iterator[dict[str, Any]]:
            return (record for record in self.ctx.store.where(kind, "InstanceId", instance_id)
                    if record["Region"] == region)

        if any(self._migration_status(record)[0] in (7, 12) for record in mine("migration")):
            return 10
        if any(self._backup_status(record) == 0 for record in mine("backup")):
            return 7
        return 2

    def describe_db_instances(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        # Instances are not created through this API, so this list never lags.
        for instance_id in params.get("InstanceIdSet") or []:
            with contextlib.suppress(ApiError):  # a filter that matches nothing is no error
                self._instance(info.region, instance_id)
        views = (
            instance_view(
                record, self._instance_status(info.region, record["InstanceId"]), cloud_time(record["created_at"])
            )
            for record in self.ctx.store.where("instance", "Region", info.region)
        )
        found = [view for view in views if matches(view, params)]
        limit = _limit(params, default=100)
        offset = params.get("Offset", 0)
        start = offset if params.get("PaginationType") == "offset" else offset * limit
        return Outcome({"TotalCount": len(found), "DBInstances": found[start : start + limit]})

    # ------------------------------------------------------------------ backups

    def create_backup(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        instance_id = params["InstanceId"]
        self._instance(info.region, instance_id)
        strategy = params.get("Strategy", 0)
        databases = params.get("DBNames") or []
        if strategy not in (0, 1):
            raise ApiError(
                "InvalidParameter.InputIllegal",
                "Strategy must be 0 (instance) or 1 (databases).",
                "Strategy 必须为 0（实例备份）或 1（多库备份）。",
            )
        if strategy == 1 and not databases:
            raise ApiError(
                "InvalidParameter.InputIllegal",
                "DBNames is required for a multi-database backup.",
                "多库备份必须指定 DBNames。",
            )
        if params.get("StorageStrategy", 0) not in (0, 1):
            raise ApiError(
                "InvalidParameter.InputIllegal",
                "StorageStrategy must be 0 or 1.",
                "StorageStrategy 必须为 0 或 1。",
            )
        now = self.ctx.now()
        name = params.get("BackupName") or f"{instance_id}_{int(now)}"
        _check_name(name, "InvalidParameterValue.BackupNameIsIllegal", "backup")
        backup_id = self.ctx.store.next_id("backup")
        flow_id = self._new_flow(info.region, "backup", str(backup_id))
        record = {
            "Id": backup_id, "FlowId": flow_id, "InstanceId": instance_id, "Region": info.region,
            "BackupName": name, "Strategy": strategy, "DBs": databases if strategy == 1 else [],
            "StorageStrategy": params.get("StorageStrategy", 0), "created_at": now,
        }  # fmt: skip
        self.ctx.store.put("backup", key(info.region, str(backup_id)), record)
        return Outcome({"FlowId": flow_id}, resource=f"backup:{instance_id}/{name}", changed=True)

    def _backup_status(self, record: Mapping[str, Any]) -> int:
        if not self.elapsed(record["created_at"], "backup_seconds", 120):
            return 0
        return 2 if FAIL_BACKUP in record["BackupName"] else 1

    def _backup_view(self, record: Mapping[str, Any]) -> dict[str, Any]:
        status = self._backup_status(record)
        end = self.finished_at(record["created_at"], "backup_seconds", 120) if status != 0 else None
        file_name = f"{record['InstanceId']}_{record['Id']}.bak" if status == 1 else ""
        address = (
            f"https://sandbox-backup.cos.{record['Region']}.myqcloud.com/{file_name}" if file_name else ""
        )
        return {
            "Id": record["Id"] if status == 1 else 0, "FileName": file_name,
            "BackupName": record["BackupName"], "StartTime": cloud_time(record["created_at"]),
            "EndTime": cloud_time(end),
            "Size": 102400 if status == 1 else 0, "Strategy": record["Strategy"], "Status": status,
            "BackupWay": 1, "DBs": record["DBs"], "InternalAddr": address, "ExternalAddr": address,
            "GroupId": "", "StorageStrategy": record["StorageStrategy"], "BackupFormat": "pkg",
            "Region": record["Region"], "CrossBackupAddr": [], "CrossBackupStatus": [],
        }  # fmt: skip

    def describe_backup_by_flow_id(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        self._instance(info.region, params["InstanceId"])
        flow = self.ctx.store.get("flow", params["FlowId"]) if params["FlowId"].isdigit() else None
        backup = (
            self.ctx.store.get("backup", key(info.region, flow["ref"]))
            if flow is not None and flow["kind"] == "backup"
            else None
        )
        if backup is None or backup["InstanceId"] != params["InstanceId"]:
            raise ApiError("ResourceNotFound.BackupNotFound", "The backup does not exist.", "备份不存在。")
        view = self._backup_view(backup)
        for field in (
            "StorageStrategy",
            "BackupFormat",
            "Region",
            "CrossBackupAddr",
            "CrossBackupStatus",
        ):
            view.pop(field)
        return Outcome(view)

    def describe_backups(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        self._instance(info.region, params["InstanceId"])
        start, end = parse_cloud_time(params["StartTime"]), parse_cloud_time(params["EndTime"])
        matches = [
            record
            for record in self.ctx.store.where("backup", "InstanceId", params["InstanceId"])
            if record["Region"] == info.region
            and start <= record["created_at"] <= end
            and info.listed(record["created_at"], self.ctx.now())
            and params.get("BackupName", record["BackupName"]) == record["BackupName"]
            and params.get("BackupId", record["Id"]) == record["Id"]
            and params.get("Strategy", record["Strategy"]) == record["Strategy"]
            and params.get("BackupWay", 1) == 1
        ]
        matches.sort(key=lambda record: record["created_at"], reverse=True)
        limit = _limit(params, default=20)
        page = params.get("Offset", 0)
        views = [self._backup_view(record) for record in matches[page * limit : (page + 1) * limit]]
        return Outcome({"TotalCount": len(matches), "Backups": views})

    # -------------------------------------------------------------------- flows

    def _new_flow(self, region: str, kind: str, ref: str) -> int:
        flow_id = 10000 + self.ctx.store.next_id("flow")
        self.ctx.store.put(
            "flow", str(flow_id), {"FlowId": flow_id, "Region": region, "kind": kind, "ref": ref}
        )
        return flow_id

    def describe_flow_status(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        flow = self.ctx.store.get("flow", str(params["FlowId"]))
        if flow is None or flow["Region"] != info.region:
            raise ApiError(
                "ResourceNotFound",
                f"The flow {params['FlowId']} does not exist.",
                f"任务流 {params['FlowId']} 不存在。",
            )
        where = key(info.region, flow["ref"])
        if flow["kind"] == "backup":
            backup = self.ctx.store.get("backup", where)
            status = {0: 2, 1: 0, 2: 1}[self._backup_status(backup)] if backup else 1
        elif flow["kind"] == "migration":
            migration = self.ctx.store.get("migration", where)
            state = self._migration_status(migration)[0] if migration else 10
            status = 2 if state == 7 else 1 if state == 10 else 0
        else:
            increment = self.ctx.store.get("incremental", where)
            state = self._incremental_status(increment)[0] if increment else 10
            status = 2 if state == 12 else 1 if state == 10 else 0
        return Outcome({"Status": status})

    # -------------------------------------------------------------- import tasks

    def _migration(self, region: str, instance_id: str, migration_id: str) -> dict[str, Any]:
        self._instance(region, instance_id)
        record = self.ctx.store.get("migration", key(region, migration_id))
        if record is None or record["InstanceId"] != instance_id:
            raise ApiError(
                "ResourceNotFound.FullBackupMigrationNotExist",
                f"The backup import task {migration_id} does not exist.", f"备份导入任务 {migration_id} 不存在。")
        return record

    def _incrementals(self, migration: Mapping[str, Any]) -> list[dict[str, Any]]:
        found = (
            self.ctx.store.get("incremental", key(migration["Region"], i)) for i in migration["incrementals"]
        )
        return [record for record in found if record is not None]

    def _migration_status(self, record: Mapping[str, Any]) -> tuple[int, str, float | None]:
        """(Status, Message, end time) of an import task, computed from its times."""
        started = record.get("started_at")
        if started is None:
            return 2, "", None
        if not self.elapsed(started, "import_seconds", 600):
            return 7, "The full backup is being restored.", None
        full_end = self.finished_at(started, "import_seconds", 600)
        if any(CORRUPT_FILE in name for name in record["BackupFiles"]):
            return 10, "The backup file is damaged or is not a SQL Server backup.", full_end
        if record["RecoveryType"] == "FULL":
            return 9, "The backup was imported.", full_end
        for increment in self._incrementals(record):
            status, message, end = self._incremental_status(increment)
            if status == 12:
                return 12, "An incremental backup is being restored.", None
            if status == 10:
                return 10, message, end
            if status == 9 and increment["IsRecovery"] == "YES":
                return 9, "The backup was imported and the databases are online.", end
        return 8, "The full backup was restored; waiting for incremental backups.", None

    def _incremental_status(self, record: Mapping[str, Any]) -> tuple[int, str, float | None]:
        started = record.get("started_at")
        if started is None:
            return 2, "", None
        if not self.elapsed(started, "incremental_seconds", 180):
            return 12, "The incremental backup is being restored.", None
        end = self.finished_at(started, "incremental_seconds", 180)
        if any(CORRUPT_FILE in name for name in record["BackupFiles"]):
            return 10, "The incremental backup file is damaged or does not follow the previous one.", end
        return 9, "The incremental backup was restored.", end

    def _task_view(self, record: Mapping[str, Any], incremental: bool, language: str) -> dict[str, Any]:
        status, message, end = (self._incremental_status if incremental else self._migration_status)(record)
        message = message if is_english(language) else MESSAGES_ZH[message]
        running = status in (7, 12)
        steps = [("Download the backup file", 1), ("Restore the backup", 2), ("Finish", 3)]
        progress = 0 if status == 2 else 50 if running else 100
        step_info = [] if status == 2 else [
            {"StepNo": number, "StepName": name, "StepId": f"step-{number}",
             "Status": _step_status(status, number)}
            for name, number in steps
        ]  # fmt: skip
        renames = record.get("DBRename") or None
        return {
            "MigrationId": record["MigrationId"],
            "MigrationName": "" if incremental else record["MigrationName"],
            "AppId": APP_ID, "Region": record["Region"], "InstanceId": record["InstanceId"],
            "RecoveryType": record["RecoveryType"], "UploadType": record["UploadType"],
            "BackupFiles": record["BackupFiles"], "Status": status,
            "CreateTime": cloud_time(record["created_at"]), "StartTime": cloud_time(record.get("started_at")),
            "EndTime": cloud_time(end), "Message": message,
            "Detail": {"StepAll": len(steps), "StepNow": 0 if status == 2 else 2 if running else 3,
                       "Progress": progress, "StepInfo": step_info},
            "Action": {"AllAction": ALL_ACTIONS, "AllowedAction": ALLOWED.get(status, ["view"])},
            "IsRecovery": record.get("IsRecovery", "") if incremental else "", "DBRename": renames,
        }  # fmt: skip

    def create_backup_migration(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        instance_id = params["InstanceId"]
        self._instance(info.region, instance_id)
        recovery, upload = params["RecoveryType"], params["UploadType"]
        _one_of(recovery, ("FULL", "FULL_LOG", "FULL_DIFF"), "RecoveryType")
        _one_of(upload, ("COS_URL", "COS_UPLOAD"), "UploadType")
        _check_name(params["MigrationName"], "InvalidParameterValue.MigrationNameIsIllegal", "migration")
        files = _one_file(params.get("BackupFiles") or [], upload)
        migration_id = self.new_id("mssql-backup-migration", "migration", info.region)
        record = {
            "MigrationId": migration_id, "MigrationName": params["MigrationName"], "Region": info.region,
            "InstanceId": instance_id, "RecoveryType": recovery, "UploadType": upload, "BackupFiles": files,
            "DBRename": [], "created_at": self.ctx.now(), "started_at": None, "incrementals": [],
        }  # fmt: skip
        self.ctx.store.put("migration", key(info.region, migration_id), record)
        # Named by what the client chose, so a duplicated create shows up in the audit.
        resource = f"migration:{instance_id}/{params['MigrationName']}"
        return Outcome({"BackupMigrationId": migration_id}, resource=resource, changed=True)

    def modify_backup_migration(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        record = self._migration(info.region, params["InstanceId"], params["BackupMigrationId"])
        if self._migration_status(record)[0] != 2:
            raise ApiError(
                "ResourceUnavailable.CosStatusErr",
                "The task can only be modified before it starts.",
                "任务开始后不能再修改。",
            )
        changes: dict[str, Any] = {}
        if "MigrationName" in params:
            _check_name(params["MigrationName"], "InvalidParameterValue.MigrationNameIsIllegal", "migration")
            changes["MigrationName"] = params["MigrationName"]
        if "RecoveryType" in params:
            changes["RecoveryType"] = _one_of(
                params["RecoveryType"], ("FULL", "FULL_LOG", "FULL_DIFF"), "RecoveryType"
            )
        if "UploadType" in params:
            changes["UploadType"] = _one_of(params["UploadType"], ("COS_URL", "COS_UPLOAD"), "UploadType")
        if "BackupFiles" in params:
            changes["BackupFiles"] = _one_file(
                params["BackupFiles"], changes.get("UploadType", record["UploadType"])
            )
        if "DBRename" in params:
            changes["DBRename"] = [_rename(item) for item in params["DBRename"]]
        changed = any(record.get(name) != value for name, value in changes.items())
        self.ctx.store.put("migration", key(info.region, record["MigrationId"]), {**record, **changes})
        return Outcome({"BackupMigrationId": record["MigrationId"]}, changed=changed)

    def start_backup_migration(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        record = self._migration(info.region, params["InstanceId"], params["BackupMigrationId"])
        if self._migration_status(record)[0] != 2:
            raise ApiError(
                "ResourceUnavailable.CosStatusErr",
                "The backup import task has already been started.",
                "备份导入任务已经开始。",
            )
        if not record["BackupFiles"]:
            raise ApiError("ResourceNotFound.BackupNotFound", "The task has no backup file.", "任务没有备份文件。")
        flow_id = self._new_flow(info.region, "migration", record["MigrationId"])
        self.ctx.store.put(
            "migration", key(info.region, record["MigrationId"]), {**record, "started_at": self.ctx.now()}
        )
        return Outcome({"FlowId": flow_id}, resource=f"migration:{record['MigrationId']}", changed=True)

    def describe_backup_migration(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        instance_id = params["InstanceId"]
        self._instance(info.region, instance_id)
        now = self.ctx.now()
        records = [
            record
            for record in self.ctx.store.where("migration", "InstanceId", instance_id)
            if record["Region"] == info.region
            and info.listed(record["created_at"], now)
        ]
        views = _filter_tasks(
            [self._task_view(record, False, info.language) for record in records], params, "BackupMigrationId"
        )
        if "MigrationName" in params:
            views = [view for view in views if view["MigrationName"] == params["MigrationName"]]
        return Outcome({"TotalCount": len(views), "BackupMigrationSet": _page(views, params)})

    def delete_backup_migration(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        record = self._migration(info.region, params["InstanceId"], params["BackupMigrationId"])
        if self._migration_status(record)[0] in (7, 12):
            raise ApiError(
                "ResourceUnavailable.CosStatusErr",
                "A running task cannot be deleted.",
                "运行中的任务不能删除。",
            )
        for increment in record["incrementals"]:
            self.ctx.store.delete("incremental", key(info.region, increment))
        self.ctx.store.delete("migration", key(info.region, record["MigrationId"]))
        return Outcome({}, resource=f"migration:{record['MigrationId']}", changed=True)

    def describe_upload_backup_info(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        record = self._migration(info.region, params["InstanceId"], params["BackupMigrationId"])
        if record["UploadType"] != "COS_UPLOAD":
            raise ApiError(
                "UnsupportedOperation.UploadTypeError",
                "The task does not use COS_UPLOAD.",
                "任务的上传类型不是 COS_UPLOAD。",
            )
        now = int(self.ctx.now())
        return Outcome({
            "BucketName": f"sandbox-migration-{APP_ID}", "Region": info.region,
            "Path": f"{APP_ID}/sqlserver/{record['InstanceId']}/migration/backup/{record['MigrationId']}/",
            "TmpSecretId": "AKIDsandboxTemporary", "TmpSecretKey": "sandboxTemporaryKey",
            "XCosSecurityToken": "sandbox-token", "CosSecurityToken": "sandbox-token",
            "StartTime": str(now), "ExpiredTime": str(now + 500),
        })  # fmt: skip

    # ------------------------------------------------------------- incrementals

    def _incremental(
        self, params: Mapping[str, Any], info: RequestInfo
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        parent = self._migration(info.region, params["InstanceId"], params["BackupMigrationId"])
        increment_id = params["IncrementalMigrationId"]
        if increment_id not in parent["incrementals"]:
            raise ApiError(
                "ResourceNotFound.IncreBackupMigrationNotExist",
                f"The incremental import task {increment_id} does not exist.", f"增量导入任务 {increment_id} 不存在。")
        return parent, self.ctx.store.get("incremental", key(info.region, increment_id)) or {}

    def create_incremental_migration(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        parent = self._migration(info.region, params["InstanceId"], params["BackupMigrationId"])
        if parent["RecoveryType"] == "FULL":
            raise ApiError(
                "ResourceUnavailable.BackupMigrationRecoveryTypeErr",
                "A FULL import task takes no incremental backup.", "恢复类型为 FULL 的导入任务不能导入增量备份。")
        if self._migration_status(parent)[0] in (9, 10):
            raise ApiError(
                "ResourceUnavailable.CosStatusErr",
                "The backup import task has ended.",
                "备份导入任务已经结束。",
            )
        if any(self._incremental_status(item)[0] in (2, 12) for item in self._incrementals(parent)):
            raise ApiError(
                "ResourceInUse.IncrementalMigrationExist",
                "An incremental import task is already waiting or running.", "已有增量导入任务在等待或运行中。")
        recovery = _one_of(params.get("IsRecovery", "NO"), ("YES", "NO"), "IsRecovery")
        files = _one_file(params.get("BackupFiles") or [], parent["UploadType"])
        increment_id = self.new_id("mssql-incremental-migration", "incremental", info.region)
        record = {
            "MigrationId": increment_id, "Parent": parent["MigrationId"], "Region": info.region,
            "InstanceId": parent["InstanceId"], "RecoveryType": parent["RecoveryType"],
            "UploadType": parent["UploadType"], "BackupFiles": files, "IsRecovery": recovery,
            "created_at": self.ctx.now(), "started_at": None,
        }  # fmt: skip
        self.ctx.store.put("incremental", key(info.region, increment_id), record)
        parent_key = key(info.region, parent["MigrationId"])
        self.ctx.store.put(
            "migration", parent_key, {**parent, "incrementals": [*parent["incrementals"], increment_id]}
        )
        resource = f"incremental:{parent['MigrationId']}/{','.join(files)}"
        return Outcome({"IncrementalMigrationId": increment_id}, resource=resource, changed=True)

    def start_incremental_migration(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        parent, record = self._incremental(params, info)
        if self._incremental_status(record)[0] != 2:
            raise ApiError(
                "ResourceUnavailable.CosStatusErr",
                "The incremental import task has already been started.",
                "增量导入任务已经开始。",
            )
        if self._migration_status(parent)[0] != 8:
            raise ApiError(
                "ResourceUnavailable.CosStatusErr",
                "The backup import task is not waiting for an incremental backup.",
                "备份导入任务不在等待增量备份的状态。",
            )
        if not record["BackupFiles"]:
            raise ApiError("ResourceNotFound.BackupNotFound", "The task has no backup file.", "任务没有备份文件。")
        flow_id = self._new_flow(info.region, "incremental", record["MigrationId"])
        self.ctx.store.put(
            "incremental", key(info.region, record["MigrationId"]), {**record, "started_at": self.ctx.now()}
        )
        return Outcome({"FlowId": flow_id}, resource=f"incremental:{record['MigrationId']}", changed=True)

    def describe_incremental_migration(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        parent = self._migration(info.region, params["InstanceId"], params["BackupMigrationId"])
        now = self.ctx.now()
        views = [
            self._task_view(record, True, info.language)
            for record in self._incrementals(parent)
            if info.listed(record["created_at"], now)
        ]
        views = _filter_tasks(views, params, "IncrementalMigrationId")
        return Outcome({"TotalCount": len(views), "IncrementalMigrationSet": _page(views, params)})

    def delete_incremental_migration(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        parent, record = self._incremental(params, info)
        if self._incremental_status(record)[0] == 12:
            raise ApiError(
                "ResourceUnavailable.CosStatusErr",
                "A running task cannot be deleted.",
                "运行中的任务不能删除。",
            )
        increment_id = params["IncrementalMigrationId"]
        self.ctx.store.delete("incremental", key(info.region, increment_id))
        remaining = [item for item in parent["incrementals"] if item != increment_id]
        self.ctx.store.put(
            "migration", key(info.region, parent["MigrationId"]), {**parent, "incrementals": remaining}
        )
        return Outcome({}, resource=f"incremental:{increment_id}", changed=True)


# ---------------------------------------------------------------------- helpers


def _check_name(name: str, code: str, what: str) -> None:
    what_zh = {"backup": "备份", "migration": "迁移任务"}[what]
    if not NAME.match(name):
        raise ApiError(
            code,
            f"The {what} name may hold only letters, digits, '-' and '_' "
            "(at most 60, the first a letter or digit).",
            f"{what_zh}名称只能包含字母、数字、'-' 和 '_'（最多 60 个字符，首字符为字母或数字）。",
        )


def _one_of(value: str, allowed: Iterable[str], name: str) -> str:
    if value not in allowed:
        raise ApiError(
            "InvalidParameterValue",
            f"`{name}` must be one of {', '.join(allowed)}.",
            f"`{name}` 必须是 {'、'.join(allowed)} 之一。",
        )
    return value


def _one_file(files: list[str], upload_type: str) -> list[str]:
    if len(files) > 1:
        raise ApiError("InvalidParameter.InputIllegal", "Only one backup file is supported.", "仅支持一个备份文件。")
    for name in files:
        if upload_type == "COS_URL" and not name.startswith(("http://", "https://")):
            raise ApiError(
                "InvalidParameter.InputIllegal",
                "With COS_URL, BackupFiles must be COS URLs.",
                "上传类型为 COS_URL 时，BackupFiles 必须是 COS 地址。",
            )
        if upload_type == "COS_UPLOAD" and "/" in name:
            raise ApiError(
                "InvalidParameter.InputIllegal",
                "With COS_UPLOAD, BackupFiles must be file names.",
                "上传类型为 COS_UPLOAD 时，BackupFiles 必须是文件名。",
            )
    return files


def _rename(item: Mapping[str, str]) -> dict[str, str]:
    old, new = item.get("OldName", ""), item.get("NewName", "")
    if not old and not new:
        raise ApiError(
            "InvalidParameter.InputIllegal",
            "DBRename needs OldName or NewName.",
            "DBRename 需要 OldName 或 NewName。",
        )
    return {"OldName": old, "NewName": new or old}


def _step_status(status: int, number: int) -> int:
    """Step status (1 success, 2 failed, 3 running, 4 not run) of step 1-3 of a task."""
    if status in (7, 12):
        return {1: 1, 2: 3}.get(number, 4)
    if status == 10:
        return 2 if number == 2 else 1 if number == 1 else 4
    return 1


def _limit(params: Mapping[str, Any], default: int) -> int:
    limit = params.get("Limit", default)
    if not 1 <= limit <= 100:
        raise ApiError("InvalidParameterValue", "`Limit` must be between 1 and 100.", "`Limit` 必须在 1 到 100 之间。")
    return int(limit)


def _filter_tasks(
    views: list[dict[str, Any]], params: Mapping[str, Any], id_param: str
) -> list[dict[str, Any]]:
    if id_param in params:
        views = [view for view in views if view["MigrationId"] == params[id_param]]
    if "BackupFileName" in params:
        views = [
            view for view in views if any(params["BackupFileName"] in name for name in view["BackupFiles"])
        ]
    for name in ("RecoveryType", "UploadType"):
        if name in params:
            views = [view for view in views if view[name] == params[name]]
    if params.get("StatusSet"):
        views = [view for view in views if view["Status"] in params["StatusSet"]]
    order = {"name": "MigrationName", "startTime": "StartTime", "endTime": "EndTime"}.get(
        params.get("OrderBy", "createTime"), "CreateTime"
    )
    views.sort(
        key=lambda view: (view[order], view["MigrationId"]), reverse=params.get("OrderByType") == "desc"
    )
    return views


def _page(views: list[dict[str, Any]], params: Mapping[str, Any]) -> list[dict[str, Any]]:
    # Offset is documented as "页数"; the sandbox reads it as a row offset (unverified).
    limit = params.get("Limit", 100)
    if not 1 <= limit <= 100:
        raise ApiError("InvalidParameterValue", "`Limit` must be between 1 and 100.", "`Limit` 必须在 1 到 100 之间。")
    offset = params.get("Offset", 0)
    return views[offset : offset + limit]
