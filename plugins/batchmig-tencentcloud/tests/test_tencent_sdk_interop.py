"""Tencent's own Python SDK pointed at the emulators (custom endpoint, plain http).

Skipped when tencentcloud-sdk-python-{common,sqlserver,dts} are not installed. The
SDK is synchronous, so it runs in a worker thread while the event loop serves it.
"""

from __future__ import annotations

import json
from functools import partial
from urllib.parse import urlsplit

import anyio
import pytest

pytest.importorskip("tencentcloud.sqlserver.v20180328")
pytest.importorskip("tencentcloud.dts.v20180330")

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.dts.v20180330 import dts_client
from tencentcloud.dts.v20180330 import models as dts_models
from tencentcloud.sqlserver.v20180328 import models, sqlserver_client

from batchmig_tencentcloud.emulator import DEMO_SECRET_ID, DEMO_SECRET_KEY

pytestmark = pytest.mark.anyio


def profile(url: str, method: str = "POST", language: str = "zh-CN") -> ClientProfile:
    http = HttpProfile(endpoint=urlsplit(url).netloc, protocol="http", reqMethod=method)
    return ClientProfile(httpProfile=http, language=language)


def call(client, action: str, model, **fields):
    request = model()
    request.from_json_string(json.dumps(fields))
    return getattr(client, action)(request)


@pytest.mark.parametrize("method", ["POST", "GET"])
async def test_sqlserver_sdk_drives_an_import(sqlserver, method):
    client = sqlserver_client.SqlserverClient(
        credential.Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
        "ap-guangzhou",
        profile(sqlserver.server.url, method),
    )
    run = partial(anyio.to_thread.run_sync)
    created = await run(lambda: call(
        client, "CreateBackupMigration", models.CreateBackupMigrationRequest, InstanceId="mssql-abcd1234",
        RecoveryType="FULL", UploadType="COS_URL", MigrationName="sdk-import",
        BackupFiles=["https://bucket-1250000000.cos.ap-guangzhou.myqcloud.com/sales.bak"],
    ))  # fmt: skip
    assert created.BackupMigrationId.startswith("mssql-backup-migration-") and created.RequestId
    started = await run(lambda: call(
        client, "StartBackupMigration", models.StartBackupMigrationRequest, InstanceId="mssql-abcd1234",
        BackupMigrationId=created.BackupMigrationId,
    ))  # fmt: skip
    flow = await run(lambda: call(client, "DescribeFlowStatus", models.DescribeFlowStatusRequest,
                                  FlowId=started.FlowId))  # fmt: skip
    assert flow.Status == 2
    sqlserver.sandbox.advance(120)  # within the 5-minute signature window of the SDK's real clock
    sqlserver.sandbox.options = {"import_seconds": 60}
    listing = await run(lambda: call(client, "DescribeBackupMigration", models.DescribeBackupMigrationRequest,
                                     InstanceId="mssql-abcd1234", MigrationName="sdk-import"))  # fmt: skip
    [task] = listing.BackupMigrationSet
    assert (
        task.Status == 9 and task.Detail.Progress == 100 and task.Action.AllowedAction == ["view", "delete"]
    )


async def test_sqlserver_sdk_sees_errors_with_code_and_request_id(sqlserver):
    client = sqlserver_client.SqlserverClient(
        credential.Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY), "ap-guangzhou", profile(sqlserver.server.url)
    )
    with pytest.raises(TencentCloudSDKException) as raised:
        await anyio.to_thread.run_sync(lambda: call(
            client, "StartBackupMigration", models.StartBackupMigrationRequest, InstanceId="mssql-abcd1234",
            BackupMigrationId="mssql-backup-migration-nothere",
        ))  # fmt: skip
    assert raised.value.get_code() == "ResourceNotFound.FullBackupMigrationNotExist"
    assert raised.value.get_request_id() and "不存在" in raised.value.get_message()  # the SDK's zh-CN
    wrong = sqlserver_client.SqlserverClient(
        credential.Credential(DEMO_SECRET_ID, "wrong-key"), "ap-guangzhou", profile(sqlserver.server.url)
    )
    with pytest.raises(TencentCloudSDKException) as raised:
        await anyio.to_thread.run_sync(
            lambda: call(wrong, "DescribeDBInstances", models.DescribeDBInstancesRequest)
        )
    assert raised.value.get_code() == "AuthFailure.SignatureFailure"


