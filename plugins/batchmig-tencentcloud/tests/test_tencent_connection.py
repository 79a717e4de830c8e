"""Request building (endpoints, headers, signing) and answer classification."""

from __future__ import annotations

import dataclasses
import json

import pytest
from batchmig.errors import (
    NotFoundError,
    PermanentError,
    ThrottleError,
    TransientError,
    UnknownOutcomeError,
)
from batchmig.plugin import Call, HttpResponse
from batchmig.testing import provider_config

from batchmig_tencentcloud import secret_refs
from batchmig_tencentcloud.codes import classify
from batchmig_tencentcloud.connection import TencentConnection
from batchmig_tencentcloud.dts.provider import DTS_API
from batchmig_tencentcloud.options import TencentOptions
from batchmig_tencentcloud.signing import sign
from batchmig_tencentcloud.sqlserver.provider import SQLSERVER_API

pytestmark = pytest.mark.anyio
KEYS = {"secret_id": "AKIDtest", "secret_key": "secret-key-value"}


def connection(endpoint=None, options=None, api=SQLSERVER_API, clock=lambda: 1700000000.0, **credentials):
    config = provider_config("tencent-sqlserver", endpoint, KEYS | credentials, region="ap-guangzhou", options=options)
    return TencentConnection(config, api, clock=clock)


@pytest.mark.parametrize(
    ("endpoint", "options", "url", "host"),
    [
        (None, None, "https://sqlserver.tencentcloudapi.com/", "sqlserver.tencentcloudapi.com"),
        (
            None,
            TencentOptions(pin_region=True),
            "https://sqlserver.ap-guangzhou.tencentcloudapi.com/",
            "sqlserver.ap-guangzhou.tencentcloudapi.com",
        ),
        (
            None,
            TencentOptions(root_domain="intl.tencentcloudapi.com"),
            "https://sqlserver.intl.tencentcloudapi.com/",
            "sqlserver.intl.tencentcloudapi.com",
        ),
        ("http://127.0.0.1:8421", None, "http://127.0.0.1:8421/", "127.0.0.1:8421"),
    ],
)
async def test_endpoints(endpoint, options, url, host):
    request = await connection(endpoint, options).prepare(Call("DescribeFlowStatus", {"FlowId": 1}))
    assert request.url == url and request.headers["Host"] == host


async def test_request_is_signed_post_json_with_common_headers():
    request = await connection().prepare(Call("DescribeFlowStatus", {"FlowId": 30403}))
    headers = request.headers
    assert request.method == "POST" and json.loads(request.body) == {"FlowId": 30403}
    assert headers["Content-Type"] == "application/json"
    assert headers["X-TC-Action"] == "DescribeFlowStatus" and headers["X-TC-Version"] == "2018-03-28"
    assert headers["X-TC-Region"] == "ap-guangzhou" and headers["X-TC-Language"] == "en-US"
    assert headers["X-TC-Timestamp"] == "1700000000" and "X-TC-Token" not in headers
    expected = sign(
        secret_id="AKIDtest",
        secret_key="secret-key-value",
        service="sqlserver",
        timestamp=1700000000,
        headers={"content-type": "application/json", "host": "sqlserver.tencentcloudapi.com"},
        payload=request.body,
    )
    assert headers["Authorization"] == expected.authorization
    assert "secret-key-value" not in repr(request)


async def test_every_attempt_is_signed_afresh_and_tokens_are_sent():
    now = [1700000000.0]
    conn = connection(api=DTS_API, clock=lambda: now[0], session_token="sts-token")
    first = await conn.prepare(Call("StartMigrateJob", {"JobId": "dts-1"}, mutating=True))
    now[0] += 400
    second = await conn.prepare(Call("StartMigrateJob", {"JobId": "dts-1"}, mutating=True))
    assert first.headers["X-TC-Token"] == "sts-token"
    assert second.headers["X-TC-Timestamp"] == "1700000400"
    assert first.headers["Authorization"] != second.headers["Authorization"]
    assert "/dts/tc3_request" in first.headers["Authorization"]


