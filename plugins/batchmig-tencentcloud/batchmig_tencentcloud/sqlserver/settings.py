"""Instance ``settings:`` of the ``tencent-sqlserver`` provider.

The model's field descriptions become the JSON Schema that editors autocomplete
with, so they are written for the operator. Keys are snake_case; values that go to
the API unchanged (``FULL_LOG``, ``COS_URL``) keep the API's spelling so they can
be looked up in Tencent's documentation. Rules that span fields live in
``check_settings`` (reported with their key path by ``Provider.check``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["BackupSettings", "ImportSettings", "SqlServerSettings", "check_settings"]

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,59}$"
"""BackupName / MigrationName: letters, digits, '-' and '_', at most 60 characters."""

TaskName = Annotated[
    str,
    Field(
        pattern=NAME_PATTERN,
        description="Letters, digits, '-' and '_', at most 60 characters, starting with a letter or digit.",
    ),
]
DatabaseName = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[^\s\[\]]([^\[\]]*[^\s\[\]])?$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackupSettings(_Strict):
    """A manual backup of the target instance (CreateBackup)."""

    strategy: Literal["instance", "databases"] = Field(
        default="instance",
        description="'instance': back up the whole instance (Strategy 0); "
        "'databases': back up the listed databases (Strategy 1).",
    )
    databases: list[DatabaseName] = Field(
        default_factory=list,
        description="Databases to back up; required with strategy 'databases' (DBNames).",
    )
    name: TaskName | None = Field(
        default=None,
        description="BackupName. Default: a deterministic name batchmig derives from the instance, so that "
        "a lost answer can be reconciled by looking the backup up.",
    )
    keep_until_deactivated: bool = Field(
        default=False,
        description="Keep the backup until the instance is deactivated (StorageStrategy 1) instead of "
        "following the instance's retention policy (StorageStrategy 0).",
    )


class ImportSettings(_Strict):
    """A cold-backup import into the target instance (CreateBackupMigration & co)."""

    recovery_type: Literal["FULL", "FULL_LOG", "FULL_DIFF"] = Field(
        default="FULL",
        description="FULL: one full backup, databases online when it is restored. "
        "FULL_LOG / FULL_DIFF: a full backup, then the transaction-log / differential backups of "
        "incremental_files; the last one brings the databases online and is the cutover.",
    )
    upload_type: Literal["COS_URL", "COS_UPLOAD"] = Field(
        default="COS_URL",
        description="COS_URL: backup_file and incremental_files are URLs of objects in your own COS bucket. "
        "COS_UPLOAD: they are file names already uploaded to the task's Tencent bucket.",
    )
    backup_file: str = Field(
        min_length=1,
        description="The full backup: one file (it may hold several databases). A COS URL or a file name, "
        "per upload_type.",
    )
    incremental_files: list[Annotated[str, Field(min_length=1)]] = Field(
        default_factory=list,
        description="Log (FULL_LOG) or differential (FULL_DIFF) backups, in restore order, one file each. "
        "The last is restored WITH RECOVERY (IsRecovery=YES): that step is the cutover.",
    )
    rename: dict[DatabaseName, DatabaseName] = Field(
        default_factory=dict,
        description="Restore databases under new names: {name in the backup: name on the target} "
        "(ModifyBackupMigration DBRename).",
    )
    migration_name: TaskName | None = Field(
        default=None,
        description="MigrationName. Default: a deterministic name batchmig derives from the instance, used "
        "to find the task again after a lost answer.",
    )


class SqlServerSettings(_Strict):
    """Settings of one ``tencent-sqlserver`` instance."""

    instance_id: str = Field(
        pattern=r"^mssql-[0-9a-z]+$",
        description="The TencentDB for SQL Server instance to back up or import into, e.g. mssql-njj2mtpl.",
    )
    scenario: Literal["backup", "import", "backup-then-import"] = Field(
        description="'backup': CreateBackup and wait. 'import': cold-backup import. 'backup-then-import': a "
        "safety backup of the target, then the import."
    )
    backup: BackupSettings = Field(
        default_factory=BackupSettings,
        description="The backup (scenarios 'backup' and 'backup-then-import').",
    )
    import_: ImportSettings | None = Field(
        default=None,
        alias="import",
        description="The import (scenarios 'import' and 'backup-then-import').",
    )


def check_settings(settings: SqlServerSettings) -> Iterator[tuple[str, str]]:
    """Rules across fields, as (key path, message)."""
    backup = settings.backup
    if backup.strategy == "databases" and not backup.databases:
        yield "backup.databases", "list the databases to back up when strategy is 'databases'"
    if backup.strategy == "instance" and backup.databases:
        yield "backup.databases", "databases are only used with strategy 'databases'"
    if len(set(backup.databases)) != len(backup.databases):
        yield "backup.databases", "a database is listed twice"
    importing = settings.scenario in ("import", "backup-then-import")
    if importing and settings.import_ is None:
        yield "import", f"scenario '{settings.scenario}' needs an 'import' section"
    if not importing and settings.import_ is not None:
        yield "import", "the 'import' section is only used by scenarios 'import' and 'backup-then-import'"
    if settings.import_ is not None:
        yield from _check_import(settings.import_)


def _check_import(spec: ImportSettings) -> Iterator[tuple[str, str]]:
    if spec.recovery_type == "FULL" and spec.incremental_files:
        yield (
            "import.incremental_files",
            "a FULL import takes no incremental files; use FULL_LOG or FULL_DIFF",
        )
    if spec.recovery_type != "FULL" and not spec.incremental_files:
        yield (
            "import.incremental_files",
            f"a {spec.recovery_type} import needs at least one incremental file: the last one brings the "
            "databases online",
        )
    files = [("import.backup_file", spec.backup_file)] + [
        (f"import.incremental_files.{index}", name) for index, name in enumerate(spec.incremental_files)
    ]
    seen: set[str] = set()
    for path, name in files:
        is_url = name.startswith(("https://", "http://"))
        if spec.upload_type == "COS_URL" and not is_url:
            yield path, "with upload_type COS_URL this must be a URL of the backup in COS (https://...)"
        if spec.upload_type == "COS_UPLOAD" and (is_url or "/" in name):
            yield (
                path,
                "with upload_type COS_UPLOAD this must be the name of an uploaded file, not a path or URL",
            )
        if name in seen:
            yield path, "this file is listed twice"
        seen.add(name)
    targets = list(spec.rename.values())
    if len(set(targets)) != len(targets):
        yield "import.rename", "two databases are renamed to the same name"
