"""The DRS emulator over real loopback HTTP: gateway auth, endpoints, rules, states."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from batchmig.errors import NotFoundError, PermanentError, ThrottleError, TransientError
from batchmig.plugin import Call, HttpFetch, HttpRequest
from batchmig.testing import EmulatorHost, FakeSandboxContext, StepDriver

from batchmig_huaweicloud import api, signer
from batchmig_huaweicloud.demo import DEMO_CREDENTIALS
from batchmig_huaweicloud.emulator.routes import route
from batchmig_huaweicloud.emulator.validation import Invalid, validate_create
from batchmig_huaweicloud.settings import DrsOptions

PROJECT = DEMO_CREDENTIALS["project_id"]
TARGET = "0a3182607bc549bcb46cc9a8755761a6in04"


def body(name: str = "DRS-7526", **options: Any) -> dict[str, Any]:
    """The seed's OBS full example (its placeholders included)."""
    return {
        "base_info": {
            "name": name,
            "engine_type": "sqlserver",
            "enterprise_project_id": "0",
            "description": "Destination RDS instance name: rds-sqlserver-2022-stand",
            "tags": [],
        },
        "target_db_info": {"target_instance_id": TARGET, "ms_file_stream_status": "off", "file_id": ""},
        "backup_info": {
            "file_source": "OBS",
            "bucket_name": "zyy-obs",
            "files": [{"name": "1706510914000_0_Test_Database.bak", "obs_path": "", "size": "8.75 MB"}],
        },
        "options": {
            "is_cover": True,
            "recovery_mode": "full",
            "is_default_restore": True,
            "is_last_backup": True,
            "reset_db_name_map": {},
            "is_precheck": True,
            "is_delete_backup_file": True,
            "db_names": [""],
            **options,
        },
    }


RDS_EXAMPLE = {
    "base_info": {
        "name": "DRS-7526",
        "engine_type": "sqlserver",
        "enterprise_project_id": "0",
        "description": "miao'shu",
        "tags": [],
    },
    "target_db_info": {
        "target_instance_id": TARGET,
        "ms_file_stream_status": "off",
        "file_id": "0d87037d934848999fdc10bbabb08e6fbr04",
    },
    "backup_info": {
        "file_source": "RDS",
        "files": [
            {
                "name": "",
                "obs_path": "",
                "rds_version": "2019_EE",
                "rds_source_instance_id": "7fb189b57339473a929d41dabb3878a2in04",
            }
        ],
    },
    "options": {
        "is_precheck": True,
        "recovery_mode": "",
        "is_last_backup": "",
        "reset_db_name_map": {"db_test12": "", "db_hailiang_schema": "", "db_sqls2v5_01": ""},
        "db_names": ["db_test12", "db_hailiang_schema", "db_sqls2v5_01"],
    },
}


async def send(client: StepDriver, call: Call) -> dict[str, Any]:
    """One call through the connection; the answer's payload."""
    return dict((await client.send(call)).payload)


async def create(client: StepDriver, payload: dict[str, Any]) -> str:
    answer = await send(client, Call(api.CREATE, {"body": payload}, mutating=True))
    return str(answer["job_id"])


async def show(client: StepDriver, job_id: str) -> dict[str, Any]:
    return await send(client, Call(api.SHOW, {"job_id": job_id}))


async def wait_terminal(client: StepDriver, job_id: str) -> dict[str, Any]:
    for _ in range(500):
        detail = await show(client, job_id)
        if detail["status"] in ("SUCCESS", "FAILED", "PRECHECK FAILED"):
            return detail
        await client.sleep(0.01)  # ten cloud seconds at the sandbox's time scale
    raise AssertionError("job never finished")


# ------------------------------------------------------------------------ gateway