async def test_missing_credentials_are_a_permanent_error():
    conn = connection(secret_id="")
    with pytest.raises(PermanentError, match="TENCENTCLOUD_SECRET_ID"):
        await conn.prepare(Call("DescribeFlowStatus", {"FlowId": 1}))
    assert conn.account == "anonymous"


def test_account_is_the_label_or_a_fingerprint_never_the_secret():
    conn = connection()
    assert conn.account.startswith("akid-") and "AKIDtest" not in conn.account
    config = provider_config("tencent-sqlserver", None, KEYS, region="ap-guangzhou")
    labelled = TencentConnection(type(config)(**{**config.__dict__, "account": "prod"}), SQLSERVER_API)
    assert labelled.account == "prod"


async def test_secret_references_are_resolved_only_in_the_signed_body(monkeypatch):
    monkeypatch.setenv("DB_PW", "pw-from-env")
    conn = connection(db_password="pw-from-credentials")
    params = {"SrcInfo": {"Password": secret_refs.env_ref("DB_PW")},
              "DstInfo": {"Password": secret_refs.credential_ref("db_password")}}  # fmt: skip
    request = await conn.prepare(Call("CreateMigrateJob", params, mutating=True))
    body = json.loads(request.body)
    assert body["SrcInfo"]["Password"] == "pw-from-env"
    assert body["DstInfo"]["Password"] == "pw-from-credentials"
    monkeypatch.delenv("DB_PW")
    with pytest.raises(PermanentError, match="DB_PW"):
        await conn.prepare(Call("CreateMigrateJob", params, mutating=True))


# -------------------------------------------------------------------- parsing


def answer(payload, status=200, content_type="application/json"):
    body = payload if isinstance(payload, bytes) else json.dumps({"Response": payload}).encode()
    return HttpResponse(status, {"content-type": content_type}, body)


def error(code, request_id="req-1"):
    return answer({"Error": {"Code": code, "Message": "text"}, "RequestId": request_id})


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        ("RequestLimitExceeded", ThrottleError),
        ("RequestLimitExceeded.UinLimitExceeded", ThrottleError),
        ("RequestLimitExceeded.IPLimitExceeded", ThrottleError),
        ("RequestLimitExceeded.RequestLimitExceededError", ThrottleError),
        ("AuthFailure.SignatureExpire", TransientError),
        ("AuthFailure.SignatureFailure", PermanentError),
        ("AuthFailure.SecretIdNotFound", PermanentError),
        ("InternalError", TransientError),
        ("InternalError.DBError", TransientError),
        ("ServiceUnavailable", TransientError),
        ("ResourceInUse.IncrementalMigrationExist", TransientError),
        ("ResourceUnavailable.CosStatusErr", TransientError),
        ("ResourceUnavailable.BackupMigrationRecoveryTypeErr", PermanentError),
        ("ResourceNotFound.InstanceNotFound", NotFoundError),
        ("ResourceNotFound.JobNotExist", NotFoundError),
        ("FailedOperation.StatusInConflict", PermanentError),
        ("InvalidParameterValue.BackupNameIsIllegal", PermanentError),
        ("MissingParameter", PermanentError),
        ("UnknownCodeFromTheFuture", PermanentError),
    ],
)
def test_error_codes_are_classified_and_keep_the_request_id(code, kind):
    assert classify(code) is kind
    with pytest.raises(kind) as raised:
        connection().parse(Call("CreateBackup", {}, mutating=True), error(code))
    assert type(raised.value) is kind
    assert raised.value.code == code and raised.value.request_id == "req-1"


def test_errors_are_read_whatever_the_content_type():
    response = error("ResourceNotFound.InstanceNotFound")
    for content_type in ("application/json; charset=utf-8", "text/plain", "text/html"):
        with pytest.raises(NotFoundError):
            connection().parse(
                Call("DescribeFlowStatus", {}),
                HttpResponse(200, {"content-type": content_type}, response.body),
            )


def test_success_returns_the_response_object():
    parsed = connection().parse(
        Call("CreateBackup", {}, mutating=True), answer({"FlowId": 5293, "RequestId": "r"})
    )
    assert parsed.payload["FlowId"] == 5293 and parsed.request_id == "r"


