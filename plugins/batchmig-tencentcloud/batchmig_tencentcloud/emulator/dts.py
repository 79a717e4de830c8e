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

A started job goes through the steps of its MigrateType (structure; + full data;
+ incremental sync), the structure taking the first tenth of ``migrate_seconds``;
``Detail`` shows them all (``StepAll``) with their states and start times. A throttled
request gets DTS's own documented code, ``RequestLimitExceeded.RequestLimitExceededError``.
"""

from __future__ import annotations

import bisect
import functools
import json
import math
from collections.abc import Callable, Mapping
from typing import Any

from batchmig.emulator import RequestInfo, SandboxContext

from batchmig_tencentcloud.emulator.base import Outcome, TencentEmulator, cloud_time, key, parse_cloud_time
from batchmig_tencentcloud.emulator.dts_schema import (
    ACCESS_TYPES,
    ACTIONS,
    DATABASE_TYPES,
    DST_INFO,
    MIGRATE_OPTION,
    RATE_LIMITS,
    SRC_INFO,
    TAG,
)
from batchmig_tencentcloud.emulator.params import ApiError, complete, is_english

__all__ = ["DtsEmulator"]

FAIL_CHECK = "sandbox-fail-check"
FAIL_MIGRATION = "sandbox-fail-migration"
CHECKABLE = frozenset({1, 2, 4, 5, 10})
NOT_DELETABLE = frozenset({3, 7, 8, 11, 12})
ORDER = {"JobId": "JobId", "Status": "Status", "JobName": "JobName", "CreateTime": "CreateTime"}
STEPS = (  # (StepId, name in en-US, name in zh-CN); MigrateType n runs the first n
    ("structure", "Structure migration", "结构迁移"),
    ("full", "Full data migration", "全量数据迁移"),
    ("incremental", "Incremental sync", "增量同步"),
)
STRUCTURE_SHARE = 0.1
"""The part of a migration spent on the structure, when data follows."""
FAILED_MIGRATION = (
    "Full data migration failed: the source database went offline.",
    "全量数据迁移失败：源数据库已离线。",
)
STOPPED = ("The task was stopped.", "任务已被撤销。")
FAILED_CHECK = (
    "The selected databases or tables do not exist on the source; select them again.",
    "选择的库表在源实例上不存在，请重新选择。",
)


class DtsEmulator(TencentEmulator):
    """DTS API 2018-03-30 on loopback."""

    service = "dts"
    version = "2018-03-30"
    actions = ACTIONS
    rate_limits = RATE_LIMITS
    throttle_code = "RequestLimitExceeded.RequestLimitExceededError"

    def __init__(self, ctx: SandboxContext) -> None:
        super().__init__(ctx)
        self._by_creation: dict[str, list[tuple[str, str]]] = {}
        """Region -> (CreateTime, JobId) of its jobs, sorted: a list's default order, kept
        as jobs come and go (built at a region's first such list, from the store)."""

    # ------------------------------------------------------------------- state

    def _job(self, region: str, job_id: str) -> dict[str, Any]:
        job = self.ctx.store.get("job", key(region, job_id))
        if job is None:
            raise ApiError(
                "ResourceNotFound.JobNotExist",
                f"The migration job {job_id} does not exist.",
                f"迁移任务 {job_id} 不存在。",
            )
        return job

    def _save(self, job: Mapping[str, Any]) -> None:
        where = key(job["Region"], job["JobId"])
        new = self.ctx.store.get("job", where) is None
        self.ctx.store.put("job", where, dict(job))
        order = self._by_creation.get(job["Region"])
        if new and order is not None:
            bisect.insort(order, (_created_time(job["created_at"]), job["JobId"]))

    def _creation_order(self, region: str) -> list[tuple[str, str]]:
        order = self._by_creation.get(region)
        if order is None:
            jobs = self.ctx.store.where("job", "Region", region)
            order = self._by_creation[region] = sorted((_created_time(job["created_at"]), job["JobId"]) for job in jobs)
        return order

    def _begin(self, job: Mapping[str, Any]) -> float | None:
        """When the migration itself begins: at the start call, or at ExpectTime (RunMode 2)."""
        started = job.get("started_at")
        return None if started is None else max(started, job.get("expect_at") or 0.0)

    def _status(self, job: Mapping[str, Any]) -> tuple[int, tuple[str, str] | None, float | None]:
        """(Status, error log in en/zh, end time) computed from the job's times."""
        if job.get("stopped_at") is not None:
            if not self.elapsed(job["stopped_at"], "stop_seconds", 30):
                return 11, None, None
            return 10, STOPPED, self.finished_at(job["stopped_at"], "stop_seconds", 30)
        if job.get("completed_at") is not None:
            if not self.elapsed(job["completed_at"], "complete_seconds", 60):
                return 12, None, None
            return 9, None, self.finished_at(job["completed_at"], "complete_seconds", 60)
        begin = self._begin(job)
        if begin is not None:
            if self.ctx.now() < begin:
                return 6, None, None
            if not self.elapsed(begin, "migrate_seconds", 900):
                return 7, None, None
            end = self.finished_at(begin, "migrate_seconds", 900)
            if _mentions(job, FAIL_MIGRATION):
                return 10, FAILED_MIGRATION, end
            return (8, None, None) if job["MigrateOption"].get("MigrateType") == 3 else (9, None, end)
        if job.get("checked_at") is not None:
            if not self.elapsed(job["checked_at"], "check_seconds", 60):
                return 3, None, None
            return (5 if _mentions(job, FAIL_CHECK) else 4), None, None
        return 1, None, None

    def _view(self, job: Mapping[str, Any], language: str) -> dict[str, Any]:
        status, error_log, end = self._status(job)
        begin = self._begin(job)
        started = begin is not None and status != 6
        source = {**complete(job["SrcInfo"], SRC_INFO), "Password": ""}
        source["Supplier"] = source["Supplier"] or "others"  # the API's value for non-RDS sources
        return {
            "JobId": job["JobId"], "JobName": job["JobName"],
            "MigrateOption": complete(job["MigrateOption"], MIGRATE_OPTION),
            "SrcDatabaseType": job["SrcDatabaseType"], "SrcAccessType": job["SrcAccessType"], "SrcInfo": source,
            "DstDatabaseType": job["DstDatabaseType"], "DstAccessType": job["DstAccessType"],
            "DstInfo": {**complete(job["DstInfo"], DST_INFO), "Password": ""},
            "DatabaseInfo": job.get("DatabaseInfo") or "[]", "CreateTime": cloud_time(job["created_at"]),
            "StartTime": cloud_time(begin if started else None), "EndTime": cloud_time(end), "Status": status,
            "Detail": self._detail(job, status, begin if started else None, language),
            "ErrorInfo": [{"ErrorLog": _text(error_log, language), "HelpDoc": ""}] if error_log else [],
            "Tags": [complete(tag, TAG) for tag in job.get("Tags") or []],
            "SrcInfoMulti": [{**complete(item, SRC_INFO), "Password": ""} for item in job.get("SrcInfoMulti") or []],
        }  # fmt: skip

    def _detail(self, job: Mapping[str, Any], status: int, begin: float | None, language: str) -> dict[str, Any]:
        """Every step of the job's MigrateType with its state, and where the job stands."""
        duration = self.option("migrate_seconds", 900)
        steps = STEPS[: job["MigrateOption"].get("MigrateType", 2)]
        # Where the steps start and end, in cloud seconds after ``begin``: the structure
        # takes a tenth when data follows; the incremental sync runs on after the full data.
        bounds = {1: [0.0, duration], 2: [0.0, duration * STRUCTURE_SHARE, duration],
                  3: [0.0, duration * STRUCTURE_SHARE, duration, math.inf]}[len(steps)]  # fmt: skip
        reached = self._reached(job, status, begin, duration)
        if status == 9:
            current = len(steps) + 1  # past the last step
        else:
            current = 0 if reached is None else sum(1 for start in bounds[:-1] if start <= reached)
        info = []
        for number, ((step_id, name_en, name_zh), start) in enumerate(zip(steps, bounds, strict=False), 1):
            state = 1 if number < current else 4 if number > current else 2 if status == 10 else 3
            started_at = None if state == 4 or begin is None else begin + start / self.ctx.time_scale
            info.append({"StepNo": number, "StepName": name_en if is_english(language) else name_zh,
                         "StepId": step_id, "Status": state, "StartTime": cloud_time(started_at)})  # fmt: skip
        step_done = 100.0
        if reached is not None and current <= len(steps) and bounds[current] != math.inf:
            start, end = bounds[current - 1], bounds[current]
            step_done = 100.0 * (reached - start) / (end - start)
        return {
            "StepAll": len(steps), "StepNow": min(current, len(steps)),
            "Progress": str(int(100.0 * min(reached or 0.0, duration) / duration)),
            "CurrentStepProgress": str(int(step_done)) if current else "0",
            "MasterSlaveDistance": 0, "SecondsBehindMaster": 0, "StepInfo": info,
        }  # fmt: skip

    def _reached(self, job: Mapping[str, Any], status: int, begin: float | None, duration: float) -> float | None:
        """How far into the migration, in cloud seconds, the job got (None: not begun)."""
        if begin is None:
            return None
        if job.get("stopped_at") is not None:
            return max(0.0, (float(job["stopped_at"]) - begin) * self.ctx.time_scale)
        if status == 7:
            return self.ctx.cloud_seconds_since(begin)
        if status == 10:
            return math.nextafter(duration, 0.0)  # failed in the last instant of the full data
        return duration  # the full data is in: syncing (8, 12) or done (9)

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
            raise _conflict(status, "modified", "修改")
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
            raise _conflict(status, "checked", "校验")
        reset = {"checked_at": self.ctx.now(), "started_at": None, "completed_at": None, "stopped_at": None}
        self._save({**job, **reset})
        return Outcome({}, resource=f"check:{job['JobId']}", changed=True)

    def describe_migrate_check_job(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        job = self._job(info.region, params["JobId"])
        if job.get("checked_at") is None:
            status, code, message, progress, flag = "unavailable", 0, "", "0", 3
        elif not self.elapsed(job["checked_at"], "check_seconds", 60):
            status, code, message, progress, flag = "running", 0, "", "50", 3
        elif _mentions(job, FAIL_CHECK):
            status, code, message, progress, flag = "finished", -1, _text(FAILED_CHECK, info.language), "100", 0
        else:
            status, code, message, progress, flag = "finished", 0, "ok", "100", 1
        return Outcome(
            {"Status": status, "ErrorCode": code, "ErrorMessage": message, "Progress": progress, "CheckFlag": flag}
        )

    # --------------------------------------------------------------- lifecycle

    def _transition(
        self, info: RequestInfo, job_id: str, allowed: frozenset[int], field: str, verb: tuple[str, str]
    ) -> Outcome:
        job = self._job(info.region, job_id)
        status = self._status(job)[0]
        if status not in allowed:
            raise _conflict(status, *verb)
        self._save({**job, field: self.ctx.now()})
        return Outcome({}, resource=f"job:{job_id}", changed=True)

    def start_migrate_job(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        # Only after a passed check (status 4), as the API documentation demands.
        verb = ("started before a passed check", "在校验通过前启动")
        return self._transition(info, params["JobId"], frozenset({4}), "started_at", verb)

    def complete_migrate_job(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        if params.get("CompleteMode", "waitForSync") not in ("waitForSync", "immediately"):
            raise ApiError(
                "InvalidParameter",
                "`CompleteMode` must be waitForSync or immediately.",
                "`CompleteMode` 必须为 waitForSync 或 immediately。",
            )
        return self._transition(info, params["JobId"], frozenset({8}), "completed_at", ("completed", "完成"))

    def stop_migrate_job(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        return self._transition(info, params["JobId"], frozenset({7, 8}), "stopped_at", ("stopped", "撤销"))

    def delete_migrate_job(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        job = self._job(info.region, params["JobId"])
        status = self._status(job)[0]
        if status in NOT_DELETABLE:
            raise _conflict(status, "deleted", "删除")
        self.ctx.store.delete("job", key(info.region, job["JobId"]))
        order = self._by_creation.get(info.region)
        if order is not None:
            order.remove((_created_time(job["created_at"]), job["JobId"]))
        return Outcome({}, resource=f"job:{job['JobId']}", changed=True)

    # ----------------------------------------------------------------- listing

    def describe_migrate_jobs(self, params: dict[str, Any], info: RequestInfo) -> Outcome:
        limit, offset = params.get("Limit", 20), params.get("Offset", 0)
        if not 1 <= limit <= 100:
            raise ApiError(
                "InvalidParameterValue.InvalidParameterValueError",
                "`Limit` must be between 1 and 100.",
                "`Limit` 必须在 1 到 100 之间。",
            )
        order = ORDER.get(params.get("Order", "CreateTime"))
        if order is None:
            raise ApiError(
                "InvalidParameterValue.InvalidParameterValueError",
                "`Order` is not a sortable field.",
                "`Order` 不是可排序的字段。",
            )
        now = self.ctx.now()
        descending = params.get("OrderSeq", "DESC") == "DESC"
        if order == "CreateTime" and not ("JobId" in params or "JobName" in params or params.get("TagFilters")):
            total, jobs = self._page_by_creation(info, now, offset, limit, descending)
            return Outcome({"TotalCount": total, "JobList": [self._view(job, info.language) for job in jobs]})
        if "JobId" in params:  # one job: looked up, not searched for
            found = self.ctx.store.get("job", key(info.region, str(params["JobId"])))
            candidates = iter([found] if found is not None and found["JobId"] == params["JobId"] else [])
        else:
            candidates = self.ctx.store.where("job", "Region", info.region)
        jobs = [job for job in candidates if info.listed(job["created_at"], now)]
        if "JobName" in params:  # matched as a substring, as the console's search does
            jobs = [job for job in jobs if params["JobName"] in job["JobName"]]
        for tag in params.get("TagFilters", []):
            jobs = [job for job in jobs if _has_tag(job, tag)]
        # Sorted by the field the answer shows, but only the page's jobs are rendered:
        # rendering every job of a region for each page made a list cost O(jobs).
        sort_key = self._sort_key(order)
        jobs.sort(key=lambda job: (sort_key(job), job["JobId"]), reverse=descending)
        page = [self._view(job, info.language) for job in jobs[offset : offset + limit]]
        return Outcome({"TotalCount": len(jobs), "JobList": page})

    def _page_by_creation(
        self, info: RequestInfo, now: float, offset: int, limit: int, descending: bool
    ) -> tuple[int, list[dict[str, Any]]]:
        """(TotalCount, the page's jobs) of an unfiltered list by CreateTime, without
        touching the region's other jobs: the answer of the general path above, which a
        poller paging through 25,000 jobs made cost O(jobs) per page."""
        order = self._creation_order(info.region)
        # Only the newest jobs can be unlisted yet (a lagging list): one created more than a
        # second before ``now - lag`` has an earlier CreateTime than that moment's.
        try:
            settled = bisect.bisect_left(order, (cloud_time(now - info.list_lag - 1), ""))
        except (OverflowError, OSError, ValueError):  # an endless lag: every job is checked
            settled = 0
        recent = [
            job for _, job_id in order[settled:]
            if info.listed((job := self._job(info.region, job_id))["created_at"], now)
        ]
        total = settled + len(recent)
        places = range(total)[::-1] if descending else range(total)
        page = [self._job(info.region, order[n][1]) if n < settled else recent[n - settled]
                for n in places[offset : offset + limit]]
        return total, page

    def _sort_key(self, order: str) -> Callable[[Mapping[str, Any]], Any]:
        """A job's value of the answer's field ``order``, as its view shows it."""
        if order == "CreateTime":
            return lambda job: _created_time(job["created_at"])
        if order == "Status":
            return lambda job: self._status(job)[0]
        return lambda job: job[order]


# ---------------------------------------------------------------------- helpers


@functools.lru_cache(maxsize=1 << 17)
def _created_time(created_at: float) -> str:
    """``cloud_time`` of a job's creation, remembered: a list sorts every job of the region by it."""
    return cloud_time(created_at)


def _text(text: tuple[str, str], language: str) -> str:
    return text[0] if is_english(language) else text[1]


def _conflict(status: int, verb: str, verb_zh: str) -> ApiError:
    return ApiError(
        "FailedOperation.StatusInConflict",
        f"A job in status {status} cannot be {verb}.",
        f"状态为 {status} 的任务不能{verb_zh}。",
    )


def _mentions(job: Mapping[str, Any], marker: str) -> bool:
    return marker in job["JobName"] or marker in (job.get("DatabaseInfo") or "")


def _one_of(value: str, allowed: tuple[str, ...], name: str) -> None:
    if value not in allowed:
        raise ApiError(
            "InvalidParameterValue.InvalidParameterValueError",
            f"`{name}` must be one of {', '.join(allowed)}.",
            f"`{name}` 必须是 {'、'.join(allowed)} 之一。",
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
                "InvalidParameterValue.InvalidParameterValueError",
                f"`MigrateOption.{name}` is invalid.",
                f"`MigrateOption.{name}` 的取值无效。",
            )
    if option["RunMode"] == 2 and not option.get("ExpectTime"):
        raise ApiError(
            "InvalidParameter",
            "`MigrateOption.ExpectTime` is required when RunMode is 2.",
            "RunMode 为 2 时必须填写 `MigrateOption.ExpectTime`。",
        )
    if option.get("ConsistencyType") == 3 and "ConsistencyParams" not in option:
        raise ApiError(
            "InvalidParameter",
            "`MigrateOption.ConsistencyParams` is required for sampling checks.",
            "抽样检测时必须填写 `MigrateOption.ConsistencyParams`。",
        )
    return {"MigrateType": 2, "MigrateObject": 1, "ConsistencyType": 1, "IsOverrideRoot": 0, **option}


def _expect_at(option: Mapping[str, Any]) -> float | None:
    return parse_cloud_time(option["ExpectTime"]) if option.get("RunMode") == 2 else None


def _database_info(text: str | None, option: Mapping[str, Any]) -> None:
    if option.get("MigrateObject") != 2:
        return
    if not text:
        raise ApiError(
            "InvalidParameter",
            "`DatabaseInfo` is required when MigrateObject is 2.",
            "MigrateObject 为 2 时必须填写 `DatabaseInfo`。",
        )
    try:
        entries = json.loads(text)
    except ValueError:
        raise ApiError(
            "InvalidParameterValue.DataConvertError",
            "`DatabaseInfo` is not valid JSON.",
            "`DatabaseInfo` 不是合法的 JSON。",
        ) from None
    if not isinstance(entries, list) or not all(isinstance(e, dict) and e.get("Database") for e in entries):
        raise ApiError(
            "InvalidParameterValue.DataConvertError",
            "`DatabaseInfo` must list objects with Database.",
            "`DatabaseInfo` 必须是含 Database 字段的对象列表。",
        )


def _has_tag(job: Mapping[str, Any], tag: Mapping[str, Any]) -> bool:
    values = tag.get("TagValue") or []
    return any(
        t["TagKey"] == tag["TagKey"] and (not values or t.get("TagValue") in values) for t in job["Tags"]
    )
