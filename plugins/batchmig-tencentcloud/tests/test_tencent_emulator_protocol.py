"""The emulators' API 3.0 behaviour over loopback: signature checks, routing,
parameter checks, the envelope, and documented preconditions."""

from __future__ import annotations

import json
from typing import Literal
from urllib.parse import urlencode, urlsplit

import pytest
from batchmig.emulator import RequestInfo
from batchmig.errors import NotFoundError, TransientError
from batchmig.plugin import Call

from batchmig_tencentcloud.emulator import DEMO_SECRET_ID, DEMO_SECRET_KEY, DtsEmulator, SqlServerEmulator
from batchmig_tencentcloud.signing import sign

pytestmark = pytest.mark.anyio


async def raw(env, action, params, *, method="POST", version="2018-03-28", service="sqlserver",
              secret_id=DEMO_SECRET_ID, secret_key=DEMO_SECRET_KEY, timestamp=None, region="ap-guangzhou",
              content_type="application/json", signed_host=None, date=None, extra_headers=None):  # fmt: skip
    """Send a hand-signed request; returns (HTTP status, Content-Type, Response object)."""
    host = urlsplit(env.server.url).netloc
    timestamp = int(env.sandbox.now()) if timestamp is None else timestamp
    if method == "GET":
        query, body = urlencode(params), b""
        content_type = "application/x-www-form-urlencoded"
    else:
        query, body = "", json.dumps(params).encode()
    signature = sign(
        secret_id=secret_id, secret_key=secret_key, service=service, timestamp=timestamp,
        headers={"content-type": content_type, "host": signed_host or host}, payload=body,
        method=method, query=query, date=date,
    )  # fmt: skip
    headers = {
        "Content-Type": content_type, "Host": host, "X-TC-Action": action, "X-TC-Version": version,
        "X-TC-Timestamp": str(timestamp), "Authorization": signature.authorization,
        **({"X-TC-Region": region} if region else {}), **(extra_headers or {}),
    }  # fmt: skip
    url = env.server.url + ("?" + query if query else "")
    async with env.http.request(method, url, headers=headers, data=body) as reply:
        return reply.status, reply.headers["Content-Type"], json.loads(await reply.read())["Response"]


def payloads(env):
    """The driver's ``send``, returning the answer's payload (read whole)."""

    async def send(call):
        return (await env.inspect.send(call)).payload

    return send


async def code_of(env, *args, **kwargs):
    status, content_type, response = await raw(env, *args, **kwargs)
    assert status == 200 and content_type == "application/json" and response["RequestId"]
    return response.get("Error", {}).get("Code")


async def test_success_envelope(sqlserver):
    status, content_type, response = await raw(sqlserver, "DescribeDBInstances", {})
    assert (status, content_type) == (200, "application/json")
    assert response["TotalCount"] == 0 and len(response["RequestId"]) == 36


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"secret_key": "wrong"}, "AuthFailure.SignatureFailure"),
        ({"secret_id": "AKIDunknown"}, "AuthFailure.SecretIdNotFound"),
        ({"timestamp_offset": -301}, "AuthFailure.SignatureExpire"),
        ({"timestamp_offset": 301}, "AuthFailure.SignatureExpire"),
        ({"service": "dts"}, "AuthFailure.SignatureFailure"),
        ({"date": "2001-01-01"}, "AuthFailure.SignatureFailure"),
        ({"signed_host": "sqlserver.tencentcloudapi.com"}, "AuthFailure.SignatureFailure"),  # port not signed
        ({"extra_headers": {"X-TC-Token": "sts"}}, "AuthFailure.TokenFailure"),
        (
            {"extra_headers": {"Authorization": "TC3-HMAC-SHA256 Credential=x"}},
            "AuthFailure.InvalidAuthorization",
        ),
        ({"version": "2017-03-12"}, "NoSuchVersion"),
        ({"region": ""}, "MissingParameter"),
        ({"region": "mars-north-1"}, "UnsupportedRegion"),
    ],
)
async def test_rejections(sqlserver, change, code):
    offset = change.pop("timestamp_offset", 0)
    timestamp = int(sqlserver.sandbox.now()) + offset
    assert await code_of(sqlserver, "DescribeDBInstances", {}, timestamp=timestamp, **change) == code


async def test_timestamp_within_five_minutes_and_charset_content_type_are_accepted(sqlserver):
    timestamp = int(sqlserver.sandbox.now()) - 299
    assert await code_of(sqlserver, "DescribeDBInstances", {}, timestamp=timestamp) is None
    content_type = "application/json; charset=utf-8"
    assert await code_of(sqlserver, "DescribeDBInstances", {}, content_type=content_type) is None