async def signed(
    http_send: HttpFetch,
    sandbox: EmulatorHost,
    *,
    ak: str = DEMO_CREDENTIALS["ak"],
    sk: str = DEMO_CREDENTIALS["sk"],
    date: float | None = None,
    path: str | None = None,
    extra: dict[str, str] | None = None,
    tamper: bool = False,
) -> tuple[int, dict[str, Any]]:
    path = path or f"/v5/{PROJECT}/backup-migration-jobs"
    url = sandbox.url + path + "?limit=5"
    headers = {
        "Host": url.split("/")[2],
        "X-Sdk-Date": signer.format_sdk_date(date or time.time()),
        "Content-Type": "application/json",
        **(extra or {}),
    }
    headers["Authorization"] = signer.sign(
        access_key=ak,
        secret_key=sk,
        method="GET",
        path=path,
        query=[("limit", "5")],
        headers=headers,
        body=b"",
    )
    if tamper:
        url = url.replace("limit=5", "limit=6")
    answer = await http_send(HttpRequest("GET", url, headers))
    return answer.status, json.loads(answer.body)


@pytest.mark.anyio
async def test_gateway_accepts_any_signed_header_set(sandbox: EmulatorHost, http_send: HttpFetch) -> None:
    status, payload = await signed(http_send, sandbox)
    assert (status, payload) == (200, {"count": 0, "jobs": []})
    # Go SDK style: only x-sdk-date signed, Host not signed at all.
    path = f"/v5/{PROJECT}/backup-migration-jobs"
    headers = {"X-Sdk-Date": signer.format_sdk_date(time.time())}
    canonical = signer.canonical_request("GET", path, [], headers, ["x-sdk-date"], b"")
    sig = signer.signature(DEMO_CREDENTIALS["sk"], signer.string_to_sign(headers["X-Sdk-Date"], canonical))
    headers["Authorization"] = signer.authorization_header(DEMO_CREDENTIALS["ak"], ["x-sdk-date"], sig)
    answer = await http_send(HttpRequest("GET", sandbox.url + path, headers))
    assert answer.status == 200
    assert answer.headers.get("x-request-id")


@pytest.mark.anyio
async def test_gateway_rejections(sandbox: EmulatorHost, http_send: HttpFetch) -> None:
    status, payload = await signed(http_send, sandbox, tamper=True)
    assert status == 401 and payload["error_code"] == "APIGW.0301"
    assert "verify aksk signature fail, canonicalRequest:GET|/v5/" in payload["error_msg"]
    assert payload["request_id"]
    status, payload = await signed(http_send, sandbox, ak="NOSUCHKEY")
    assert status == 401 and "ak not exist" in payload["error_msg"]
    status, payload = await signed(http_send, sandbox, date=time.time() - 16 * 60)
    assert status == 401 and "15 minutes" in payload["error_msg"]
    status, _ = await signed(http_send, sandbox, date=time.time() + 14 * 60)
    assert status == 200
    answer = await http_send(HttpRequest("GET", sandbox.url + f"/v5/{PROJECT}/backup-migration-jobs", {})
    )
    assert answer.status == 401 and b"x-auth-token not found" in answer.body
    answer = await http_send(HttpRequest("GET", sandbox.url + "/v5/p/nothing-here", {}))
    assert answer.status == 404 and json.loads(answer.body)["error_code"] == "APIGW.0101"
    status, payload = await signed(http_send, sandbox, extra={"X-Project-Id": "another"})
    assert status == 403 and payload["error_code"] == "DRS.M00261"


@pytest.mark.anyio
async def test_five_failures_lock_the_key(sandbox: EmulatorHost, http_send: HttpFetch) -> None:
    for _ in range(5):
        status, _ = await signed(http_send, sandbox, sk="wrong")
        assert status == 401
    status, payload = await signed(http_send, sandbox)
    assert status == 401 and "reach the limit" in payload["error_msg"]
    sandbox.context.advance(301)
    status, _ = await signed(http_send, sandbox, date=time.time() + 301)
    assert status == 200


