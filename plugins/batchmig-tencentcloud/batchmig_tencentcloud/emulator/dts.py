"""The sandbox's DTS API: migration jobs and their checks.

A job record keeps the wall-clock times of its check, start, completion and stop;
its status is computed from them when asked (durations are sandbox options, in
cloud seconds):

    1 creating ─check→ 3 ─check_seconds (60)→ 4 passed | 5 failed
    4 ─start→ (6 until ExpectTime, RunMode 2) 7 ─migrate_seconds (900)→
        9 success (MigrateType 1, 2) | 8 ready to complete (MigrateType 3) | 10 failed
    8 ─complete→ 12 ─complete_seconds (60)→ 9
    7/8 ─stop→ 11 ─stop_seconds (30)→ 10

The check fails when the job's name or DatabaseInfo contains ``sandbox-fail-check``;
the migration fails when they contain ``sandbox-fail-migration``. Wrong-state calls
answer ``FailedOperation.StatusInConflict``; modifying a job voids its check.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from batchmig.emulator import RequestInfo

from batchmig_tencentcloud.emulator.base import Outcome, TencentEmulator, cloud_time, key, parse_cloud_time
from batchmig_tencentcloud.emulator.dts_schema import ACCESS_TYPES, ACTIONS, DATABASE_TYPES, RATE_LIMITS
from batchmig_tencentcloud.emulator.params import ApiError

__all__ = ["DtsEmulator"]

FAIL_CHECK = "sandbox-fail-check"
FAIL_MIGRATION = "sandbox-fail-migration"
CHECKABLE = frozenset({1, 2, 4, 5, 10})
NOT_DELETABLE = frozenset({3, 7, 8, 11, 12})
ORDER = {"JobId": "JobId", "Status": "Status", "JobName": "JobName", "CreateTime": "CreateTime"}


class DtsEmulator(TencentEmulator):
    """DTS API 2018-03-30 on loopback."""

    service = "dts"
    version = "2018-03-30"
    actions = ACTIONS
    rate_limits = RATE_LIMITS

    # ------------------------------------------------------------------- state

    def _job(self, region: str, job_id: str) -> dict[str, Any]:
        job = self.ctx.store.get("job", key(region, job_id))
        if job is None:
            raise ApiError("ResourceNotFound.JobNotExist", f"The migration job {job_id} does not exist.")
        return job

    def _save(self, job: Mapping[str, Any]) -> None:
        self.ctx.store.put("job", key(job["Region"], job["JobId"]), dict(job))

    def _status(self, job: Mapping[str, Any]) -> tuple[int, str, float | None]:
        """(Status, error log, end time) computed from the job's times."""
        if job.get("stopped_at") is not None:
            if not self.elapsed(job["stopped_at"], "stop_seconds", 30):
                return 11, "", None
            return 10, "The task was stopped.", self.finished_at(job["stopped_at"], "stop_seconds", 30)
        if job.get("completed_at") is not None:
            if not self.elapsed(job["completed_at"], "complete_seconds", 60):
                return 12, "", None
            return 9, "", self.finished_at(job["completed_at"], "complete_seconds", 60)
        if job.get("started_at") is not None:
            begin = max(job["started_at"], job.get("expect_at") or 0.0)
            if self.ctx.now() < begin:
                return 6, "", None
            if not self.elapsed(begin, "migrate_seconds", 900):
                return 7, "", None
            end = self.finished_at(begin, "migrate_seconds", 900)
            if _mentions(job, FAIL_MIGRATION):
                return 10, "Full data migration failed: the source database went offline.", end
            return (8, "", None) if job["MigrateOption"].get("MigrateType") == 3 else (9, "", end)
        if job.get("checked_at") is not None:
            if not self.elapsed(job["checked_at"], "check_seconds", 60):
                return 3, "", None
            return (5 if _mentions(job, FAIL_CHECK) else 4), "", None
        return 1, "", None

    def _view(self, job: Mapping[str, Any]) -> dict[str, Any]:
        status, error_log, end = self._status(job)
        progress = {7: "50", 8: "100", 9: "100", 12: "100"}.get(status, "0")
        step_status = {7: 3, 8: 3, 9: 1, 10: 2, 11: 3, 12: 3}
        return {
            "JobId": job["JobId"], "JobName": job["JobName"], "MigrateOption": job["MigrateOption"],
            "SrcDatabaseType": job["SrcDatabaseType"], "SrcAccessType": job["SrcAccessType"],
            "SrcInfo": {**job["SrcInfo"], "Password": ""}, "DstDatabaseType": job["DstDatabaseType"],
            "DstAccessType": job["DstAccessType"], "DstInfo": {**job["DstInfo"], "Password": ""},
            "DatabaseInfo": job.get("DatabaseInfo") or "[]", "CreateTime": cloud_time(job["created_at"]),
            "StartTime": cloud_time(job.get("started_at")), "EndTime": cloud_time(end), "Status": status,
            "Detail": {
                "StepAll": 3, "StepNow": 0 if status < 6 else 2, "Progress": progress,
                "CurrentStepProgress": progress, "MasterSlaveDistance": 0, "SecondsBehindMaster": 0,
                "StepInfo": [] if status < 6 else [
                    {"StepNo": 1, "StepName": "Structure migration", "StepId": "structure", "Status": 1,
                     "StartTime": cloud_time(job.get("started_at"))},
                    {"StepNo": 2, "StepName": "Data migration", "StepId": "data",
                     "Status": step_status.get(status, 0), "StartTime": cloud_time(job.get("started_at"))},
                ],
            },
            "ErrorInfo": [{"ErrorLog": error_log, "HelpDoc": ""}] if status == 10 and error_log else [],
            "Tags": job.get("Tags") or [], "SrcInfoMulti": [],
        }  # fmt: skip

    # ---------------------------------------------------------------- creation

    def create_migrate_job(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        _one_of(params["SrcDatabaseType"], DATABASE_TYPES, "SrcDatabaseType")
        _one_of(params["DstDatabaseType"], (*DATABASE_TYPES, "cynosdbmysql"), "DstDatabaseType")
        _one_of(params["SrcAccessType"], ACCESS_TYPES, "SrcAccessType")
        _one_of(params["DstAccessType"], ("cdb",), "DstAccessType")
        option = _option(params["MigrateOption"])
        _database_info(params.get("DatabaseInfo"), option)
        job_id = self.new_id("dts", "job", info.region)
        job = {
            "JobId": job_id, "JobName": params["JobName"], "Region": info.region, "MigrateOption": option,
            "SrcDatabaseType": params["SrcDatabaseType"], "SrcAccessType": params["SrcAccessType"],
            "SrcInfo": params["SrcInfo"], "DstDatabaseType": params["DstDatabaseType"],
            "DstAccessType": params["DstAccessType"], "DstInfo": params["DstInfo"],
            "DatabaseInfo": params.get("DatabaseInfo", ""), "Tags": params.get("Tags", []),
            "created_at": self.ctx.now(), "expect_at": _expect_at(option),
        }  # fmt: skip
        self._save(job)
        # Named by the JobName the client chose, so a duplicated create shows in the audit.
        return Outcome({"JobId": job_id}, resource=f"job-name:{params['JobName']}", changed=True)

    def modify_migrate_job(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        job = self._job(info.region, params["JobId"])
        status = self._status(job)[0]
        if status not in {1, 2, 4, 5, 10}:
            raise ApiError(
                "FailedOperation.StatusInConflict", f"A job in status {status} cannot be modified."
            )
        changes = {name: value for name, value in params.items() if name != "JobId"}
        if "SrcAccessType" in changes:
            _one_of(changes["SrcAccessType"], ACCESS_TYPES, "SrcAccessType")
        if "MigrateOption" in changes:
            changes["MigrateOption"] = _option(changes["MigrateOption"])
            changes["expect_at"] = _expect_at(changes["MigrateOption"])
        _database_info(
            changes.get("DatabaseInfo", job.get("DatabaseInfo")),
            changes.get("MigrateOption", job["MigrateOption"]),
        )
        # Any modification voids a passed check; the job goes back to "created".
        reset = {"checked_at": None, "started_at": None, "completed_at": None, "stopped_at": None}
        self._save({**job, **changes, **reset})
        return Outcome({}, resource=f"job:{job['JobId']}", changed=True)

    # ------------------------------------------------------------------ checks

    def create_migrate_check_job(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        job = self._job(info.region, params["JobId"])
        status = self._status(job)[0]
        if status not in CHECKABLE:
            raise ApiError("FailedOperation.StatusInConflict", f"A job in status {status} cannot be checked.")
        reset = {"checked_at": self.ctx.now(), "started_at": None, "completed_at": None, "stopped_at": None}
        self._save({**job, **reset})
        return Outcome({}, resource=f"check:{job['JobId']}", changed=True)

    def describe_migrate_check_job(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        job = self._job(info.region, params["JobId"])
        if job.get("checked_at") is None:
            payload = {
                "Status": "unavailable",
                "ErrorCode": 0,
                "ErrorMessage": "",
                "Progress": "0",
                "CheckFlag": 3,
            }
        elif not self.elapsed(job["checked_at"], "check_seconds", 60):
            payload = {
                "Status": "running",
                "ErrorCode": 0,
                "ErrorMessage": "",
                "Progress": "50",
                "CheckFlag": 3,
            }
        elif _mentions(job, FAIL_CHECK):
            message = "The selected databases or tables do not exist on the source; select them again."
            payload = {
                "Status": "finished",
                "ErrorCode": -1,
                "ErrorMessage": message,
                "Progress": "100",
                "CheckFlag": 0,
            }
        else:
            payload = {
                "Status": "finished",
                "ErrorCode": 0,
                "ErrorMessage": "ok",
                "Progress": "100",
                "CheckFlag": 1,
            }
        return Outcome(payload)

    # --------------------------------------------------------------- lifecycle

    def _transition(
        self, info: RequestInfo, job_id: str, allowed: frozenset[int], field: str, verb: str
    ) -> Outcome:
        job = self._job(info.region, job_id)
        status = self._status(job)[0]
        if status not in allowed:
            raise ApiError("FailedOperation.StatusInConflict", f"A job in status {status} cannot be {verb}.")
        self._save({**job, field: self.ctx.now()})
        return Outcome({}, resource=f"job:{job_id}", changed=True)

    def start_migrate_job(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        # Only after a passed check (status 4), as the API documentation demands.
        return self._transition(
            info, params["JobId"], frozenset({4}), "started_at", "started before a passed check"
        )

    def complete_migrate_job(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        if params.get("CompleteMode", "waitForSync") not in ("waitForSync", "immediately"):
            raise ApiError("InvalidParameter", "`CompleteMode` must be waitForSync or immediately.")
        return self._transition(info, params["JobId"], frozenset({8}), "completed_at", "completed")

    def stop_migrate_job(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        return self._transition(info, params["JobId"], frozenset({7, 8}), "stopped_at", "stopped")

    def delete_migrate_job(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        job = self._job(info.region, params["JobId"])
        status = self._status(job)[0]
        if status in NOT_DELETABLE:
            raise ApiError("FailedOperation.StatusInConflict", f"A job in status {status} cannot be deleted.")
        self.ctx.store.delete("job", key(info.region, job["JobId"]))
        return Outcome({}, resource=f"job:{job['JobId']}", changed=True)

    # ----------------------------------------------------------------- listing

    def describe_migrate_jobs(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        limit, offset = params.get("Limit", 20), params.get("Offset", 0)
        if not 1 <= limit <= 100:
            raise ApiError(
                "InvalidParameterValue.InvalidParameterValueError", "`Limit` must be between 1 and 100."
            )
        jobs = [job for job in self.ctx.store.values("job") if job["Region"] == info.region]
        if "JobId" in params:
            jobs = [job for job in jobs if job["JobId"] == params["JobId"]]
        if "JobName" in params:  # matched as a substring, as the console's search does
            jobs = [job for job in jobs if params["JobName"] in job["JobName"]]
        for tag in params.get("TagFilters", []):
            jobs = [job for job in jobs if _has_tag(job, tag)]
        views = [self._view(job) for job in jobs]
        order = ORDER.get(params.get("Order", "CreateTime"))
        if order is None:
            raise ApiError(
                "InvalidParameterValue.InvalidParameterValueError", "`Order` is not a sortable field."
            )
        views.sort(
            key=lambda view: (view[order], view["JobId"]), reverse=params.get("OrderSeq", "DESC") == "DESC"
        )
        return Outcome({"TotalCount": len(views), "JobList": views[offset : offset + limit]})


# ---------------------------------------------------------------------- helpers


def _mentions(job: Mapping[str, Any], marker: str) -> bool:
    return marker in job["JobName"] or marker in (job.get("DatabaseInfo") or "")


def _one_of(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ApiError(
            "InvalidParameterValue.InvalidParameterValueError",
            f"`{name}` must be one of {', '.join(allowed)}.",
        )


def _option(option: dict[str, Any]) -> dict[str, Any]:
    checks = {
        "RunMode": (1, 2),
        "MigrateType": (1, 2, 3),
        "MigrateObject": (1, 2),
        "ConsistencyType": (1, 2, 3, 4, 5),
    }
    for name, allowed in checks.items():
        if name in option and option[name] not in allowed:
            raise ApiError(
                "InvalidParameterValue.InvalidParameterValueError", f"`MigrateOption.{name}` is invalid."
            )
    if option["RunMode"] == 2 and not option.get("ExpectTime"):
        raise ApiError("InvalidParameter", "`MigrateOption.ExpectTime` is required when RunMode is 2.")
    if option.get("ConsistencyType") == 3 and "ConsistencyParams" not in option:
        raise ApiError(
            "InvalidParameter", "`MigrateOption.ConsistencyParams` is required for sampling checks."
        )
    return {"MigrateType": 2, "MigrateObject": 1, "ConsistencyType": 1, "IsOverrideRoot": 0, **option}


def _expect_at(option: Mapping[str, Any]) -> float | None:
    return parse_cloud_time(option["ExpectTime"]) if option.get("RunMode") == 2 else None


def _database_info(text: str | None, option: Mapping[str, Any]) -> None:
    if option.get("MigrateObject") != 2:
        return
    if not text:
        raise ApiError("InvalidParameter", "`DatabaseInfo` is required when MigrateObject is 2.")
    try:
        entries = json.loads(text)
    except ValueError:
        raise ApiError(
            "InvalidParameterValue.DataConvertError", "`DatabaseInfo` is not valid JSON."
        ) from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("Database") for e in entries):
        raise ApiError(
            "InvalidParameterValue.DataConvertError", "`DatabaseInfo` must list objects with Database."
        )


def _has_tag(job: Mapping[str, Any], tag: Mapping[str, Any]) -> bool:
    values = tag.get("TagValue") or []
    return any(
        t["TagKey"] == tag["TagKey"] and (not values or t.get("TagValue") in values) for t in job["Tags"]
    )