async def test_unknown_action(sqlserver):
    assert await code_of(sqlserver, "DescribeEverything", {}) == "InvalidAction"
    # DTS actions do not exist on the SQL Server endpoint.
    assert await code_of(sqlserver, "StartMigrateJob", {"JobId": "dts-1"}) == "InvalidAction"


@pytest.mark.parametrize(
    ("action", "params", "code"),
    [
        ("DescribeFlowStatus", {}, "MissingParameter"),
        ("DescribeFlowStatus", {"FlowId": 1, "Flow": 2}, "UnknownParameter"),
        ("DescribeFlowStatus", {"FlowId": "one"}, "InvalidParameterValue"),
        ("CreateBackup", {"InstanceId": ["mssql-abcd1234"]}, "InvalidParameterValue"),
        ("DescribeDBInstances", {"InstanceIdSet": "mssql-abcd1234"}, "InvalidParameterValue"),
        ("CreateBackupMigration", {"InstanceId": "mssql-abcd1234", "RecoveryType": "FULL",
                                   "UploadType": "COS_URL"}, "MissingParameter"),
    ],
)  # fmt: skip
async def test_parameter_checks(sqlserver, action, params, code):
    assert await code_of(sqlserver, action, params) == code


async def test_numbers_may_be_strings_and_get_requests_work(sqlserver):
    _, _, created = await raw(sqlserver, "CreateBackup", {"InstanceId": "mssql-abcd1234", "Strategy": "0"})
    flow_id = created["FlowId"]
    _, _, status = await raw(sqlserver, "DescribeFlowStatus", {"FlowId": str(flow_id)}, method="GET")
    assert status["Status"] == 2  # running
    params = {"InstanceId": "mssql-abcd1234", "Strategy": 1, "DBNames.0": "a", "DBNames.1": "b"}
    _, _, created = await raw(sqlserver, "CreateBackup", params, method="GET")
    _, _, backup = await raw(
        sqlserver,
        "DescribeBackupByFlowId",
        {"InstanceId": "mssql-abcd1234", "FlowId": str(created["FlowId"])},
    )
    assert backup["DBs"] == ["a", "b"] and backup["Status"] == 0


async def test_flow_and_backup_statuses_have_different_meanings(sqlserver):
    _, _, created = await raw(sqlserver, "CreateBackup", {"InstanceId": "mssql-abcd1234"})
    sqlserver.sandbox.advance(121)
    _, _, flow = await raw(sqlserver, "DescribeFlowStatus", {"FlowId": created["FlowId"]})
    _, _, backup = await raw(
        sqlserver,
        "DescribeBackupByFlowId",
        {"InstanceId": "mssql-abcd1234", "FlowId": str(created["FlowId"])},
    )
    assert (flow["Status"], backup["Status"]) == (0, 1)  # both mean success


async def test_sqlserver_preconditions(sqlserver):
    read = payloads(sqlserver)
    with pytest.raises(NotFoundError, match="InstanceNotFound"):
        await read(Call("CreateBackup", {"InstanceId": "mssql-nothere"}, mutating=True))
    base = {"InstanceId": "mssql-abcd1234", "UploadType": "COS_UPLOAD", "BackupFiles": ["full.bak"]}
    full = await read(Call("CreateBackupMigration", {**base, "RecoveryType": "FULL", "MigrationName": "f"}))
    ids = {"InstanceId": "mssql-abcd1234", "BackupMigrationId": full["BackupMigrationId"]}
    with pytest.raises(Exception, match="BackupMigrationRecoveryTypeErr"):
        await read(Call("CreateIncrementalMigration", {**ids, "BackupFiles": ["l.trn"]}))
    await read(Call("StartBackupMigration", ids))
    with pytest.raises(TransientError, match="CosStatusErr"):
        await read(Call("StartBackupMigration", ids))
    log = await read(
        Call("CreateBackupMigration", {**base, "RecoveryType": "FULL_LOG", "MigrationName": "l"})
    )
    ids = {"InstanceId": "mssql-abcd1234", "BackupMigrationId": log["BackupMigrationId"]}
    await read(Call("CreateIncrementalMigration", {**ids, "BackupFiles": ["l1.trn"]}))
    with pytest.raises(TransientError, match=r"ResourceInUse\.IncrementalMigrationExist"):
        await read(Call("CreateIncrementalMigration", {**ids, "BackupFiles": ["l2.trn"]}))
    with pytest.raises(NotFoundError, match="FullBackupMigrationNotExist"):
        await read(
            Call("StartBackupMigration", {**ids, "BackupMigrationId": "mssql-backup-migration-nothere"})
        )
    with pytest.raises(Exception, match="MigrationNameIsIllegal"):
        await read(Call("CreateBackupMigration", {**base, "RecoveryType": "FULL", "MigrationName": "a b"}))
    with pytest.raises(Exception, match="InputIllegal"):
        await read(Call("CreateBackupMigration", {**base, "RecoveryType": "FULL", "MigrationName": "two",
                                                  "BackupFiles": ["a.bak", "b.bak"]}))  # fmt: skip