@pytest.mark.anyio
async def test_tokens_and_projects(sandbox: EmulatorHost, http_send: HttpFetch) -> None:
    auth = {
        "auth": {
            "identity": {
                "methods": ["password"],
                "password": {
                    "user": {
                        "name": "sandbox-user",
                        "password": "sandbox-password",
                        "domain": {"name": "sandbox-domain"},
                    }
                },
            },
            "scope": {"project": {"name": "ap-southeast-1"}},
        }
    }
    url = sandbox.url + "/v3/auth/tokens?nocatalog=true"
    answer = await http_send(HttpRequest("POST", url, {"Content-Type": "application/json"}, json.dumps(auth).encode())
    )
    assert answer.status == 201
    token = answer.headers["x-subject-token"]
    detail = json.loads(answer.body)["token"]
    project = detail["project"]["id"]
    assert detail["project"]["name"] == "ap-southeast-1" and detail["expires_at"].endswith("Z")
    jobs = f"{sandbox.url}/v5/{project}/backup-migration-jobs"
    ok = await http_send(HttpRequest("GET", jobs, {"X-Auth-Token": token}))
    assert ok.status == 200
    other = await http_send(HttpRequest("GET", jobs.replace(project, PROJECT), {"X-Auth-Token": token}))
    assert other.status == 403
    bad = await http_send(HttpRequest("GET", jobs, {"X-Auth-Token": "MIIforged"}))
    assert bad.status == 401 and b"decrypt token fail" in bad.body
    sandbox.context.advance(24 * 3600 / sandbox.context.time_scale + 1)
    expired = await http_send(HttpRequest("GET", jobs, {"X-Auth-Token": token}))
    assert expired.status == 401 and b"token expires" in expired.body
    auth["auth"]["identity"]["password"]["user"]["password"] = "nope"  # type: ignore[index]
    denied = await http_send(HttpRequest("POST", url, {}, json.dumps(auth).encode()))
    assert denied.status == 401 and json.loads(denied.body)["error"]["code"] == 401


@pytest.mark.anyio
async def test_sandbox_credentials_come_from_the_context() -> None:
    from batchmig_huaweicloud.emulator import HuaweiDrsEmulator

    emulator = HuaweiDrsEmulator(FakeSandboxContext(credentials={"OTHERAK": "othersk"}))
    assert emulator._gateway._secrets["OTHERAK"] == "othersk"
    assert emulator.rate_limits[api.CREATE] == 10.0


# ----------------------------------------------------------------------- endpoints


@pytest.mark.anyio
async def test_create_show_list_update_delete_shapes(client: StepDriver, sandbox: EmulatorHost) -> None:
    job_id = await create(client, body())
    assert job_id[-5:-3] == "jb" and job_id.count("-") == 4
    detail = await show(client, job_id)
    assert detail["status"] == "TRANSFERRING" and detail["finish_time"] == ""
    assert detail["backup_info"]["file_info"][0]["file_name"] == "1706510914000_0_Test_Database.bak"
    assert set(detail["backup_info"]["file_info"][0]) == {"file_name", "file_size", "file_last_modify"}
    assert "files" not in detail["backup_info"]
    assert detail["base_info"]["name"] == "DRS-7526"
    assert detail["target_db_info"]["target_instance_id"] == TARGET
    assert detail["options"]["recovery_mode"] in ("full", "1")
    assert detail["instance_name"] == "" and detail["new_db_names"] == "[]"
    listed = await send(client, Call(api.LIST, {"query": {"name": "drs-75"}}))
    assert listed["count"] == 1
    assert set(listed["jobs"][0]) >= {"id", "name", "status", "engine_type", "create_time", "error_log"}
    with pytest.raises(PermanentError) as running:
        await send(client, Call(api.DELETE, {"job_id": job_id}, mutating=True))
    assert running.value.code == "DRS.10000001"  # the delete page's documented 400
    await send(client,
        Call(api.UPDATE, {"job_id": job_id, "body": {"name": "renamed-1", "description": "x"}}, mutating=True)
    )
    finished = await wait_terminal(client, job_id)
    assert finished["status"] == "SUCCESS" and finished["finish_time"].endswith("Z")
    assert finished["base_info"]["name"] == "renamed-1"
    deleted = await send(client, Call(api.DELETE, {"job_id": job_id}, mutating=True))
    assert deleted == {}  # the request id travels in the Answer, not the payload
    with pytest.raises(NotFoundError) as gone:
        await show(client, job_id)
    assert gone.value.code == "DRS.10000010" and gone.value.http_status == 400
    assert (await send(client, Call(api.LIST, {"query": {}})))["count"] == 0
    assert next(e["resource"] for e in sandbox.audit if e.get("changed")) == "DRS-7526"


