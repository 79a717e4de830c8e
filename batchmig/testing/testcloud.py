"""``testcloud``: a small provider and emulator that exercise the whole core.

It is what the core's tests run against (they must not import the cloud plugins) and
a worked example for plugin authors: HMAC request signing verified by the emulator,
errors in an HTTP-status dialect, a batch describe, non-idempotent create and start
calls with deterministic names, and an optional cutover step.

Wire protocol: ``POST /`` with a JSON body; headers ``X-Test-Action``,
``X-Test-Region``, ``X-Test-Key`` (key id), ``X-Test-Date`` (epoch seconds) and
``X-Test-Signature`` = hex HMAC-SHA256(secret, action \\n date \\n host \\n
sha256(body)). Answers: ``{"result": {...}}`` or ``{"error": {"code", "message"}}``
with status 400/404/429/500; the request id is only in the ``X-Test-Request-Id``
header (as with many REST APIs), so a request id reaches the journal from a header.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from batchmig.emulator import Emulator as EmulatorBase
from batchmig.emulator import EmulatorReject, EmulatorReply, EmulatorSpec, RequestInfo, SandboxContext
from batchmig.plugin import (
    Answer,
    Call,
    Caller,
    CallStep,
    Connection,
    EmulatorRegistry,
    HttpFetch,
    HttpRequest,
    HttpResponse,
    Instance,
    Listing,
    NotFoundError,
    Outputs,
    PermanentError,
    Poller,
    Provider,
    ProviderConfig,
    ProviderError,
    ProviderRegistry,
    ProviderSpec,
    Step,
    ThrottleError,
    TransientError,
    UnknownOutcomeError,
    WaitItem,
    WaitStatus,
    WaitStep,
    find_created,
    hookimpl,
)

NAME = "testcloud"
DEMO_KEY_ID = "TESTKEYID0001"
DEMO_SECRET = "testcloud-sandbox-secret"
MUTATING = frozenset({"CreateJob", "StartJob", "CompleteJob"})
ACTIONS = MUTATING | {"DescribeJobs"}
RUNNING_STATUSES = frozenset({"created", "running", "completing"})


def sign(secret: str, action: str, date: str, host: str, body: bytes) -> str:
    message = "\n".join([action, date, host, hashlib.sha256(body).hexdigest()])
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


# ---------------------------------------------------------------- provider


class TestcloudSettings(BaseModel):
    """Settings of one testcloud instance."""

    __test__ = False

    model_config = ConfigDict(extra="forbid", frozen=True)
    duration: float = Field(default=60, gt=0, le=86400, description="Emulated job duration in cloud seconds.")
    incremental: bool = Field(default=False, description="The job waits for a cutover (CompleteJob).")
    fail: bool = Field(default=False, description="The emulated job ends failed.")
    reject: bool = Field(default=False, description="CreateJob is refused with a permanent error.")
    client_token: bool = Field(default=False, description="Create the job with a ClientToken (idempotent create, "
                               "no reconcile) instead of by name.")


class TestcloudConnection(Connection):
    def __init__(self, config: ProviderConfig) -> None:
        self.region = config.region
        self._key_id = config.credentials.secret("key_id") or ""
        self._secret = config.credentials.secret("secret") or ""
        self.account = config.account or hashlib.sha256(self._key_id.encode()).hexdigest()[:10]
        self._url = (config.endpoint or f"https://testcloud.{config.region}.invalid").rstrip("/") + "/"

    async def prepare(self, call: Call) -> HttpRequest:
        body = json.dumps(dict(call.params), separators=(",", ":")).encode()
        date = str(int(time.time()))
        host = urlsplit(self._url).netloc
        headers = {
            "Content-Type": "application/json",
            "X-Test-Action": call.action,
            "X-Test-Region": self.region,
            "X-Test-Key": self._key_id,
            "X-Test-Date": date,
            "X-Test-Signature": sign(self._secret, call.action, date, host, body),
        }
        return HttpRequest("POST", self._url, headers, body)

    def parse(self, call: Call, response: HttpResponse) -> Answer:
        request_id = response.headers.get("x-test-request-id")
        try:
            data = json.loads(response.body)
            error = data.get("error")
            result = data.get("result") if error is None else None
            if error is None and not isinstance(result, dict):
                raise ValueError("no result")
        except (ValueError, AttributeError):
            kind = UnknownOutcomeError if call.mutating else TransientError
            raise kind("BadAnswer", f"unreadable answer (HTTP {response.status})",
                       http_status=response.status) from None
        if error is None:
            return Answer(result or {}, request_id)
        code, message = str(error.get("code")), str(error.get("message"))
        refusal: type[ProviderError] = PermanentError
        if response.status == 429:
            refusal = ThrottleError
        elif response.status >= 500:
            refusal = TransientError
        elif response.status == 404:
            refusal = NotFoundError
        raise refusal(code, message, request_id=request_id, http_status=response.status)


async def _describe(caller: Caller, **params: Any) -> list[dict[str, Any]]:
    answer = await caller.read(Call("DescribeJobs", params))
    return list(answer.payload.get("jobs", []))


async def _poll_jobs(caller: Caller, items: Sequence[WaitItem]) -> list[WaitStatus]:
    jobs = {job["id"]: job for job in await _describe(caller, JobIds=[i.outputs["JobId"] for i in items])}
    statuses = []
    for item in items:
        job = jobs.get(item.outputs["JobId"])
        if job is None:
            statuses.append(WaitStatus.failed(f"job {item.outputs['JobId']} disappeared", "JobNotFound"))
        elif job["status"] in ("succeeded", "ready"):
            statuses.append(WaitStatus.succeeded({"JobStatus": job["status"]}))
        elif job["status"] == "failed":
            statuses.append(WaitStatus.failed(job.get("message", "the job failed"), "JobFailed"))
        elif job["status"] in RUNNING_STATUSES:
            statuses.append(WaitStatus.running(job["status"]))
        else:
            statuses.append(WaitStatus.running(f"status {job['status']!r}", unrecognised=f"status {job['status']!r}"))
    return statuses


JOBS_POLLER = Poller(
    name="jobs",
    action="DescribeJobs",
    poll=_poll_jobs,
    max_batch=50,
    min_interval=1.0,
    example=lambda item: Call("DescribeJobs", {"JobIds": [item.outputs["JobId"]]}),
)


class TestcloudProvider(Provider):
    settings_model = TestcloudSettings
    actions = ACTIONS
    default_rate_limits = {"DescribeJobs": 20.0}
    credential_env = {"key_id": "TESTCLOUD_KEY_ID", "secret": "TESTCLOUD_SECRET"}
    required_credentials = ("key_id", "secret")

    def connect(self, config: ProviderConfig, fetch: HttpFetch) -> Connection:
        return TestcloudConnection(config)

    def estimated_seconds(self, instance: Instance, step: str) -> float | None:
        """The job takes its ``duration``; completing it, the emulator's few seconds."""
        settings: TestcloudSettings = instance.settings
        return {"wait-job": settings.duration, "wait-complete": 5.0}.get(step)

    def check(self, instance: Instance) -> Sequence[tuple[str, str]]:
        settings: TestcloudSettings = instance.settings
        if settings.fail and settings.reject:
            return [("reject", "a rejected job cannot also fail later; choose one")]
        return ()

    def steps(self, instance: Instance) -> Sequence[Step]:
        settings: TestcloudSettings = instance.settings
        name = instance.resource_name("job")

        by_name = Listing(page=lambda offset: Call("DescribeJobs", {"Name": name}),
                          items=lambda answer: answer.payload["jobs"])

        async def reconcile_create(caller: Caller, outputs: Outputs) -> Outputs | None:
            job = await find_created(caller, by_name, lambda job: job["name"] == name, what=f"the job {name}")
            return {"JobId": job["id"]} if job else None

        async def find_started(caller: Caller, outputs: Outputs) -> Outputs | None:
            jobs = await _describe(caller, JobIds=[outputs["JobId"]])
            return {} if jobs and jobs[0]["status"] != "created" else None

        async def find_completed(caller: Caller, outputs: Outputs) -> Outputs | None:
            jobs = await _describe(caller, JobIds=[outputs["JobId"]])
            return {} if jobs and jobs[0]["status"] in ("completing", "succeeded") else None

        create = {"Name": name, "Duration": settings.duration, "Incremental": settings.incremental,
                  "Fail": settings.fail, "Reject": settings.reject}
        token = instance.client_token("create-job") if settings.client_token else None
        if token is not None:
            create["ClientToken"] = token
        steps: list[Step] = [
            CallStep(
                "create-job",
                build=lambda o: Call("CreateJob", create, mutating=True, resource=name, client_token=token),
                read=lambda answer: {"JobId": answer.payload["JobId"]},
                reconcile=None if token else reconcile_create,
                idempotent=token is not None,
            ),
            CallStep(
                "start-job",
                build=lambda o: Call("StartJob", {"JobId": o["JobId"]}, mutating=True, resource=o["JobId"]),
                reconcile=find_started,
            ),
            WaitStep("wait-job", JOBS_POLLER),
        ]
        if settings.incremental:
            steps += [
                CallStep(
                    "complete-job",
                    build=lambda o: Call("CompleteJob", {"JobId": o["JobId"]}, mutating=True, resource=o["JobId"]),
                    reconcile=find_completed,
                    cutover=True,
                ),
                WaitStep("wait-complete", JOBS_POLLER),
            ]
        return steps


