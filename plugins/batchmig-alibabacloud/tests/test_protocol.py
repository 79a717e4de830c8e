"""The wire protocol: the V3 signature, error classification, and the emulator's refusals and lists."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlsplit

import pytest
from batchmig.plugin import (
    Call,
    HttpRequest,
    HttpResponse,
    NotFoundError,
    PermanentError,
    ThrottleError,
    TransientError,
    UnknownOutcomeError,
)
from batchmig.testing import EmulatorHost, FakeSandboxContext, http_client, provider_config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchmig_alibabacloud.connection import AlibabaConnection, classify, endpoint_for
from batchmig_alibabacloud.emulator import DEMO_CREDENTIALS
from batchmig_alibabacloud.signing import Authorization, authorization, canonical_query, payload_hash, signature

pytestmark = pytest.mark.anyio
Host = EmulatorHost[FakeSandboxContext]
OSS = "oss-cn-hangzhou.aliyuncs.com:bm-backups"




def connection(url: str | None, secret: str = DEMO_CREDENTIALS["access_key_secret"], **extra: str) -> AlibabaConnection:
    credentials = {**DEMO_CREDENTIALS, "access_key_secret": secret, **extra}
    return AlibabaConnection(provider_config("alibaba-rds-sqlserver", url, credentials, region="cn-hangzhou"))


def test_the_canonical_query_encodes_as_the_reference_says() -> None:
    assert canonical_query({"b": "a b", "A": "x/y~z*", "OSSUrls": "https%3A%2F%2Fh%2Fa"}) == (
        "A=x%2Fy~z%2A&OSSUrls=https%253A%252F%252Fh%252Fa&b=a%20b")


def test_the_signature_is_blind_to_header_case_and_padding_but_not_to_the_key() -> None:
    # The official SDK's signatures are verified in test_official_sdk.py: that is the independent check.
    headers = {"host": "rds.aliyuncs.com", "x-acs-action": "DescribeMigrateTasks", "x-acs-version": "2014-08-15",
               "x-acs-date": "2026-01-01T00:00:00Z", "x-acs-signature-nonce": "n1",
               "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}
    value = signature("secret", "POST", "/", {"DBInstanceId": "rm-1"}, headers, sorted(headers),
                      headers["x-acs-content-sha256"])
    assert value == signature("secret", "post", "/", {"DBInstanceId": "rm-1"},
                              {k.upper(): v + "  " for k, v in headers.items()}, [h.upper() for h in headers],
                              headers["x-acs-content-sha256"])  # names are case-blind, values trimmed
    assert len(value) == 64 and value != signature("other", "POST", "/", {"DBInstanceId": "rm-1"}, headers,
                                                   sorted(headers), headers["x-acs-content-sha256"])


_HEADER_NAMES = ["host", "x-acs-action", "x-acs-date", "x-acs-signature-nonce", "x-acs-version",
                 "x-acs-security-token", "content-type", "accept", "user-agent"]


# On a loaded machine (the suites run side by side with others) generating the examples can
# exceed the "too slow" health check's budget, and one example's wall time its deadline: both
# measure the machine, not the code. The examples and their number stay the same.
@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(names=st.lists(st.tuples(st.sampled_from(_HEADER_NAMES), st.booleans()), unique_by=lambda pair: pair[0]),
       values=st.lists(st.text(st.characters(min_codepoint=32, max_codepoint=126)), min_size=10, max_size=10),
       query=st.dictionaries(st.text(), st.text(), max_size=4))
def test_the_clients_authorization_verifies_as_the_emulator_checks_it(names: list[tuple[str, bool]],
                                                                      values: list[str],
                                                                      query: dict[str, str]) -> None:
    """``authorization`` lays the signed headers out once per set of names; what it writes is
    what the verifier's ``signature`` computes over the headers the header says it signed
    (names in any case, values with spaces around them)."""
    headers = {name.title() if title else name: value for (name, title), value in zip(names, values, strict=False)}
    headers["X-Acs-Content-Sha256"] = payload_hash(b"")
    header = Authorization.parse(authorization("LTAI-id", "secret", "POST", "/", canonical_query(query), headers))
    assert header is not None
    assert header.signed_headers == sorted(name.lower() for name in headers if name.lower() in (
        "host", "content-type") or name.lower().startswith("x-acs-"))
    assert header.signature == signature("secret", "POST", "/", query, headers, header.signed_headers,
                                         payload_hash(b""))


async def test_a_prepared_request_is_signed_rpc_style() -> None:
    request = await connection(None, security_token="sts-token-1").prepare(
        Call("CreateMigrateTask", {"DBInstanceId": "rm-1", "IsOnlineDB": True, "Skipped": None}))
    assert request.method == "POST" and request.body == b""
    assert request.url == "https://rds.aliyuncs.com/?DBInstanceId=rm-1&IsOnlineDB=True"
    parts = Authorization.parse(request.headers["Authorization"])
    assert parts is not None and parts.key_id == DEMO_CREDENTIALS["access_key_id"]
    assert parts.signed_headers == ["host", "x-acs-action", "x-acs-content-sha256", "x-acs-date",
                                    "x-acs-security-token", "x-acs-signature-nonce", "x-acs-version"]
    assert DEMO_CREDENTIALS["access_key_secret"] not in json.dumps(dict(request.headers)) + request.url
    assert endpoint_for("eu-central-1") == "https://rds.eu-central-1.aliyuncs.com"


async def test_every_attempt_gets_a_fresh_nonce() -> None:
    call = Call("DescribeMigrateTaskById", {"DBInstanceId": "rm-1", "MigrateTaskId": "1"})
    conn = connection(None)
    first, second = await conn.prepare(call), await conn.prepare(call)
    assert first.headers["x-acs-signature-nonce"] != second.headers["x-acs-signature-nonce"]


@pytest.mark.parametrize(("code", "status", "kind"), [
    ("Throttling.User", 400, ThrottleError), ("Throttling.Api", 400, ThrottleError), ("Throttling", 400, ThrottleError),
    ("Throttling.User", 429, ThrottleError), ("Forbidden.InstanceNotFound", 404, NotFoundError),
    ("InvalidParameter", 400, PermanentError), ("SignatureDoesNotMatch", 403, PermanentError),
    ("InternalError", 500, TransientError), ("ServiceUnavailable", 503, TransientError),
    ("SomethingNew", 400, PermanentError), ("SomethingNew", 502, TransientError), ("", 429, ThrottleError),
])
def test_errors_are_classified_by_code_then_status(code: str, status: int, kind: type) -> None:
    error = classify(code, "m", status, "req-1")
    assert type(error) is kind and error.request_id == "req-1" and error.http_status == status


def parse(status: int, body: Any, mutating: bool = True) -> Any:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return connection(None).parse(Call("CreateMigrateTask", {}, mutating=mutating), HttpResponse(status, {}, raw))


def test_answers_and_unreadable_answers() -> None:
    answer = parse(200, {"RequestId": "R1", "MigrateTaskId": "7"})
    assert answer.request_id == "R1" and answer.payload["MigrateTaskId"] == "7"
    with pytest.raises(UnknownOutcomeError):
        parse(200, b"<html>")  # a write whose answer cannot be read may have acted
    with pytest.raises(TransientError):
        parse(200, b"", mutating=False)
    with pytest.raises(TransientError) as gateway:
        parse(502, b"Bad Gateway")
    assert gateway.value.code == "HTTP502"
    with pytest.raises(ThrottleError) as throttled:
        parse(400, {"RequestId": "R2", "Code": "Throttling.User", "Message": "flow control"})
    assert throttled.value.request_id == "R2"


async def send(host: Host, request: HttpRequest) -> tuple[int, dict[str, Any]]:
    async with http_client() as fetch:
        response = await fetch(request)
    return response.status, json.loads(response.body)


async def test_the_emulator_refuses_what_the_cloud_refuses(host: Host) -> None:
    call = Call("DescribeDBInstanceAttribute", {"DBInstanceId": "rm-proto001"})
    good = await connection(host.url).prepare(call)
    assert (await send(host, good))[0] == 200
    assert (await send(host, good))[1]["Code"] == "SignatureNonceUsed"  # a replay
    wrong = await connection(host.url, secret="wrong").prepare(call)
    assert (await send(host, wrong))[1]["Code"] == "SignatureDoesNotMatch"
    unsigned = HttpRequest("POST", good.url, {k: v for k, v in good.headers.items() if k != "Authorization"})
    assert (await send(host, unsigned))[1]["Code"] == "IncompleteSignature"
    stale = AlibabaConnection(provider_config("alibaba-rds-sqlserver", host.url, DEMO_CREDENTIALS,
                                              region="cn-hangzhou"), clock=lambda: time.time() - 3600)
    assert (await send(host, await stale.prepare(call)))[1]["Code"] == "InvalidTimeStamp.Expired"
    unknown = AlibabaConnection(provider_config("alibaba-rds-sqlserver", host.url,
                                                {"access_key_id": "LTAI5tNobody", "access_key_secret": "x"},
                                                region="cn-hangzhou"))
    status, body = await send(host, await unknown.prepare(call))
    assert (status, body["Code"]) == (404, "InvalidAccessKeyId.NotFound")
    assert set(body) == {"RequestId", "HostId", "Code", "Message", "Recommend"}
    status, body = await send(host, await connection(host.url).prepare(Call("DeleteDBInstance", {})))
    assert (status, body["Code"]) == (403, "InvalidAction")


async def read(host: Host, action: str, **params: Any) -> tuple[int, dict[str, Any]]:
    return await send(host, await connection(host.url).prepare(Call(action, params)))


async def test_lists_are_paged_by_time_range_and_validated(host: Host) -> None:
    for number in range(35):
        status, _ = await read(host, "CreateMigrateTask", DBInstanceId="rm-list0001", DBName=f"db{number}",
                               BackupMode="FULL", IsOnlineDB=True, OssObjectPositions=f"{OSS}:db{number}.bak")
        assert status == 200
    window = {"DBInstanceId": "rm-list0001", "StartTime": "2020-01-01T00:00Z", "EndTime": "2099-01-01T00:00Z"}
    _, first = await read(host, "DescribeMigrateTasks", **window)
    _, second = await read(host, "DescribeMigrateTasks", **window, PageNumber=2)
    assert (first["TotalRecordCount"], first["PageRecordCount"], second["PageRecordCount"]) == (35, 30, 5)
    names = [t["DBName"] for t in first["Items"]["MigrateTask"] + second["Items"]["MigrateTask"]]
    assert sorted(names) == sorted(f"db{n}" for n in range(35))
    assert set(first["Items"]["MigrateTask"][0]) == {"MigrateTaskId", "DBName", "BackupMode", "Status", "CreateTime",
                                                     "EndTime", "IsDBReplaced", "Description"}
    _, before = await read(host, "DescribeMigrateTasks", **{**window, "EndTime": "2021-01-01T00:00Z"})
    assert before["TotalRecordCount"] == 0
    for bad in ({"PageSize": 10}, {"StartTime": "2020-01-01"}, {"EndTime": "2019-01-01T00:00Z"}):
        status, body = await read(host, "DescribeMigrateTasks", **{**window, **bad})
        assert (status, body["Code"]) == (400, "InvalidParameter"), bad
    status, body = await read(host, "DescribeMigrateTasks", DBInstanceId="rm-list0001")
    assert (status, body["Code"]) == (400, "MissingParameter")


async def test_a_database_is_restored_once_and_a_chain_takes_one_file_at_a_time(host: Host) -> None:
    full = {"DBInstanceId": "rm-chain001", "DBName": "sales", "BackupMode": "FULL", "IsOnlineDB": False,
            "OssObjectPositions": f"{OSS}:sales.bak"}
    _, created = await read(host, "CreateMigrateTask", **full)
    status, body = await read(host, "CreateMigrateTask", **full)
    assert (status, body["Code"]) == (400, "InvalidDBName.Duplicate")
    log = {**full, "BackupMode": "UPDF", "MigrateTaskId": created["MigrateTaskId"],
           "OssObjectPositions": f"{OSS}:sales_1.trn"}
    status, body = await read(host, "CreateMigrateTask", **log)
    assert (status, body["Code"]) == (400, "IncorrectMigrateTaskStatus")  # the FULL file is still restoring
    host.context.advance(20)
    assert (await read(host, "CreateMigrateTask", **log))[0] == 200
    status, body = await read(host, "CreateOnlineDatabaseTask", DBInstanceId="rm-chain001", DBName="sales",
                              MigrateTaskId=created["MigrateTaskId"])
    assert (status, body["Code"]) == (400, "IncorrectMigrateTaskStatus")  # a log file is being applied


async def test_parameters_may_come_as_a_form_body(host: Host) -> None:
    body = b"DBInstanceId=rm-form0001"
    headers = {"host": urlsplit(host.url).netloc, "content-type": "application/x-www-form-urlencoded",
               "x-acs-action": "DescribeDBInstanceAttribute", "x-acs-version": "2014-08-15",
               "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "x-acs-signature-nonce": "form-1",
               "x-acs-content-sha256": payload_hash(body)}
    headers["Authorization"] = authorization(DEMO_CREDENTIALS["access_key_id"], DEMO_CREDENTIALS["access_key_secret"],
                                             "POST", "/", "", headers)
    status, answer = await send(host, HttpRequest("POST", host.url + "/", headers, body))
    assert status == 200 and answer["Items"]["DBInstanceAttribute"][0]["DBInstanceId"] == "rm-form0001"