@pytest.mark.anyio
async def test_list_filters_and_pages(client: StepDriver) -> None:
    ids = []
    for i in range(7):
        ids.append(await create(client, body(f"job-{i:02d}", is_cover=True)))
        await client.sleep(0.001)  # a cloud second apart: newest first is well defined
    page = await send(client, Call(api.LIST, {"query": {"limit": 3, "offset": 0}}))
    assert page["count"] == 7 and [j["id"] for j in page["jobs"]] == ids[::-1][:3]
    last = await send(client, Call(api.LIST, {"query": {"limit": 3, "offset": 6}}))
    assert [j["id"] for j in last["jobs"]] == [ids[0]]
    asc = await send(client, Call(api.LIST, {"query": {"sort_dir": "asc", "limit": 1}}))
    assert asc["jobs"][0]["id"] == ids[0]
    for job_id in ids:
        await wait_terminal(client, job_id)
    # The six later ones failed their precheck: the first was restoring the same database.
    query = {"status": "precheck failed", "dbs_instance_ids": [TARGET]}
    failed = await send(client, Call(api.LIST, {"query": query}))
    assert failed["count"] == 6
    other_target = await send(client, Call(api.LIST, {"query": {"dbs_instance_ids": ["elsewhere"]}}))
    assert other_target["count"] == 0
    with pytest.raises(PermanentError):
        await send(client, Call(api.LIST, {"query": {"dbs_instance_ids": [f"i{i}" for i in range(11)]}}))
    with pytest.raises(PermanentError):
        await send(client, Call(api.LIST, {"query": {"limit": "many"}}))


@pytest.mark.anyio
async def test_newest_first_lists_of_many_jobs_answer_as_the_general_path(
    client: StepDriver, sandbox: EmulatorHost[FakeSandboxContext]
) -> None:
    """The poller's list (newest first, by name at most) is served from a kept order; it must
    answer as the filtered and sorted list of every job (reached here through a filter every
    job passes), with equal creation times, renames, deletes and a lagging list."""

    async def both(query: dict[str, Any]) -> dict[str, Any]:
        kept = await send(client, Call(api.LIST, {"query": query}))
        general = await send(client, Call(api.LIST, {"query": {**query, "enterprise_project_id": "0"}}))
        assert kept == general, query
        return kept

    ids = []
    for i in range(36):
        ids.append(await create(client, body(f"Run-7-job-{i:02d}" if i % 4 else f"other-{i:02d}", is_cover=True)))
        sandbox.context.advance([0.0, 0.0, 0.0004, 0.03][i % 4])  # several jobs share a creation time
        if i == 20:
            await both({"limit": 100})  # the order is kept from here on
    for job_id in ids[::5]:
        await send(client, Call(api.UPDATE, {"job_id": job_id, "body": {"name": f"renamed-{job_id[:4]}"}},
                                mutating=True))
    sandbox.context.advance(10)  # every job finished: the first ones can be deleted
    for job_id in ids[1:12:3]:
        await send(client, Call(api.DELETE, {"job_id": job_id}, mutating=True))
    late = [await create(client, body(f"run-7-late-{i}")) for i in range(3)]
    for name in (None, "run-7", "RUN-7-JOB-1", "renamed", "nothing"):
        for offset, limit in ((0, 100), (0, 7), (5, 7), (30, 10), (40, 5)):
            query = {"offset": offset, "limit": limit, **({"name": name} if name else {})}
            await both(query)
    everything = await both({"limit": 100})
    assert everything["count"] == 36 + 3 - 4 and [job["id"] for job in everything["jobs"]][:3] == late
    sandbox.inject("list_lag", seconds=5, count=None)
    lagging = await both({"limit": 100, "name": "run-7"})
    assert not {job["id"] for job in lagging["jobs"]} & set(late)