# ---------------------------------------------------------------- emulator


def _answer(status: int, payload: dict[str, Any]) -> web.Response:
    return web.json_response(payload, status=status, headers={"X-Test-Request-Id": str(uuid.uuid4())})


def _error(status: int, code: str, message: str) -> web.Response:
    return _answer(status, {"error": {"code": code, "message": message}})


class TestcloudEmulator(EmulatorBase):
    __test__ = False  # not a pytest test class, despite its name
    rate_limits = {"DescribeJobs": 20.0}

    def __init__(self, ctx: SandboxContext) -> None:
        self.ctx = ctx
        self.secrets = {DEMO_KEY_ID: DEMO_SECRET, **ctx.credentials}
        self.complete_seconds = float(ctx.options.get("complete_seconds", 5))

    async def authenticate(self, request: web.Request, body: bytes) -> RequestInfo:
        headers = request.headers
        action = headers.get("X-Test-Action", "")
        key = headers.get("X-Test-Key", "")
        date = headers.get("X-Test-Date", "")
        secret = self.secrets.get(key)
        if secret is None:
            raise EmulatorReject(_error(401, "AuthFailure.UnknownKey", "unknown key id"), "AuthFailure.UnknownKey")
        if not date.isdigit() or abs(int(date) - time.time()) > 300:
            raise EmulatorReject(_error(401, "AuthFailure.Expired", "request date too far off"), "AuthFailure.Expired")
        expected = sign(secret, action, date, request.host, body)
        if not hmac.compare_digest(expected, headers.get("X-Test-Signature", "")):
            raise EmulatorReject(_error(401, "AuthFailure.Signature", "signature mismatch"), "AuthFailure.Signature")
        if action not in ACTIONS:
            raise EmulatorReject(_error(400, "InvalidAction", f"no action {action!r}"), "InvalidAction")
        return RequestInfo(action, key, headers.get("X-Test-Region", ""), action in MUTATING)

    def error(self, info: RequestInfo, kind: Literal["throttle", "internal", "unavailable"],
              code: str | None = None) -> web.Response:
        if kind == "throttle":
            return _error(429, code or "Throttled", "too many requests")
        return _error(503 if kind == "unavailable" else 500, code or "InternalError", "internal error")

    def _job(self, job_id: str) -> dict[str, Any]:
        job = self.ctx.store.get("job", job_id)
        if job is None:
            raise EmulatorReject(_error(404, "JobNotFound", f"no job {job_id}"), "JobNotFound")
        return job

    def _status(self, job: dict[str, Any]) -> str:
        if job["status"] == "running" and self.ctx.cloud_seconds_since(job["started"]) >= job["duration"]:
            if job["fail"]:
                return "failed"
            return "ready" if job["incremental"] else "succeeded"
        if job["status"] == "completing" and self.ctx.cloud_seconds_since(job["completed"]) >= self.complete_seconds:
            return "succeeded"
        return str(job["status"])

    def _view(self, job: dict[str, Any]) -> dict[str, Any]:
        status = self._status(job)
        view = {"id": job["id"], "name": job["name"], "status": status}
        if status == "failed":
            view["message"] = "the emulated job failed as configured"
        return view

    async def handle(self, request: web.Request, info: RequestInfo, body: bytes) -> EmulatorReply:
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return EmulatorReply(_error(400, "InvalidBody", "the body is not JSON"))
        if info.action == "CreateJob":
            if params.get("Reject"):
                return EmulatorReply(_error(400, "InvalidParameterValue", "the job was rejected as configured"))
            token = params.get("ClientToken")
            earlier = self.ctx.store.get("token", str(token)) if token else None
            if earlier is not None:  # an idempotent repeat: the same job, no new effect
                return EmulatorReply(_answer(200, {"result": {"JobId": earlier["job"]}}), resource=earlier["name"])
            job_id = f"job-{self.ctx.store.next_id('job'):06d}"
            job = {"id": job_id, "name": params.get("Name", ""), "status": "created",
                   "duration": float(params.get("Duration", 60)), "incremental": bool(params.get("Incremental")),
                   "fail": bool(params.get("Fail")), "started": None, "completed": None,
                   "created": self.ctx.now()}
            self.ctx.store.put("job", job_id, job)
            if token:
                self.ctx.store.put("token", str(token), {"job": job_id, "name": job["name"]})
            return EmulatorReply(_answer(200, {"result": {"JobId": job_id}}), resource=job["name"], changed=True)
        if info.action == "DescribeJobs":
            if "Name" in params:  # a search, which lags behind creates under a list_lag fault
                jobs = [j for j in self.ctx.store.values("job") if j["name"] == params["Name"]
                        and info.listed(j.get("created", 0.0), self.ctx.now())]
            else:
                jobs = [j for j in (self.ctx.store.get("job", i) for i in params.get("JobIds", [])) if j]
            return EmulatorReply(_answer(200, {"result": {"jobs": [self._view(j) for j in jobs]}}))
        job = self._job(str(params.get("JobId", "")))
        status = self._status(job)
        if info.action == "StartJob":
            if status != "created":
                return EmulatorReply(_error(409, "StatusConflict", f"job is {status}"))
            self.ctx.store.put("job", job["id"], {**job, "status": "running", "started": self.ctx.now()})
            return EmulatorReply(_answer(200, {"result": {}}), resource=job["id"], changed=True)
        if status != "ready":  # CompleteJob
            return EmulatorReply(_error(409, "StatusConflict", f"job is {status}"))
        self.ctx.store.put("job", job["id"], {**job, "status": "completing", "completed": self.ctx.now()})
        return EmulatorReply(_answer(200, {"result": {}}), resource=job["id"], changed=True)


class TestcloudPlugin:
    """Register with ``load_registry([TestcloudPlugin()])`` (it has no entry point)."""

    BATCHMIG_PLUGIN_API = (1,)

    @hookimpl
    def batchmig_register_providers(self, registry: ProviderRegistry) -> None:
        registry.add(ProviderSpec(NAME, TestcloudProvider(), "the core's test provider", emulator=NAME))

    @hookimpl
    def batchmig_register_emulators(self, registry: EmulatorRegistry) -> None:
        registry.add(
            EmulatorSpec(NAME, TestcloudEmulator, {"key_id": DEMO_KEY_ID, "secret": DEMO_SECRET}, "test cloud")
        )
