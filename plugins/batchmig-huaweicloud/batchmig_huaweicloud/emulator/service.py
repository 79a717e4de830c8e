"""``HuaweiDrsEmulator``: DRS v5 backup migration and its gateway, on loopback.

The sandbox host calls ``authenticate`` (gateway: route, signature or token), then
audits, throttles and injects faults, then calls ``handle`` (DRS: the operation on
the job book). ``error`` renders the host's throttles and injected faults the way
Huawei answers them: 429 ``APIGW.0308`` from the gateway, ``DRS.M01503`` (HTTP 400)
when DRS itself refuses for rate, 500 ``DRS.M00004`` for an internal error.

DRS's own errors use the codes the v5 pages show (``DRS.10000001``, ``DRS.M00202``,
``DRS.10000010``; see ``validation``) and honour ``X-Language`` (``en-us``, the
default, or ``zh-cn``); the gateway's (``APIGW.*``) are English only.
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import parse_qsl, unquote

from aiohttp import web
from batchmig.emulator import Emulator, EmulatorReject, EmulatorReply, RequestInfo, SandboxContext

from batchmig_huaweicloud.demo import DEMO_CREDENTIALS, DEMO_REGION
from batchmig_huaweicloud.emulator.gateway import Gateway
from batchmig_huaweicloud.emulator.iam import Iam
from batchmig_huaweicloud.emulator.replies import drs_error, gateway_error, json_reply
from batchmig_huaweicloud.emulator.restores import KIND, JobBook
from batchmig_huaweicloud.emulator.routes import IAM_PROJECTS, IAM_TOKENS, MUTATING, route
from batchmig_huaweicloud.emulator.validation import (
    FAILED,
    Invalid,
    invalid_value,
    validate_create,
    validate_update,
)
from batchmig_huaweicloud.provider import RATE_LIMITS

__all__ = ["DEMO_CREDENTIALS", "HuaweiDrsEmulator"]

MAX_BODY = 12 * 1024 * 1024
_PROJECT_ID = re.compile(r"[0-9A-Za-z_-]{1,64}")  # real ones are 32 hex digits
LIST_MAX = 2000
NOT_FOUND = Invalid("DRS.10000010", "Job does not exist, please check job ID.", "任务不存在，请检查任务ID。")
STILL_RUNNING = Invalid(
    FAILED,
    "Failed. Only a finished job can be deleted.",
    "失败。只能删除已结束的任务。",
)
INVALID_PROJECT = Invalid("DRS.M00261", "Invalid project ID.", "无效的项目ID。", status=403)
TOO_FREQUENT = Invalid("DRS.M01503", "Operation too frequent. Try again later.", "操作过于频繁，请稍后再试。")
ABNORMAL = Invalid("DRS.M00004", "Service is abnormal. Check logs.", "服务异常，请检查日志。", status=500)


class HuaweiDrsEmulator(Emulator):
    """Sandbox options (all optional): ``precheck_seconds``, ``full_restore_seconds``,
    ``incremental_restore_seconds``, ``initial_status`` (+ ``initial_status_seconds``),
    ``precheck_failure_rate``, ``failure_rate``, ``numeric_recovery_mode_rate``,
    ``time_format`` (``iso``/``epoch_ms``), ``check_existing_databases``,
    ``accept_tokens``, ``iam_users``, ``projects``, ``rate_limits``."""

    def __init__(self, ctx: SandboxContext) -> None:
        self._ctx = ctx
        secrets = {DEMO_CREDENTIALS["ak"]: DEMO_CREDENTIALS["sk"], **dict(ctx.credentials)}
        self._gateway = Gateway(ctx, secrets, accept_tokens=bool(ctx.options.get("accept_tokens", True)))
        self._iam = Iam(ctx)
        self._iam.remember(DEMO_CREDENTIALS["project_id"], DEMO_REGION)
        self._jobs = JobBook(ctx)
        self.rate_limits = {**RATE_LIMITS, **(ctx.options.get("rate_limits") or {})}

    # -------------------------------------------------------- authenticate

    async def authenticate(self, request: web.Request, body: bytes) -> RequestInfo:
        found = route(request.method, unquote(request.rel_url.raw_path))
        if found is None:
            raise EmulatorReject(
                gateway_error(
                    404, "APIGW.0101", "The API does not exist or has not been published in the environment"
                ),
                "APIGW.0101",
            )
        if len(body) > MAX_BODY:
            raise EmulatorReject(gateway_error(413, "APIGW.0201", "Request entity too large"), "APIGW.0201")
        if found.action == IAM_TOKENS:
            user, region = self._iam.requester(body)
            return RequestInfo(found.action, user, region or "global", mutating=False)
        caller = self._gateway.authenticate(request, body)
        language = request.headers.get("X-Language", "")
        params: dict[str, Any] = dict(found.params)
        project_id = params.get("project_id")
        if project_id is not None:
            header_project = request.headers.get("X-Project-Id")
            if (
                not _PROJECT_ID.fullmatch(project_id)
                or (caller.token_project and caller.token_project != project_id)
                or (header_project and header_project != project_id)
            ):
                raise EmulatorReject(_answer(INVALID_PROJECT, language), INVALID_PROJECT.code)
            region = self._region(request, project_id)
            self._iam.remember(project_id, region)
        else:
            region = "global"
        if found.action == "CreateReplicationJob":
            params["name"] = _peek_name(body)
        return RequestInfo(
            found.action, caller.credential, region, found.action in MUTATING, params, language=language
        )

    def _region(self, request: web.Request, project_id: str) -> str:
        host = request.headers.get("Host", "")
        parts = host.split(".")
        if len(parts) >= 4 and parts[0] == "drs" and "myhuaweicloud" in host:
            return parts[1]
        return self._iam.region_of(project_id)

    # -------------------------------------------------------------- handle

    async def handle(self, request: web.Request, info: RequestInfo, body: bytes) -> EmulatorReply:
        try:
            return self._dispatch(request, info, body)
        except Invalid as invalid:
            return EmulatorReply(_answer(invalid, info.language))

    def _dispatch(self, request: web.Request, info: RequestInfo, body: bytes) -> EmulatorReply:
        action, params = info.action, info.params
        if action == IAM_TOKENS:
            return EmulatorReply(self._iam.issue_token(request, body))
        if action == IAM_PROJECTS:
            return EmulatorReply(self._iam.list_projects(request))
        project_id = str(params["project_id"])
        if action == "CreateReplicationJob":
            req = validate_create(_json(body))
            created = self._jobs.create(project_id, req)
            return EmulatorReply(
                json_reply(200, {"job_id": created["id"]}), resource=req.base_info["name"], changed=True
            )
        if action == "ListReplicationJobs":
            return EmulatorReply(self._list(project_id, request, info))
        found = self._jobs.get(project_id, str(params["job_id"]))
        if found is None:
            return EmulatorReply(_answer(NOT_FOUND, info.language))
        job = found
        if action == "ShowReplicationJob":
            return EmulatorReply(json_reply(200, self._jobs.detail(job)), resource=job["id"])
        if action == "UpdateReplicationJob":
            change = validate_update(_json(body))
            job["base_info"] = {**job["base_info"], **change}
            self._jobs.save(job)
            return EmulatorReply(json_reply(200, {}), resource=job["id"], changed=True)
        # DeleteReplicationJob: only finished jobs can go (the delete page's 400 is DRS.10000001).
        if not self._jobs.is_terminal(job):
            return EmulatorReply(_answer(STILL_RUNNING, info.language), resource=job["id"])
        job["deleted"] = True
        self._jobs.save(job)
        return EmulatorReply(json_reply(200, {}), resource=job["id"], changed=True)

    def _list(self, project_id: str, request: web.Request, info: RequestInfo) -> web.Response:
        pairs = parse_qsl(request.rel_url.raw_query_string, keep_blank_values=True)
        query: dict[str, str] = {k: v for k, v in pairs if k != "dbs_instance_ids"}
        targets = [v for k, v in pairs if k == "dbs_instance_ids" and v]
        if len(targets) > 10:
            raise invalid_value("dbs_instance_ids", "At most 10 instance ids.")
        limit = _int(query.get("limit"), 10, "limit", 1, LIST_MAX)
        offset = _int(query.get("offset"), 0, "offset", 0, 10**9)
        sort_key = query.get("sort_key") or "created_at"
        sort_dir = (query.get("sort_dir") or "desc").lower()
        if sort_dir not in ("asc", "desc"):
            raise invalid_value("sort_dir")
        now = self._ctx.now()
        if sort_key == "created_at" and sort_dir == "desc" and not targets and not any(
            query.get(name) for name in ("description", "enterprise_project_id", "status")
        ):
            count, newest = self._newest_page(project_id, query.get("name", "").lower(), info, now, offset, limit)
            return json_reply(200, {"count": count, "jobs": [self._jobs.summary(job) for job in newest]})
        jobs = [
            job
            for job in self._jobs.live(project_id)
            if info.listed(job["created_wall"], now) and _matches(job, query, targets, self._jobs.status)
        ]
        field = {
            "name": lambda j: j["base_info"]["name"].lower(),
            "description": lambda j: j["base_info"].get("description", ""),
        }.get(sort_key, lambda j: j["created_wall"])
        jobs.sort(key=field, reverse=sort_dir == "desc")
        page = [self._jobs.summary(job) for job in jobs[offset : offset + limit]]
        return json_reply(200, {"count": len(jobs), "jobs": page})

    def _newest_page(
        self, project_id: str, needle: str, info: RequestInfo, now: float, offset: int, limit: int
    ) -> tuple[int, list[dict[str, Any]]]:
        """(count, the page's jobs) of a newest-first list filtered by name at most, as the
        general path above answers it, from the project's kept order: the poller's lists
        rendered no other job, but sorted and matched every job of the project each time."""
        rows = self._jobs.newest(project_id)
        # A lagging list leaves out the newest jobs: a prefix of this order.
        listed = bisect.bisect_left(rows, True, key=lambda row: info.listed(-row[0], now))
        matching = [row for row in rows[listed:] if needle in row[2]] if needle else rows[listed:]
        page = [self._ctx.store.get(KIND, row[3]) for row in matching[offset : offset + limit]]
        return len(matching), [job for job in page if job is not None]

    # --------------------------------------------------------------- error

    def error(
        self,
        info: RequestInfo,
        kind: Literal["throttle", "internal", "unavailable"],
        code: str | None = None,
    ) -> web.Response:
        if kind == "throttle":
            if code == TOO_FREQUENT.code:
                return _answer(TOO_FREQUENT, info.language)
            limit = self.rate_limits.get(info.action, self.default_rate)
            return gateway_error(
                429,
                code or "APIGW.0308",
                "The throttling threshold has been reached: "
                f"policy user over ratelimit,limit:{limit:g},time:1 second",
            )
        # No gateway code for 503 is documented; DRS's "service abnormal" is the closest.
        status = 503 if kind == "unavailable" else 500
        return drs_error(status, code or ABNORMAL.code, ABNORMAL.message_in(info.language))


def _answer(invalid: Invalid, language: str) -> web.Response:
    return drs_error(invalid.status, invalid.code, invalid.message_in(language))


def _json(body: bytes) -> Any:
    try:
        return json.loads(body) if body.strip() else None
    except ValueError:
        raise invalid_value("body", "It is not JSON.") from None


def _peek_name(body: bytes) -> str:
    try:
        return str(json.loads(body)["base_info"]["name"])
    except (ValueError, KeyError, TypeError):
        return ""


def _int(value: str | None, default: int, name: str, low: int, high: int) -> int:
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise invalid_value(name) from None
    if not low <= number <= high:
        raise invalid_value(name, f"It must be between {low} and {high}.")
    return number


def _matches(job: Mapping[str, Any], query: Mapping[str, str], targets: list[str], status_of: Any) -> bool:
    base = job["base_info"]
    if query.get("name") and query["name"].lower() not in base["name"].lower():
        return False
    if query.get("description") and query["description"] not in base.get("description", ""):
        return False
    if query.get("enterprise_project_id") and query["enterprise_project_id"] != base.get(
        "enterprise_project_id"
    ):
        return False
    if targets and job["target_db_info"]["target_instance_id"] not in targets:
        return False
    return not (query.get("status") and query["status"].upper() != str(status_of(job)).upper())
