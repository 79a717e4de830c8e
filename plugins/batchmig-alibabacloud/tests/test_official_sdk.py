"""Alibaba Cloud's own Python SDK (alibabacloud_rds20140815), pointed at the emulator, works unchanged.

The SDK signs with its own ACS3-HMAC-SHA256 code (alibabacloud_tea_openapi), so this is
the independent check of the emulator's verifier, and of its answers against the SDK's
models. The SDK is synchronous, so it runs in a worker thread while the emulator serves
on the event loop. Skipped when the SDK is not installed (it is in the test extra).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import anyio
import pytest
from batchmig.testing import EmulatorHost, FakeSandboxContext

from batchmig_alibabacloud.emulator import DEMO_CREDENTIALS

pytest.importorskip("alibabacloud_rds20140815")

from alibabacloud_rds20140815 import models as rds
from alibabacloud_rds20140815.client import Client
from alibabacloud_tea_openapi import utils_models as openapi
from alibabacloud_tea_openapi.exceptions import ClientException

pytestmark = pytest.mark.anyio
Host = EmulatorHost[FakeSandboxContext]
POSITION = "oss-cn-hangzhou.aliyuncs.com:sdk-bucket:sales/sales_full.bak"




def sdk(url: str, secret: str = DEMO_CREDENTIALS["access_key_secret"]) -> Any:
    config = openapi.Config(access_key_id=DEMO_CREDENTIALS["access_key_id"], access_key_secret=secret,
                            region_id="cn-hangzhou", endpoint=urlsplit(url).netloc, protocol="http")
    return Client(config)


def refusal(call: Any) -> tuple[int, str, str]:
    try:
        call()
    except ClientException as exc:
        return exc.status_code, exc.code, exc.request_id
    raise AssertionError("the call was not refused")


async def test_a_chain_runs_through_the_official_sdk(host: Host) -> None:
    client = sdk(host.url)
    create = rds.CreateMigrateTaskRequest(dbinstance_id="rm-sdk0001", dbname="sales", backup_mode="FULL",
                                          is_online_db="False", oss_object_positions=POSITION)
    created = await anyio.to_thread.run_sync(client.create_migrate_task, create)
    assert created.status_code == 200
    full = created.body.migrate_task_id
    assert created.body.dbname == "sales" and created.body.backup_mode == "FULL" and created.body.request_id
    host.context.advance(20)  # 20 cloud minutes: the FULL file is restored, the task waits for logs

    shown = await anyio.to_thread.run_sync(client.describe_migrate_task_by_id,
                                           rds.DescribeMigrateTaskByIdRequest(dbinstance_id="rm-sdk0001",
                                                                              migrate_task_id=full))
    assert (shown.body.status, shown.body.dbname, shown.body.dbinstance_name) == ("Waiting", "sales", "rm-sdk0001")

    log = rds.CreateMigrateTaskRequest(dbinstance_id="rm-sdk0001", dbname="sales", backup_mode="UPDF",
                                       is_online_db="False", migrate_task_id=full,
                                       oss_object_positions=POSITION.replace("full.bak", "log1.trn"))
    updf = (await anyio.to_thread.run_sync(client.create_migrate_task, log)).body.migrate_task_id
    host.context.advance(3)  # the log file is applied
    online = rds.CreateOnlineDatabaseTaskRequest(dbinstance_id="rm-sdk0001", dbname="sales", migrate_task_id=full,
                                                 check_dbmode="SyncExecuteDBCheck", client_token="sdk-token-1")
    answered = await anyio.to_thread.run_sync(client.create_online_database_task, online)
    assert answered.body.request_id
    again = await anyio.to_thread.run_sync(client.create_online_database_task, online)  # same token
    assert again.body.request_id != answered.body.request_id
    host.context.advance(3)  # online

    listed = await anyio.to_thread.run_sync(client.describe_migrate_tasks, rds.DescribeMigrateTasksRequest(
        dbinstance_id="rm-sdk0001", start_time="2020-01-01T00:00Z", end_time="2099-01-01T00:00Z", page_size=30))
    tasks = {task.migrate_task_id: task for task in listed.body.items.migrate_task}
    assert listed.body.total_record_count == 2 and listed.body.page_record_count == 2
    assert (tasks[full].status, tasks[full].backup_mode, tasks[full].is_dbreplaced) == ("Success", "FULL", "True")
    assert tasks[full].description == "Success to DBCC checkdb synchronously"
    assert (tasks[updf].status, tasks[updf].backup_mode) == ("Success", "UPDF")
    assert tasks[full].create_time.endswith("Z") and tasks[full].end_time.endswith("Z")

    attribute = await anyio.to_thread.run_sync(client.describe_dbinstance_attribute,
                                               rds.DescribeDBInstanceAttributeRequest(dbinstance_id="rm-sdk0001"))
    instance = attribute.body.items.dbinstance_attribute[0]
    assert (instance.engine, instance.engine_version, instance.dbinstance_status) == (
        "SQLServer", "2019_std_ha", "Running")
    assert [entry["resource"] for entry in host.audit if entry.get("changed")] == [
        "rm-sdk0001/sales/FULL", f"rm-sdk0001/sales/UPDF/{POSITION.replace('full.bak', 'log1.trn')}",
        "rm-sdk0001/sales/online"]
    assert all(entry.get("status") == 200 for entry in host.audit)  # every SDK signature verified


async def test_the_sdk_sees_the_documented_errors(host: Host) -> None:
    client = sdk(host.url)
    missing = rds.DescribeMigrateTaskByIdRequest(dbinstance_id="rm-missing01", migrate_task_id="1")
    status, code, request_id = await anyio.to_thread.run_sync(
        refusal, lambda: client.describe_migrate_task_by_id(missing))
    assert (status, code) == (404, "Forbidden.InstanceNotFound") and request_id
    online_updf = rds.CreateMigrateTaskRequest(dbinstance_id="rm-sdk0001", dbname="x", backup_mode="UPDF",
                                               is_online_db="True", migrate_task_id="1",
                                               oss_object_positions=POSITION)
    assert (await anyio.to_thread.run_sync(refusal, lambda: client.create_migrate_task(online_updf)))[:2] == (
        400, "InvalidParameter")
    legacy = rds.CreateMigrateTaskRequest(dbinstance_id="rm-sdk2008r2", dbname="x", backup_mode="FULL",
                                          is_online_db="True", oss_object_positions=POSITION)
    assert (await anyio.to_thread.run_sync(refusal, lambda: client.create_migrate_task(legacy)))[:2] == (
        400, "InvalidParameter")
    wrong = sdk(host.url, secret="not-the-secret")
    request = rds.DescribeDBInstanceAttributeRequest(dbinstance_id="rm-sdk0001")
    assert (await anyio.to_thread.run_sync(refusal, lambda: wrong.describe_dbinstance_attribute(request)))[:2] == (
        403, "SignatureDoesNotMatch")
    host.inject("throttle", action="DescribeDBInstanceAttribute")
    assert (await anyio.to_thread.run_sync(refusal, lambda: client.describe_dbinstance_attribute(request)))[:2] == (
        400, "Throttling.User")
    assert not [entry for entry in host.audit if entry.get("changed")]
