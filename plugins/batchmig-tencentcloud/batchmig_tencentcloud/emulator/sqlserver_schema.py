"""The SQL Server API (2018-03-28) actions the sandbox answers, and their parameters.

Transcribed from the reference's parameter lists (tccli's api.json). ``InstanceId``
of CreateBackup is marked optional there but "(Required)" in the docs; the emulator
requires it, as the service does.
"""

from __future__ import annotations

from batchmig_tencentcloud.emulator.base import Action
from batchmig_tencentcloud.emulator.params import INT, STRING, UINT, ListOf, struct

__all__ = ["ACTIONS", "RATE_LIMITS"]

_STRINGS = ListOf(STRING)
_INTS = ListOf(INT)
_PAGING = {"Limit": INT, "Offset": INT, "OrderBy": STRING, "OrderByType": STRING}

ACTIONS = {
    "DescribeDBInstances": Action(
        struct(
            ProjectId=UINT, Status=INT, Offset=INT, Limit=INT, InstanceIdSet=_STRINGS, PayMode=INT,
            VpcId=STRING, SubnetId=STRING, VipSet=_STRINGS, InstanceNameSet=_STRINGS, VersionSet=_STRINGS,
            Zone=STRING, TagKeys=_STRINGS, SearchKey=STRING, UidSet=_STRINGS, InstanceType=STRING,
            PaginationType=STRING,
        ),
        "describe_db_instances",
    ),
    "CreateBackup": Action(
        struct(
            ["InstanceId"], Strategy=INT, DBNames=_STRINGS, InstanceId=STRING, BackupName=STRING,
            StorageStrategy=INT,
        ),
        "create_backup",
        mutating=True,
    ),
    "DescribeBackupByFlowId": Action(
        struct(["InstanceId", "FlowId"], InstanceId=STRING, FlowId=STRING), "describe_backup_by_flow_id"
    ),
    "DescribeBackups": Action(
        struct(
            ["StartTime", "EndTime", "InstanceId"], StartTime=STRING, EndTime=STRING, InstanceId=STRING,
            Limit=INT, Offset=INT, BackupName=STRING, Strategy=INT, BackupWay=INT, BackupId=UINT,
            DatabaseName=STRING, Group=INT, Type=INT, BackupFormat=STRING, StorageStrategy=INT,
        ),
        "describe_backups",
    ),
    "DescribeFlowStatus": Action(struct(["FlowId"], FlowId=INT), "describe_flow_status"),
    "CreateBackupMigration": Action(
        struct(
            ["InstanceId", "RecoveryType", "UploadType", "MigrationName"], InstanceId=STRING,
            RecoveryType=STRING, UploadType=STRING, MigrationName=STRING, BackupFiles=_STRINGS,
        ),
        "create_backup_migration",
        mutating=True,
    ),
    "ModifyBackupMigration": Action(
        struct(
            ["InstanceId", "BackupMigrationId"], InstanceId=STRING, BackupMigrationId=STRING,
            MigrationName=STRING, RecoveryType=STRING, UploadType=STRING, BackupFiles=_STRINGS,
            DBRename=ListOf(struct(NewName=STRING, OldName=STRING)),
        ),
        "modify_backup_migration",
        mutating=True,
    ),
    "StartBackupMigration": Action(
        struct(["InstanceId", "BackupMigrationId"], InstanceId=STRING, BackupMigrationId=STRING),
        "start_backup_migration",
        mutating=True,
    ),
    "DescribeBackupMigration": Action(
        struct(
            ["InstanceId"], InstanceId=STRING, BackupMigrationId=STRING, MigrationName=STRING,
            BackupFileName=STRING, StatusSet=_INTS, RecoveryType=STRING, UploadType=STRING, **_PAGING,
        ),
        "describe_backup_migration",
    ),
    "DeleteBackupMigration": Action(
        struct(["InstanceId", "BackupMigrationId"], InstanceId=STRING, BackupMigrationId=STRING),
        "delete_backup_migration",
        mutating=True,
    ),
    "CreateIncrementalMigration": Action(
        struct(
            ["InstanceId", "BackupMigrationId"], InstanceId=STRING, BackupMigrationId=STRING,
            BackupFiles=_STRINGS, IsRecovery=STRING,
        ),
        "create_incremental_migration",
        mutating=True,
    ),
    "StartIncrementalMigration": Action(
        struct(
            ["InstanceId", "BackupMigrationId", "IncrementalMigrationId"], InstanceId=STRING,
            BackupMigrationId=STRING, IncrementalMigrationId=STRING,
        ),
        "start_incremental_migration",
        mutating=True,
    ),
    "DescribeIncrementalMigration": Action(
        struct(
            ["BackupMigrationId", "InstanceId"], BackupMigrationId=STRING, InstanceId=STRING,
            BackupFileName=STRING, StatusSet=_INTS, IncrementalMigrationId=STRING, **_PAGING,
        ),
        "describe_incremental_migration",
    ),
    "DeleteIncrementalMigration": Action(
        struct(
            ["InstanceId", "BackupMigrationId", "IncrementalMigrationId"], InstanceId=STRING,
            BackupMigrationId=STRING, IncrementalMigrationId=STRING,
        ),
        "delete_incremental_migration",
        mutating=True,
    ),
    "DescribeUploadBackupInfo": Action(
        struct(["InstanceId", "BackupMigrationId"], InstanceId=STRING, BackupMigrationId=STRING),
        "describe_upload_backup_info",
    ),
}  # fmt: skip

# Every SQL Server action is documented at 20/s, except DescribeDBInstances at 70/s.
RATE_LIMITS = {name: 20.0 for name in ACTIONS} | {"DescribeDBInstances": 70.0}
