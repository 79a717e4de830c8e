"""Every answer of both Tencent emulators has exactly the fields the official SDK's models declare.

For every action an emulator serves, a scenario drives it over loopback through the
states that fill an answer's optional parts (creating, running, finished, failed,
renamed, tagged), and compares each answer recursively with the SDK's
``<Action>Response`` model (see ``sdk_models``): a declared field that is missing,
a field the model does not declare, a value of the wrong type, or a null where the
SDK does not say one may come, fails. So does a nested model that no answer ever
filled, since an always-empty list would hide its missing fields.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from importlib.metadata import version
from types import ModuleType
from typing import Any

import pytest
from batchmig.plugin import Call
from sdk_models import Coverage, compare, declared, declared_paths

pytest.importorskip("tencentcloud.sqlserver.v20180328")
pytest.importorskip("tencentcloud.dts.v20180330")

from tencentcloud.dts.v20180330 import models as dts_models
from tencentcloud.sqlserver.v20180328 import models as sqlserver_models

from batchmig_tencentcloud.emulator import DtsEmulator, SqlServerEmulator

pytestmark = pytest.mark.anyio

INSTANCE = "mssql-abcd1234"
COS = "https://sales-1250000000.cos.ap-guangzhou.myqcloud.com"
NEVER_FILLED = {"CrossBackupAddr", "CrossRegionStatus"}
"""Nested models no sandbox answer fills: it makes no cross-region backups."""
COMPARED_WITH = {"sqlserver": (3, 1, 183), "dts": (3, 1, 193)}
"""The SDK versions the answers were last compared with; undeclared fields count only
from these on (an older SDK declares fewer fields; see ``Coverage.strict``)."""


def sdk_is_current(service: str) -> bool:
    installed = version(f"tencentcloud-sdk-python-{service}")
    return tuple(int(part) for part in installed.split(".")[:3]) >= COMPARED_WITH[service]


class Recorder:
    def __init__(self, env: Any) -> None:
        self.env = env
        self.answers: dict[str, list[Mapping[str, Any]]] = defaultdict(list)

    async def __call__(self, action: str, **params: Any) -> Mapping[str, Any]:
        answer = (await self.env.inspect.send(Call(action, params))).payload
        self.answers[action].append(answer)
        return answer


async def sqlserver_answers(env: Any) -> dict[str, list[Mapping[str, Any]]]:
    ask, advance = Recorder(env), env.sandbox.advance
    nightly = await ask("CreateBackup", InstanceId=INSTANCE, BackupName="nightly")
    some = await ask("CreateBackup", InstanceId=INSTANCE, Strategy=1, DBNames=["sales", "crm"])
    failing = await ask("CreateBackup", InstanceId=INSTANCE, BackupName="sandbox-fail-1")
    flows = [str(answer["FlowId"]) for answer in (nightly, some, failing)]
    await ask("DescribeBackupByFlowId", InstanceId=INSTANCE, FlowId=flows[0])  # creating
    await ask("DescribeDBInstances")  # a backup runs: status 7
    await ask("DescribeFlowStatus", FlowId=nightly["FlowId"])
    advance(121)
    for flow in flows:
        await ask("DescribeBackupByFlowId", InstanceId=INSTANCE, FlowId=flow)
    await ask("DescribeBackups", InstanceId=INSTANCE, StartTime="2000-01-01 00:00:00",
              EndTime="2100-01-01 00:00:00")  # fmt: skip

    full = await ask("CreateBackupMigration", InstanceId=INSTANCE, RecoveryType="FULL", UploadType="COS_URL",
                     MigrationName="full-sales", BackupFiles=[f"{COS}/sales.bak"])  # fmt: skip
    full_ids = {"InstanceId": INSTANCE, "BackupMigrationId": full["BackupMigrationId"]}
    await ask("ModifyBackupMigration", **full_ids, DBRename=[{"OldName": "sales", "NewName": "sales_new"}])
    await ask("DescribeBackupMigration", InstanceId=INSTANCE)  # created
    await ask("StartBackupMigration", **full_ids)
    await ask("DescribeBackupMigration", InstanceId=INSTANCE, MigrationName="full-sales")  # running
    await ask("DescribeDBInstances", InstanceIdSet=[INSTANCE])  # migrating: status 10

    chain = await ask("CreateBackupMigration", InstanceId=INSTANCE, RecoveryType="FULL_LOG",
                      UploadType="COS_UPLOAD", MigrationName="chain-crm", BackupFiles=["crm.bak"])  # fmt: skip
    chain_ids = {"InstanceId": INSTANCE, "BackupMigrationId": chain["BackupMigrationId"]}
    await ask("DescribeUploadBackupInfo", **chain_ids)
    await ask("StartBackupMigration", **chain_ids)
    advance(601)
    await ask("DescribeBackupMigration", InstanceId=INSTANCE)  # 9 and 8
    log = await ask("CreateIncrementalMigration", **chain_ids, BackupFiles=["crm-1.trn"])
    log_ids = {**chain_ids, "IncrementalMigrationId": log["IncrementalMigrationId"]}
    await ask("DescribeIncrementalMigration", **chain_ids)  # created
    await ask("StartIncrementalMigration", **log_ids)
    await ask("DescribeIncrementalMigration", **chain_ids)  # running
    await ask("DescribeBackupMigration", InstanceId=INSTANCE, BackupMigrationId=chain["BackupMigrationId"])
    advance(181)
    final = await ask("CreateIncrementalMigration", **chain_ids, BackupFiles=["crm-2.trn"], IsRecovery="YES")
    await ask("DescribeIncrementalMigration", **chain_ids)
    await ask("DeleteIncrementalMigration", **chain_ids, IncrementalMigrationId=final["IncrementalMigrationId"])

    corrupt = await ask("CreateBackupMigration", InstanceId=INSTANCE, RecoveryType="FULL", UploadType="COS_URL",
                        MigrationName="corrupt", BackupFiles=[f"{COS}/sandbox-corrupt.bak"])  # fmt: skip
    await ask("StartBackupMigration", InstanceId=INSTANCE, BackupMigrationId=corrupt["BackupMigrationId"])
    advance(601)
    await ask("DescribeBackupMigration", InstanceId=INSTANCE, MigrationName="corrupt")  # failed
    await ask("DeleteBackupMigration", **full_ids)
    await ask("DescribeDBInstances", Limit=10, Offset=0)
    return ask.answers


SOURCE = {"Ip": "203.0.113.9", "Port": 1433, "User": "migrator", "Password": "source-secret",
          "Region": "ap-guangzhou", "EngineVersion": "2019"}  # fmt: skip
TARGET = {"Region": "ap-guangzhou", "InstanceId": INSTANCE, "User": "sa", "Password": "target-secret"}


def job(name: str, migrate_type: int = 3, **extra: Any) -> dict[str, Any]:
    return {"JobName": name, "MigrateOption": {"RunMode": 1, "MigrateType": migrate_type, "MigrateObject": 2},
            "SrcDatabaseType": "sqlserver", "SrcAccessType": "extranet", "SrcInfo": SOURCE,
            "DstDatabaseType": "sqlserver", "DstAccessType": "cdb", "DstInfo": TARGET,
            "DatabaseInfo": '[{"Database": "sales"}]', **extra}  # fmt: skip


async def dts_answers(env: Any) -> dict[str, list[Mapping[str, Any]]]:
    ask, advance = Recorder(env), env.sandbox.advance
    tags = [{"TagKey": "team", "TagValue": "dba"}]
    ids = [(await ask("CreateMigrateJob", **job(name, **extra)))["JobId"] for name, extra in (
        ("cutover", {"Tags": tags}), ("sandbox-fail-migration", {}), ("stopped", {"SrcInfoMulti": [SOURCE]}),
        ("sandbox-fail-check", {}), ("scheduled", {"MigrateOption": {
            "RunMode": 2, "ExpectTime": "2099-01-01 00:00:00", "MigrateType": 2, "ConsistencyType": 3,
            "ConsistencyParams": {"SelectRowsPerTable": 10, "TablesSelectAll": 50, "TablesSelectCount": 5}}}),
    )]  # fmt: skip
    cutover, failing, stopped, unchecked, scheduled = ids
    await ask("DescribeMigrateJobs")  # all created
    await ask("ModifyMigrateJob", JobId=cutover, JobName="cutover-sales")
    await ask("DescribeMigrateCheckJob", JobId=cutover)  # never checked
    for job_id in ids:
        await ask("CreateMigrateCheckJob", JobId=job_id)
    await ask("DescribeMigrateCheckJob", JobId=cutover)  # running
    advance(61)
    for job_id in (cutover, unchecked):
        await ask("DescribeMigrateCheckJob", JobId=job_id)  # passed, failed
    for job_id in (cutover, failing, stopped, scheduled):
        await ask("StartMigrateJob", JobId=job_id)
    await ask("DescribeMigrateJobs", Limit=100)  # running, waiting for its time
    await ask("StopMigrateJob", JobId=stopped)
    advance(901)
    await ask("DescribeMigrateJobs", Order="JobName", OrderSeq="ASC")  # ready, failed, stopped
    await ask("CompleteMigrateJob", JobId=cutover)
    await ask("DescribeMigrateJobs", JobId=cutover)  # completing
    advance(61)
    await ask("DescribeMigrateJobs", TagFilters=[{"TagKey": "team"}])  # succeeded
    await ask("DeleteMigrateJob", JobId=failing)
    return ask.answers


def problems_and_coverage(
    answers: Mapping[str, list[Mapping[str, Any]]], module: ModuleType, strict: bool = True
) -> tuple[list[str], Coverage]:
    coverage = Coverage(strict)
    problems: list[str] = []
    for action, replies in answers.items():
        model = getattr(module, f"{action}Response")
        for reply in replies:
            problems += [f"{action}: {p}" for p in compare(reply, model, module, coverage, action)]
    return problems, coverage


def reachable(model: type, module: ModuleType) -> set[str]:
    """The names of the nested models a response model can hold."""
    found: set[str] = set()
    for spec in declared(model).values():
        nested = getattr(module, spec.type_name, None)
        if isinstance(nested, type):
            found |= {spec.type_name} | reachable(nested, module)
    return found


def figures(answers: Mapping[str, list[Mapping[str, Any]]], module: ModuleType) -> dict[str, tuple[int, int]]:
    """Per action: (field paths answered, field paths the SDK declares), for the report."""
    _, coverage = problems_and_coverage(answers, module)
    result = {}
    for action in answers:
        paths = declared_paths(getattr(module, f"{action}Response"), module)
        result[action] = (len(coverage.paths.get(action, set()) & paths), len(paths))
    return result


def check(answers: Mapping[str, list[Mapping[str, Any]]], emulator: type, module: ModuleType, service: str) -> None:
    assert set(answers) == set(emulator.actions), "the scenario must drive every action the emulator serves"
    problems, coverage = problems_and_coverage(answers, module, sdk_is_current(service))
    assert problems == []
    models = set().union(*(reachable(getattr(module, f"{action}Response"), module) for action in answers))
    assert models - coverage.models <= NEVER_FILLED, "a nested model no answer filled hides its fields"


async def test_every_sqlserver_answer_matches_the_sdk_model(sqlserver):
    check(await sqlserver_answers(sqlserver), SqlServerEmulator, sqlserver_models, "sqlserver")


async def test_every_dts_answer_matches_the_sdk_model(dts):
    check(await dts_answers(dts), DtsEmulator, dts_models, "dts")
