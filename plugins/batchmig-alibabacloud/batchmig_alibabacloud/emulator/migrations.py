"""The emulated RDS migration tasks: the actions, their checks and the task state machine.

A task's state is computed lazily from stored wall-clock times (``ctx.cloud_seconds_since``)::

    FULL, IsOnlineDB=True    Running --restore_seconds--> Success   (Failed: a file named *fail*)
    FULL, IsOnlineDB=False   Running --restore_seconds--> Waiting --CreateOnlineDatabaseTask-->
                             Running --online_seconds--> Success
    UPDF                     Running --log_seconds--> Success        (Failed: a file named *fail*)

A chain takes one UPDF task at a time, only while its FULL task is Waiting, and goes
online only then. ``DescribeMigrateTasks`` lists FULL and UPDF tasks of the instance
created in the asked range within the last week, newest first, and leaves out what
the sandbox's ``list_lag`` fault says is not listed yet; ``DescribeMigrateTaskById``
does not lag. ``CreateOnlineDatabaseTask`` honours ``ClientToken``: a repeat answers
again without a second effect.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from batchmig.emulator import EmulatorReply, RequestInfo, SandboxContext

from batchmig_alibabacloud.emulator.answers import answer, error_answer

__all__ = ["MUTATING", "READS", "Migrations"]

MUTATING = frozenset({"CreateMigrateTask", "CreateOnlineDatabaseTask"})
READS = frozenset({"DescribeMigrateTasks", "DescribeMigrateTaskById", "DescribeDBInstanceAttribute"})

WEEK = 7 * 24 * 3600
POSITION = re.compile(r"^[^:\s]+\.aliyuncs\.com:[a-z0-9][a-z0-9-]{1,61}[a-z0-9]:\S+$")
MINUTE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}Z$")

Params = Mapping[str, str]


class RefusalError(Exception):
    """An action refused with the cloud's error answer."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.reply = EmulatorReply(error_answer(status, code, message))


def _required(params: Params, *names: str) -> None:
    for name in names:
        if not params.get(name):
            raise RefusalError(400, "MissingParameter", f'The input parameter "{name}" that is mandatory '
                                                        "for processing this request is not supplied.")


def _invalid(name: str, why: str) -> RefusalError:
    return RefusalError(400, "InvalidParameter", f'The specified parameter "{name}" is not valid: {why}.')


def _stamp(epoch: float | None) -> str:
    return "" if epoch is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