async def test_import_task_view_tracks_allowed_actions(sqlserver):
    read = payloads(sqlserver)
    base = {"InstanceId": "mssql-abcd1234", "UploadType": "COS_URL", "BackupFiles": ["https://b/full.bak"]}
    created = await read(
        Call("CreateBackupMigration", {**base, "RecoveryType": "FULL", "MigrationName": "m"})
    )
    listing = Call("DescribeBackupMigration", {"InstanceId": "mssql-abcd1234", "MigrationName": "m"})
    [task] = (await read(listing))["BackupMigrationSet"]
    assert task["Status"] == 2 and "start" in task["Action"]["AllowedAction"]
    assert task["EndTime"] == "0000-00-00 00:00:00" and task["MigrationId"] == created["BackupMigrationId"]
    await read(Call("StartBackupMigration", {"InstanceId": "mssql-abcd1234",
                                             "BackupMigrationId": task["MigrationId"]}))  # fmt: skip
    [task] = (await read(listing))["BackupMigrationSet"]
    assert task["Status"] == 7 and task["Action"]["AllowedAction"] == ["view"]


JOB = {
    "JobName": "j1", "MigrateOption": {"RunMode": 1, "MigrateType": 3}, "SrcDatabaseType": "sqlserver",
    "SrcAccessType": "extranet", "SrcInfo": {"Ip": "203.0.113.1", "Port": 1433, "Region": "ap-guangzhou"},
    "DstDatabaseType": "sqlserver", "DstAccessType": "cdb",
    "DstInfo": {"Region": "ap-guangzhou", "InstanceId": "mssql-abcd1234"},
}  # fmt: skip


async def test_dts_preconditions(dts):
    send = payloads(dts)
    with pytest.raises(NotFoundError, match="JobNotExist"):
        await send(Call("CreateMigrateCheckJob", {"JobId": "dts-nothere"}))
    with pytest.raises(Exception, match="InvalidParameterValue"):
        await send(Call("DescribeMigrateJobs", {"Limit": 101}))
    with pytest.raises(Exception, match="DatabaseInfo"):
        await send(Call("CreateMigrateJob", {**JOB, "MigrateOption": {"RunMode": 1, "MigrateObject": 2}}))
    job = {"JobId": (await send(Call("CreateMigrateJob", JOB)))["JobId"]}
    check = await send(Call("DescribeMigrateCheckJob", job))
    assert (check["Status"], check["CheckFlag"]) == ("unavailable", 3)
    for action in ("StartMigrateJob", "StopMigrateJob", "CompleteMigrateJob"):
        with pytest.raises(Exception, match=r"FailedOperation\.StatusInConflict"):
            await send(Call(action, job))
    await send(Call("CreateMigrateCheckJob", job))
    dts.sandbox.advance(60)
    check = await send(Call("DescribeMigrateCheckJob", job))
    assert (check["Status"], check["CheckFlag"], check["ErrorMessage"]) == ("finished", 1, "ok")
    await send(Call("ModifyMigrateJob", {**job, "JobName": "renamed"}))  # voids the check
    with pytest.raises(Exception, match="StatusInConflict"):
        await send(Call("StartMigrateJob", job))
    await send(Call("CreateMigrateCheckJob", job))
    dts.sandbox.advance(60)
    await send(Call("StartMigrateJob", job))
    with pytest.raises(Exception, match="StatusInConflict"):
        await send(Call("DeleteMigrateJob", job))
    dts.sandbox.advance(900)
    [view] = (await send(Call("DescribeMigrateJobs", job)))["JobList"]
    assert view["Status"] == 8 and view["JobName"] == "renamed" and view["SrcInfo"]["Password"] == ""
    await send(Call("StopMigrateJob", job))
    dts.sandbox.advance(30)
    [view] = (await send(Call("DescribeMigrateJobs", job)))["JobList"]
    assert view["Status"] == 10 and view["ErrorInfo"][0]["ErrorLog"]
    await send(Call("DeleteMigrateJob", job))
    assert (await send(Call("DescribeMigrateJobs", job)))["JobList"] == []


async def test_dts_emulator_routes_on_its_own_version(dts):
    code = await code_of(dts, "DescribeMigrateJobs", {}, version="2018-03-28", service="dts")
    assert code == "NoSuchVersion"
    assert await code_of(dts, "DescribeMigrateJobs", {}, version="2018-03-30", service="dts") is None


