"""The DTS API (2018-03-30) actions the sandbox answers, and their parameters.

Transcribed from the reference's CreateMigrateJob / DescribeMigrateJobs / check and
lifecycle sections. Every DTS action is documented at 20 requests per second. The
structures a job is created with are also the ones DescribeMigrateJobs answers
(``SrcInfo``, ``DstInfo``, ``MigrateOption``, tags).
"""

from __future__ import annotations

from batchmig_tencentcloud.emulator.base import Action
from batchmig_tencentcloud.emulator.params import INT, STRING, UINT, ListOf, struct

__all__ = ["ACTIONS", "DATABASE_TYPES", "DST_INFO", "MIGRATE_OPTION", "RATE_LIMITS", "SRC_INFO", "TAG"]

DATABASE_TYPES = ("mysql", "redis", "mongodb", "postgresql", "mariadb", "percona", "sqlserver")
ACCESS_TYPES = ("extranet", "cvm", "dcg", "vpncloud", "cdb", "ccn")

SRC_INFO = struct(
    AccessKey=STRING, Ip=STRING, Port=INT, User=STRING, Password=STRING, RdsInstanceId=STRING,
    CvmInstanceId=STRING, UniqDcgId=STRING, VpcId=STRING, SubnetId=STRING, UniqVpnGwId=STRING,
    InstanceId=STRING, Region=STRING, Supplier=STRING, CcnId=STRING, EngineVersion=STRING,
)  # fmt: skip
DST_INFO = struct(
    ["Region"],
    Region=STRING,
    InstanceId=STRING,
    Ip=STRING,
    Port=INT,
    ReadOnly=INT,
    User=STRING,
    Password=STRING,
)
MIGRATE_OPTION = struct(
    ["RunMode"], RunMode=INT, ExpectTime=STRING, MigrateType=INT, MigrateObject=INT, ConsistencyType=INT,
    IsOverrideRoot=INT, ExternParams=STRING,
    ConsistencyParams=struct(
        ["SelectRowsPerTable", "TablesSelectAll", "TablesSelectCount"],
        SelectRowsPerTable=INT, TablesSelectAll=INT, TablesSelectCount=INT,
    ),
)  # fmt: skip
_JOB_ID = struct(["JobId"], JobId=STRING)
TAG = struct(["TagKey"], TagKey=STRING, TagValue=STRING)

ACTIONS = {
    "CreateMigrateJob": Action(
        struct(
            ["JobName", "MigrateOption", "SrcDatabaseType", "SrcAccessType", "SrcInfo", "DstDatabaseType",
             "DstAccessType", "DstInfo"],
            JobName=STRING, MigrateOption=MIGRATE_OPTION, SrcDatabaseType=STRING, SrcAccessType=STRING,
            SrcInfo=SRC_INFO, DstDatabaseType=STRING, DstAccessType=STRING, DstInfo=DST_INFO,
            DatabaseInfo=STRING, Tags=ListOf(TAG),
            SrcNodeType=STRING, SrcInfoMulti=ListOf(SRC_INFO),
        ),
        "create_migrate_job",
        mutating=True,
    ),
    "ModifyMigrateJob": Action(
        struct(
            ["JobId"], JobId=STRING, JobName=STRING, MigrateOption=MIGRATE_OPTION, SrcAccessType=STRING,
            SrcInfo=SRC_INFO, DstAccessType=STRING, DstInfo=DST_INFO, DatabaseInfo=STRING,
            SrcNodeType=STRING, SrcInfoMulti=ListOf(SRC_INFO),
        ),
        "modify_migrate_job",
        mutating=True,
    ),
    "DescribeMigrateJobs": Action(
        struct(
            JobId=STRING, JobName=STRING, Order=STRING, OrderSeq=STRING, Offset=UINT, Limit=UINT,
            TagFilters=ListOf(struct(["TagKey"], TagKey=STRING, TagValue=ListOf(STRING))),
        ),
        "describe_migrate_jobs",
    ),
    "CreateMigrateCheckJob": Action(_JOB_ID, "create_migrate_check_job", mutating=True),
    "DescribeMigrateCheckJob": Action(_JOB_ID, "describe_migrate_check_job"),
    "StartMigrateJob": Action(_JOB_ID, "start_migrate_job", mutating=True),
    "StopMigrateJob": Action(_JOB_ID, "stop_migrate_job", mutating=True),
    "CompleteMigrateJob": Action(
        struct(["JobId"], JobId=STRING, CompleteMode=STRING), "complete_migrate_job", mutating=True
    ),
    "DeleteMigrateJob": Action(_JOB_ID, "delete_migrate_job", mutating=True),
}  # fmt: skip

RATE_LIMITS = {name: 20.0 for name in ACTIONS}