@pytest.mark.parametrize(
    "response",
    [
        answer(b"<html>502 Bad Gateway</html>", status=502, content_type="text/html"),
        answer(b'{"Response": {"FlowId": 1'),
        answer(b"[]"),
        answer({"RequestId": "r"}),  # FlowId missing
        answer({"FlowId": 1}),  # RequestId missing
        answer({"Error": {"Message": "no code"}, "RequestId": "r"}),
        answer({"FlowId": 1, "RequestId": "r"}, status=500),
    ],
)
def test_unusable_answers(response):
    with pytest.raises(UnknownOutcomeError) as raised:
        connection().parse(Call("CreateBackup", {}, mutating=True), response)
    assert raised.value.code == "InvalidResponse"
    with pytest.raises(TransientError):
        connection().parse(Call("DescribeFlowStatus", {}), response)


def test_http_429_without_an_envelope_is_a_throttle():
    with pytest.raises(ThrottleError):
        connection().parse(Call("CreateBackup", {}, mutating=True), answer(b"slow down", status=429))


JOB = {
    "JobId": "dts-1kl0iy0v", "JobName": "bm-db01-dts", "Status": 10,
    "MigrateOption": {"RunMode": 1, "MigrateType": 2, "ConsistencyParams": {"TablesSelectAll": 0}},
    "SrcInfo": {"Ip": "203.0.113.25", "Port": 1433, "User": "r", "Password": ""}, "DatabaseInfo": "[]",
    "Detail": {"StepAll": 2, "Progress": "40", "StepInfo": [{"StepNo": 1, "Status": 1}]},
    "ErrorInfo": [{"ErrorLog": "disk full", "HelpDoc": ""}], "Tags": [], "SrcInfoMulti": [],
}  # fmt: skip


def test_a_job_list_is_read_lean_with_every_field_batchmig_uses():
    body = {"TotalCount": 2, "JobList": [JOB, {"JobId": "dts-2", "Status": 7, "ErrorInfo": None}], "RequestId": "r"}
    parsed = connection(api=DTS_API).parse(Call("DescribeMigrateJobs", {}), answer(body))
    assert parsed.request_id == "r"
    assert parsed.payload == {"TotalCount": 2, "RequestId": "r", "JobList": [
        {"JobId": "dts-1kl0iy0v", "JobName": "bm-db01-dts", "Status": 10, "MigrateOption": {"MigrateType": 2},
         "Detail": {"Progress": "40"}, "ErrorInfo": [{"ErrorLog": "disk full"}]},
        {"JobId": "dts-2", "Status": 7, "ErrorInfo": None},
    ]}  # fmt: skip


@pytest.mark.parametrize(
    "response",
    [
        answer({"TotalCount": 1, "JobList": [{**JOB, "Detail": 5}], "RequestId": "r"}),
        answer({"TotalCount": 1, "JobList": [{**JOB, "ErrorInfo": {"ErrorLog": "x"}}], "RequestId": "r"}),
        answer({"TotalCount": 0, "JobList": {"JobId": "dts-1"}, "RequestId": "r"}),
        answer({"TotalCount": 0, "JobList": None, "RequestId": "r"}),
        answer({"RequestId": "r"}),
        answer({"Error": {"Code": "ResourceNotFound.JobNotExist", "Message": "no"}, "RequestId": "r"}),
        answer({"Error": {"Message": "no code"}, "RequestId": "r"}),
        answer(b'{"Response": ["not", "an", "object"]}'),
        answer(b'{"Response": {"JobList": [1'),
        answer(b"\xff\xfe not utf-8"),
    ],
)
def test_a_job_list_of_another_shape_is_judged_as_in_full(response):
    """The lean decoder refuses what it does not expect; the answer is then read whole,
    with the verdict (payload or error) the connection gives without a lean decoder."""
    call = Call("DescribeMigrateJobs", {})
    verdicts = []
    for api in (DTS_API, dataclasses.replace(DTS_API, lean={})):
        try:
            verdicts.append(connection(api=api).parse(call, response).payload)
        except Exception as exc:  # the two verdicts are compared, whatever they are
            verdicts.append((type(exc), getattr(exc, "code", None)))
    assert verdicts[0] == verdicts[1]