def test_error_rendering_and_rate_limits(sandbox):
    emulator = SqlServerEmulator(sandbox)
    info = RequestInfo("CreateBackup", DEMO_SECRET_ID, "ap-guangzhou", True)
    kinds: list[tuple[Literal["throttle", "internal", "unavailable"], str]] = [
        ("throttle", "RequestLimitExceeded"),
        ("internal", "InternalError"),
        ("unavailable", "ServiceUnavailable"),
    ]
    for kind, code in kinds:
        response = emulator.error(info, kind)
        assert response.status == 200 and response.headers["Content-Type"] == "application/json"
        assert isinstance(response.body, bytes)
        body = json.loads(response.body)["Response"]
        assert body["Error"]["Code"] == code and body["RequestId"]
    polls = RequestInfo("DescribeMigrateJobs", "k", "ap-guangzhou", False)
    dts_throttle = DtsEmulator(sandbox).error(polls, "throttle")
    assert isinstance(dts_throttle.body, bytes)  # DTS documents its own code
    code = json.loads(dts_throttle.body)["Response"]["Error"]["Code"]
    assert code == "RequestLimitExceeded.RequestLimitExceededError"
    named = emulator.error(info, "throttle", "RequestLimitExceeded.UinLimitExceeded")
    assert isinstance(named.body, bytes)
    assert json.loads(named.body)["Response"]["Error"]["Code"] == "RequestLimitExceeded.UinLimitExceeded"
    assert emulator.rate_limits["DescribeDBInstances"] == 70.0
    assert emulator.rate_limits["CreateBackup"] == emulator.rate_limits["StartBackupMigration"] == 20.0
    assert set(DtsEmulator(sandbox).rate_limits.values()) == {20.0}


async def message_of(env, *args, **kwargs):
    _, _, response = await raw(env, *args, **kwargs)
    return response["Error"]["Message"]


@pytest.mark.parametrize(
    ("language", "expected"), [(None, "不存在"), ("zh-CN", "不存在"), ("en-US", "does not exist"), ("fr-FR", "不存在")]
)
async def test_error_messages_follow_x_tc_language(sqlserver, dts, language, expected):
    headers = {"X-TC-Language": language} if language else {}
    missing = {"InstanceId": "mssql-abcd1234", "BackupMigrationId": "mssql-backup-migration-nothere"}
    assert expected in await message_of(sqlserver, "StartBackupMigration", missing, extra_headers=headers)
    unknown_key = await message_of(sqlserver, "DescribeDBInstances", {}, secret_id="AKIDnone", extra_headers=headers)
    assert expected in unknown_key
    assert expected in await message_of(dts, "StartMigrateJob", {"JobId": "dts-nothere"}, version="2018-03-30",
                                        service="dts", extra_headers=headers)  # fmt: skip


async def test_lagging_lists_leave_new_resources_out_and_per_id_reads_do_not(sqlserver, dts):
    for env in (sqlserver, dts):
        env.server.inject("list_lag", seconds=30, count=None)
    send, send_dts = payloads(sqlserver), payloads(dts)
    created = await send(Call("CreateBackupMigration", {
        "InstanceId": "mssql-abcd1234", "RecoveryType": "FULL", "UploadType": "COS_URL", "MigrationName": "lag",
        "BackupFiles": ["https://b.cos.ap-guangzhou.myqcloud.com/a.bak"]}))  # fmt: skip
    backup = await send(Call("CreateBackup", {"InstanceId": "mssql-abcd1234", "BackupName": "lagging"}))
    job = await send_dts(Call("CreateMigrateJob", JOB))
    lists = [
        (send, Call("DescribeBackupMigration", {"InstanceId": "mssql-abcd1234", "MigrationName": "lag"}),
         "BackupMigrationSet"),
        (send, Call("DescribeBackups", {"InstanceId": "mssql-abcd1234", "StartTime": "2000-01-01 00:00:00",
                                        "EndTime": "2100-01-01 00:00:00"}), "Backups"),
        (send_dts, Call("DescribeMigrateJobs", {"JobId": job["JobId"]}), "JobList"),
    ]  # fmt: skip
    for ask, call, items in lists:
        answer = await ask(call)
        assert (answer["TotalCount"], answer[items]) == (0, [])
    by_flow = {"InstanceId": "mssql-abcd1234", "FlowId": str(backup["FlowId"])}
    assert (await send(Call("DescribeBackupByFlowId", by_flow)))["BackupName"] == "lagging"
    check = await send_dts(Call("DescribeMigrateCheckJob", {"JobId": job["JobId"]}))
    assert check["CheckFlag"] == 3
    sqlserver.sandbox.advance(30)  # (both emulators share the fake clock)
    for ask, call, _ in lists:
        assert (await ask(call))["TotalCount"] == 1
    ids = {"InstanceId": "mssql-abcd1234", "BackupMigrationId": created["BackupMigrationId"]}
    assert (await send(Call("DescribeIncrementalMigration", ids)))["TotalCount"] == 0