class Migrations:
    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.restore_seconds = float(ctx.options.get("restore_seconds", 900))
        self.log_seconds = float(ctx.options.get("log_seconds", 120))
        self.online_seconds = float(ctx.options.get("online_seconds", 120))
        self.instances: Mapping[str, Mapping[str, Any]] = dict(ctx.options.get("instances", {}))

    def answer(self, info: RequestInfo) -> EmulatorReply:
        handlers: dict[str, Callable[[RequestInfo, Params], EmulatorReply]] = {
            "CreateMigrateTask": self._create_task,
            "CreateOnlineDatabaseTask": self._bring_online,
            "DescribeMigrateTasks": self._list_tasks,
            "DescribeMigrateTaskById": self._describe_task,
            "DescribeDBInstanceAttribute": self._describe_instance,
        }
        try:
            return handlers[info.action](info, info.params)
        except RefusalError as refusal:
            return refusal.reply

    # ------------------------------------------------------------ instances

    def _instance(self, params: Params) -> dict[str, Any]:
        _required(params, "DBInstanceId")
        instance_id = params["DBInstanceId"]
        if not instance_id.startswith("rm-") or "missing" in instance_id:
            raise RefusalError(404, "Forbidden.InstanceNotFound", "The specified DB instance does not exist.")
        return {
            "DBInstanceId": instance_id, "Engine": "SQLServer",
            "EngineVersion": "2008r2" if "2008r2" in instance_id else "2019_std_ha",
            "DBInstanceStatus": "Running", "DBInstanceType": "Primary", "DBInstanceClass": "mssql.x4.medium.s2",
            "DBInstanceDescription": instance_id, "DBInstanceStorage": 500, "DBInstanceStorageType": "cloud_essd",
            "DBInstanceMemory": 8192, "DBInstanceCPU": "4", "Category": "HighAvailability", "PayType": "Postpaid",
            "RegionId": "cn-hangzhou", "ZoneId": "cn-hangzhou-h", "InstanceNetworkType": "VPC",
            "ConnectionString": f"{instance_id}.sqlserver.rds.aliyuncs.com", "Port": "1433",
            "LockMode": "Unlock", "LockReason": "", "MaxConnections": 10000, "MaxIOPS": 20000,
            "CreationTime": "2026-01-05T08:00:00Z", "ExpireTime": "", "Collation": "Chinese_PRC_CI_AS",
            "ResourceGroupId": "rg-acfmy000000000", "ReadOnlyDBInstanceIds": {"ReadOnlyDBInstanceId": []},
            **self.instances.get(instance_id, {}),
        }

    def _describe_instance(self, info: RequestInfo, params: Params) -> EmulatorReply:
        return EmulatorReply(answer({"Items": {"DBInstanceAttribute": [self._instance(params)]}}))

    # ---------------------------------------------------------------- tasks

    def _status(self, task: Mapping[str, Any]) -> tuple[str, float | None]:
        """(Status, EndTime) of a task now."""
        created = float(task["created"])
        failing = "fail" in task["file"].lower()
        if task["BackupMode"] == "UPDF" or task["online"]:
            took = self.log_seconds if task["BackupMode"] == "UPDF" else self.restore_seconds
            if self.ctx.cloud_seconds_since(created) < took:
                return "Running", None
            return ("Failed" if failing else "Success"), created + took / self.ctx.time_scale
        if self.ctx.cloud_seconds_since(created) < self.restore_seconds:
            return "Running", None
        if failing:
            return "Failed", created + self.restore_seconds / self.ctx.time_scale
        onlined = task.get("onlined")
        if onlined is None:
            return "Waiting", None
        if self.ctx.cloud_seconds_since(float(onlined)) < self.online_seconds:
            return "Running", None
        return "Success", float(onlined) + self.online_seconds / self.ctx.time_scale

    def _view(self, task: Mapping[str, Any]) -> dict[str, Any]:
        status, ended = self._status(task)
        if status == "Success":
            checked = "synchronously" if task.get("check") == "SyncExecuteDBCheck" else "asynchronously"
            description = f"Success to DBCC checkdb {checked}" if task["BackupMode"] == "FULL" else "Success"
        elif status == "Failed":
            description = f"Failed to restore the backup file {unquote(task['file'])}: it is damaged or not a backup"
        elif status == "Waiting":
            description = "Waiting for incremental or log backup files"
        else:
            description = ""
        return {"MigrateTaskId": task["MigrateTaskId"], "DBName": task["DBName"], "BackupMode": task["BackupMode"],
                "Status": status, "CreateTime": _stamp(task["created"]), "EndTime": _stamp(ended),
                "IsDBReplaced": "True" if status == "Success" and task["BackupMode"] == "FULL" else "False",
                "Description": description}

    def _task(self, instance_id: str, task_id: str) -> dict[str, Any]:
        task = self.ctx.store.get("task", task_id)
        if task is None or task["DBInstanceId"] != instance_id:
            raise RefusalError(404, "InvalidMigrateTaskId.NotFound", f"The migration task {task_id} does not exist.")
        return task

    def _tasks(self, instance_id: str) -> list[dict[str, Any]]:
        return list(self.ctx.store.where("task", "DBInstanceId", instance_id))

    def _file(self, params: Params, version: str) -> str:
        position, urls = params.get("OssObjectPositions", ""), params.get("OSSUrls", "")
        if version.startswith("2008r2"):
            if not urls:
                raise _invalid("OSSUrls", "SQL Server 2008 R2 imports backup files only by OSSUrls")
            return urls
        if not position:
            raise _invalid("OssObjectPositions", "it is required for SQL Server versions after 2008 R2")
        if not POSITION.match(position):
            raise _invalid("OssObjectPositions", "the format is endpoint:bucket:key")
        return position

    def _create_task(self, info: RequestInfo, params: Params) -> EmulatorReply:
        instance = self._instance(params)
        _required(params, "DBName", "BackupMode", "IsOnlineDB")
        mode, online = params["BackupMode"], params["IsOnlineDB"]
        if mode not in ("FULL", "UPDF"):
            raise _invalid("BackupMode", "it is FULL or UPDF")
        if online not in ("True", "False"):
            raise _invalid("IsOnlineDB", "it is True or False")
        if instance["EngineVersion"].startswith("2008r2") and online != "True":
            raise _invalid("IsOnlineDB", "SQL Server 2008 R2 migrates only with IsOnlineDB=True")
        if mode == "UPDF" and online == "True":
            raise _invalid("IsOnlineDB", "an UPDF task cannot bring the database online; use CreateOnlineDatabaseTask")
        file = self._file(params, instance["EngineVersion"])
        instance_id, database = instance["DBInstanceId"], params["DBName"]
        if mode == "FULL":
            if any(t["DBName"] == database and t["BackupMode"] == "FULL" and self._status(t)[0] != "Failed"
                   for t in self._tasks(instance_id)):
                raise RefusalError(400, "InvalidDBName.Duplicate", f"The database {database} already exists.")
            resource = f"{instance_id}/{database}/FULL"
        else:
            _required(params, "MigrateTaskId")
            full = self._task(instance_id, params["MigrateTaskId"])
            if full["BackupMode"] != "FULL" or full["DBName"] != database or full["online"]:
                raise _invalid("MigrateTaskId", "it is not the FULL task (IsOnlineDB=False) of this database")
            busy = [t for t in self._tasks(instance_id) if t.get("full") == full["MigrateTaskId"]
                    and self._status(t)[0] == "Running"]
            if self._status(full)[0] != "Waiting" or busy:
                raise RefusalError(400, "IncorrectMigrateTaskStatus",
                              f"The migration task {full['MigrateTaskId']} is not waiting for a backup file.")
            resource = f"{instance_id}/{database}/UPDF/{file}"
        task_id = str(100_000_000 + self.ctx.store.next_id("task"))
        task = {"MigrateTaskId": task_id, "DBInstanceId": instance_id, "DBName": database, "BackupMode": mode,
                "online": online == "True", "file": file, "created": self.ctx.now(),
                "check": params.get("CheckDBMode", "AsyncExecuteDBCheck"), "full": params.get("MigrateTaskId")}
        self.ctx.store.put("task", task_id, task)
        body = {"DBInstanceId": instance_id, "DBName": database, "BackupMode": mode, "MigrateTaskId": task_id,
                "TaskId": str(900_000_000 + self.ctx.store.next_id("job"))}
        return EmulatorReply(answer(body), resource=resource, changed=True)

    def _bring_online(self, info: RequestInfo, params: Params) -> EmulatorReply:
        instance = self._instance(params)
        _required(params, "DBName", "MigrateTaskId")
        token = params.get("ClientToken")
        if token and self.ctx.store.get("online-token", token) is not None:
            return EmulatorReply(answer({}))  # the same request again: no second effect
        full = self._task(instance["DBInstanceId"], params["MigrateTaskId"])
        if full["DBName"] != params["DBName"] or full["BackupMode"] != "FULL" or full["online"]:
            raise _invalid("MigrateTaskId", "it is not the FULL task (IsOnlineDB=False) of this database")
        check = params.get("CheckDBMode", "AsyncExecuteDBCheck")
        if check not in ("AsyncExecuteDBCheck", "SyncExecuteDBCheck"):
            raise _invalid("CheckDBMode", "it is AsyncExecuteDBCheck or SyncExecuteDBCheck")
        busy = [t for t in self._tasks(instance["DBInstanceId"]) if t.get("full") == full["MigrateTaskId"]
                and self._status(t)[0] == "Running"]
        if self._status(full)[0] != "Waiting" or busy:
            raise RefusalError(400, "IncorrectMigrateTaskStatus",
                          f"The migration task {full['MigrateTaskId']} is not waiting for a backup file.")
        self.ctx.store.put("task", full["MigrateTaskId"], {**full, "onlined": self.ctx.now(), "check": check})
        if token:
            self.ctx.store.put("online-token", token, {"MigrateTaskId": full["MigrateTaskId"]})
        resource = f"{full['DBInstanceId']}/{full['DBName']}/online"
        return EmulatorReply(answer({}), resource=resource, changed=True)

    def _describe_task(self, info: RequestInfo, params: Params) -> EmulatorReply:
        instance = self._instance(params)
        _required(params, "MigrateTaskId")
        task = self._task(instance["DBInstanceId"], params["MigrateTaskId"])
        return EmulatorReply(answer({**self._view(task), "DBInstanceName": instance["DBInstanceId"]}))

    def _list_tasks(self, info: RequestInfo, params: Params) -> EmulatorReply:
        instance = self._instance(params)
        _required(params, "StartTime", "EndTime")
        bounds = []
        for name in ("StartTime", "EndTime"):
            if not MINUTE.match(params[name]):
                raise _invalid(name, "the format is yyyy-MM-ddTHH:mmZ (UTC)")
            bounds.append(calendar.timegm(time.strptime(params[name], "%Y-%m-%dT%H:%MZ")))
        start, end = bounds
        if end <= start:
            raise _invalid("EndTime", "it must be later than StartTime")
        size, number = params.get("PageSize", "30"), params.get("PageNumber", "1")
        if not size.isdigit() or not 30 <= int(size) <= 100:
            raise _invalid("PageSize", "it is 30 to 100")
        if not number.isdigit() or int(number) < 1:
            raise _invalid("PageNumber", "it is at least 1")
        now = self.ctx.now()
        tasks = [t for t in self._tasks(instance["DBInstanceId"])
                 if start <= t["created"] < end + 60 and now - t["created"] < WEEK and info.listed(t["created"], now)]
        tasks.sort(key=lambda t: (t["created"], t["MigrateTaskId"]), reverse=True)
        first = (int(number) - 1) * int(size)
        page = [self._view(task) for task in tasks[first:first + int(size)]]
        return EmulatorReply(answer({
            "DBInstanceId": instance["DBInstanceId"], "PageNumber": int(number), "PageRecordCount": len(page),
            "TotalRecordCount": len(tasks), "Items": {"MigrateTask": page},
        }))