async def test_dts_sdk_creates_and_lists_jobs(dts):
    client = dts_client.DtsClient(
        credential.Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
        "ap-guangzhou",
        profile(dts.server.url, "POST", "en-US"),
    )
    created = await anyio.to_thread.run_sync(lambda: call(
        client, "CreateMigrateJob", dts_models.CreateMigrateJobRequest, JobName="sdk-job",
        MigrateOption={"RunMode": 1, "MigrateType": 2, "MigrateObject": 1, "ConsistencyType": 1},
        SrcDatabaseType="sqlserver", SrcAccessType="extranet",
        SrcInfo={"Ip": "203.0.113.9", "Port": 1433, "User": "u", "Password": "p"},
        DstDatabaseType="sqlserver", DstAccessType="cdb",
        DstInfo={"Region": "ap-guangzhou", "InstanceId": "mssql-abcd1234"},
    ))  # fmt: skip
    assert created.JobId.startswith("dts-")
    with pytest.raises(TencentCloudSDKException) as raised:
        await anyio.to_thread.run_sync(
            lambda: call(client, "StartMigrateJob", dts_models.StartMigrateJobRequest, JobId=created.JobId)
        )
    assert raised.value.get_code() == "FailedOperation.StatusInConflict"
    assert "cannot be started" in raised.value.get_message()  # en-US, as the profile asked
    listing = await anyio.to_thread.run_sync(
        lambda: call(client, "DescribeMigrateJobs", dts_models.DescribeMigrateJobsRequest, JobName="sdk-job")
    )
    assert listing.TotalCount == 1 and listing.JobList[0].Status == 1


def test_the_tls_hint_of_sandbox_serve_works_for_the_sdk(tmp_path, monkeypatch):
    """`sandbox serve --tls` says how tccli and the SDK trust its CA; REQUESTS_CA_BUNDLE alone does not."""
    import shutil
    import subprocess
    import sys
    import time

    import certifi

    box = tmp_path / "box"
    serve = subprocess.Popen([sys.executable, "-m", "batchmig", "sandbox", "serve", "--tls", "--port", "0", "--dir",
                              str(box)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (box / "endpoints.json").exists():
            assert time.monotonic() < deadline and serve.poll() is None, "the sandbox did not start"
            time.sleep(0.05)
        ca = (box / "ca.pem").resolve()
        url = json.loads((box / "endpoints.json").read_text())["tencent-sqlserver"]
        hint = "".join(serve.stdout.readline() for _ in range(8))
        assert f'cat {ca} >> "$(PYTHON -m certifi)"' in hint and f'HttpProfile(certification="{ca}")' in hint

        def describe(certification=None):
            http = HttpProfile(endpoint=urlsplit(url).netloc, protocol="https", certification=certification)
            client = sqlserver_client.SqlserverClient(credential.Credential(DEMO_SECRET_ID, DEMO_SECRET_KEY),
                                                      "ap-guangzhou", ClientProfile(httpProfile=http))
            return call(client, "DescribeDBInstances", models.DescribeDBInstancesRequest,
                        InstanceIdSet=["mssql-abcdefgh"])

        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca))  # what the hint used to say: ignored by the SDK
        with pytest.raises(TencentCloudSDKException):
            describe()
        assert describe(str(ca)).TotalCount == 1  # the in-code way
        bundle = tmp_path / "cacert.pem"  # tccli's way, on a copy: certifi's bundle with the CA appended
        shutil.copyfile(certifi.where(), bundle)
        with open(bundle, "a") as handle:
            handle.write(ca.read_text())
        monkeypatch.setattr(certifi, "where", lambda: str(bundle))
        assert describe().TotalCount == 1
    finally:
        serve.terminate()
        serve.wait(timeout=30)