@pytest.mark.anyio
async def test_the_seed_rds_example_is_accepted(client: StepDriver) -> None:
    job_id = await create(client, RDS_EXAMPLE)
    detail = await wait_terminal(client, job_id)
    assert detail["status"] == "SUCCESS"
    assert detail["backup_info"]["file_source"] == "RDS"
    assert detail["target_db_info"]["file_id"] == "0d87037d934848999fdc10bbabb08e6fbr04"


# ---------------------------------------------------------- validation as DRS 400s


def broken(path: str, value: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(json.dumps(body()))
    *parents, leaf = path.split(".")
    node: Any = payload
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    if value is KeyError:
        del node[leaf]
    else:
        node[leaf] = value
    return payload


@pytest.mark.parametrize(
    ("path", "value", "code", "fragment"),
    [
        ("base_info.name", "abc", "DRS.M00202", "base_info.name"),
        ("base_info.name", "1abcd", "DRS.M00202", "start with a letter"),
        ("base_info.name", "a" * 51, "DRS.M00202", "base_info.name"),
        ("base_info.name", KeyError, "DRS.10000001", "base_info.name is empty"),
        ("base_info.engine_type", "mysql", "DRS.M00202", "engine_type"),
        ("base_info.tags", [{"key": "k" * 37, "value": "v"}], "DRS.M00202", "at most 36"),
        ("base_info.tags", [{"key": "a b", "value": "v"}], "DRS.M00202", "tags.key"),
        ("base_info.tags", [{"key": "k", "value": "a#b"}], "DRS.M00202", "tags.value"),
        (
            "base_info.tags",
            [{"key": "k", "value": "1"}, {"key": "k", "value": "2"}],
            "DRS.M00202",
            "Duplicate",
        ),
        ("backup_info.file_source", "obs", "DRS.M00202", "file_source"),
        ("backup_info.bucket_name", KeyError, "DRS.10000001", "bucket_name is empty"),
        ("backup_info.bucket_name", "Bad_Bucket", "DRS.M00202", "bucket_name"),
        ("backup_info.bucket_name", "10.0.0.1", "DRS.M00202", "IP address"),
        ("backup_info.bucket_name", "-abc", "DRS.M00202", "start and end"),
        ("backup_info.files", [], "DRS.10000001", "files is empty"),
        ("backup_info.files.0.name", "", "DRS.10000001", "files[0].name"),
        ("target_db_info.target_instance_id", "", "DRS.10000001", "target_instance_id"),
        ("options.recovery_mode", "FULL", "DRS.M00202", "recovery_mode"),
        ("options.recovery_mode", KeyError, "DRS.10000001", "recovery_mode"),
        ("options.is_last_backup", KeyError, "DRS.10000001", "is_last_backup"),
        ("options.is_precheck", "yes", "DRS.M00202", "is_precheck"),
        ("options.reset_db_name_map", {"old": "new"}, "DRS.M00202", "empty string"),
        ("options.is_default_restore", False, "DRS.10000001", "db_names"),
    ],
)
@pytest.mark.anyio
async def test_create_rules_answer_http_400(
    client: StepDriver, path: str, value: Any, code: str, fragment: str
) -> None:
    with pytest.raises(PermanentError) as refused:
        await create(client, broken(path, value))
    assert (refused.value.http_status, refused.value.code) == (400, code)
    assert fragment in refused.value.message


@pytest.mark.parametrize(
    "options",
    [
        {"reset_db_name_map": {"": "new"}, "recovery_mode": "incre"},
        {"reset_db_name_map": {"": "new"}, "is_last_backup": False},
        {"reset_db_name_map": {"": "new"}, "is_default_restore": False, "db_names": ["a", "b"]},
    ],
)
def test_reset_db_name_map_constraints(options: dict[str, Any]) -> None:
    with pytest.raises(Invalid, match="reset_db_name_map"):
        validate_create(body(**options))
    assert validate_create(body(reset_db_name_map={"": "new"})).options["reset_db_name_map"] == {"": "new"}


@pytest.mark.parametrize(
    "field",
    [
        "target_db_info.file_id",
        "backup_info.files.0.rds_version",
        "backup_info.files.0.rds_source_instance_id",
    ],
)
def test_rds_required_fields_answer_empty(field: str) -> None:
    payload = json.loads(json.dumps(RDS_EXAMPLE))
    *parents, leaf = field.split(".")
    node = payload
    for part in parents:
        node = node[int(part)] if part.isdigit() else node[part]
    node[leaf] = ""
    with pytest.raises(Invalid) as refused:
        validate_create(payload)
    assert refused.value.code == "DRS.10000001"


# -------------------------------------------------------------------- state machine


@pytest.mark.anyio
async def test_incremental_needs_a_restoring_database(client: StepDriver) -> None:
    orphan = await create(client, body("incre-first", recovery_mode="incre", is_last_backup=False))
    failed = await wait_terminal(client, orphan)
    assert failed["status"] == "PRECHECK FAILED" and "RESTORING" in failed["error_log"]
    listed = await send(client, Call(api.LIST, {"query": {"name": "incre-first"}}))
    assert listed["jobs"][0]["error_log"] == failed["error_log"]

    full = await create(client, body("chain-full", is_last_backup=False))
    assert (await wait_terminal(client, full))["status"] == "SUCCESS"
    incr = await create(client, body("chain-incr1", recovery_mode="incre", is_last_backup=False))
    assert (await wait_terminal(client, incr))["status"] == "SUCCESS"
    last = await create(client, body("chain-last", recovery_mode="incre", is_last_backup=True))
    assert (await wait_terminal(client, last))["status"] == "SUCCESS"
    after = await create(client, body("too-late", recovery_mode="incre", is_last_backup=True))
    assert (await wait_terminal(client, after))[
        "status"
    ] == "PRECHECK FAILED"  # online now: no more incrementals
    again = await create(client, body("no-cover", is_cover=False))
    assert "is_cover" in (await wait_terminal(client, again))["error_log"]


@pytest.mark.anyio
async def test_forced_failures_without_and_with_precheck(client: StepDriver) -> None:
    payload = body("restore-fails")
    payload["backup_info"]["files"][0]["name"] = "db-restore-fail.bak"
    detail = await wait_terminal(client, await create(client, payload))
    assert detail["status"] == "FAILED" and "RESTORE DATABASE failed" in detail["error_log"]
    payload = body("precheck-fails", is_precheck=False)
    payload["backup_info"]["files"][0]["name"] = "db-precheck-fail.bak"
    detail = await wait_terminal(client, await create(client, payload))
    assert detail["status"] == "FAILED"  # no precheck: the same problem fails the restore


@pytest.mark.parametrize(
    "sandbox_options",
    [
        {
            "initial_status": "CONFIGURATION",
            "initial_status_seconds": 10,
            "time_format": "epoch_ms",
            "numeric_recovery_mode_rate": 1.0,
        }
    ],
)
@pytest.mark.anyio
async def test_quirks_unknown_first_state_epoch_times_numeric_mode(client: StepDriver) -> None:
    job_id = await create(client, body("quirky"))
    detail = await show(client, job_id)
    assert detail["status"] == "CONFIGURATION"
    assert detail["create_time"].isdigit()
    assert detail["options"]["recovery_mode"] == "1"


def test_timed_transitions_are_computed_from_stored_times() -> None:
    from batchmig_huaweicloud.emulator.restores import JobBook

    ctx = FakeSandboxContext(time_scale=1.0, options={"precheck_seconds": 10, "full_restore_seconds": 100})
    book = JobBook(ctx)
    job = book.create(PROJECT, validate_create(body()))
    assert book.status(job) == "TRANSFERRING"
    ctx.advance(200)  # a restarted sandbox finds it finished, with no task running meanwhile
    assert book.status(book.get(PROJECT, job["id"]) or {}) == "SUCCESS"


# --------------------------------------------------------------------- error dialect


@pytest.mark.anyio
async def test_throttle_and_faults_in_huawei_dialect(client: StepDriver, sandbox: EmulatorHost) -> None:
    sandbox.inject("throttle", action=api.LIST)
    with pytest.raises(ThrottleError) as throttled:
        await send(client, Call(api.LIST, {"query": {}}))
    assert throttled.value.code == "APIGW.0308" and throttled.value.http_status == 429
    assert "limit:20,time:1 second" in throttled.value.message and throttled.value.request_id
    from batchmig.emulator import RequestInfo

    info = RequestInfo(api.CREATE, "ak", "r", True)
    drs_limit = sandbox.emulator.error(info, "throttle", "DRS.M01503")
    assert drs_limit.status == 400
    sandbox.inject("error", action=api.SHOW)
    with pytest.raises(TransientError) as internal:
        await show(client, "whatever")
    assert internal.value.http_status == 500 and internal.value.code == "DRS.M00004"
    assert sandbox.emulator.error(info, "unavailable").status == 503


@pytest.mark.anyio
async def test_drs_errors_follow_x_language_and_the_gateway_speaks_english(
    sandbox: EmulatorHost, make_client: Callable[..., StepDriver]
) -> None:
    chinese = make_client(options=DrsOptions(language="zh-cn"))
    english = make_client(options=DrsOptions(language="en-us"))
    default = make_client()
    for client, expected in ((chinese, "任务不存在"), (english, "Job does not exist"), (default, "Job does not exist")):
        with pytest.raises(NotFoundError) as missing:
            await show(client, "no-such-jb000")
        assert expected in missing.value.message
    with pytest.raises(PermanentError) as refused:
        await create(chinese, broken("base_info.name", KeyError))
    assert refused.value.code == "DRS.10000001" and "参数 base_info.name 为空" in refused.value.message
    sandbox.inject("throttle", action=api.LIST)
    with pytest.raises(ThrottleError) as throttled:
        await chinese.send(Call(api.LIST, {"query": {}}))
    assert "throttling threshold" in throttled.value.message  # APIGW ignores X-Language


@pytest.mark.anyio
async def test_a_lagging_list_leaves_new_jobs_out_and_show_does_not(
    client: StepDriver, sandbox: EmulatorHost[FakeSandboxContext]
) -> None:
    sandbox.inject("list_lag", seconds=30, count=None)
    job_id = await create(client, body("lagging-job"))
    listed = await send(client, Call(api.LIST, {"query": {"name": "lagging"}}))
    assert (listed["count"], listed["jobs"]) == (0, [])
    assert (await show(client, job_id))["id"] == job_id
    sandbox.context.advance(30)
    assert (await send(client, Call(api.LIST, {"query": {"name": "lagging"}})))["count"] == 1


def test_routes() -> None:
    assert route("POST", "/v5/p/backup-migration-jobs").action == api.CREATE  # type: ignore[union-attr]
    assert route("GET", "/v5/p/backup-migration-jobs/j1").params == {"project_id": "p", "job_id": "j1"}  # type: ignore[union-attr]
    assert route("PATCH", "/v5/p/backup-migration-jobs/j1") is None
    assert route("GET", "/v3/projects").action == "KeystoneListProjects"  # type: ignore[union-attr]
