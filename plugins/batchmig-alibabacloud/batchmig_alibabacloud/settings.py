"""``settings:`` of one ``alibaba-rds-sqlserver`` instance, and the rules across its fields.

The model states what each field may hold (its JSON Schema is in ``batchmig schema``,
its errors are located plan errors); ``settings_problems`` states the rules the API
reference gives across fields, each as (key path, message):

- incremental/log files (``logs``) only in a ``chain``: a one-shot migration is one
  FULL task with ``IsOnlineDB=True``, which takes no further file;
- SQL Server 2008 R2 takes backup files only by ``OSSUrls``; later versions need
  ``OssObjectPositions`` (checked offline when ``engine_version`` is given, and by
  ``run --check`` against the instance's real version otherwise);
- SQL Server 2008 R2 migrates only with ``IsOnlineDB=True``: one-shot, never a chain;
- a file may not appear twice in one chain, system databases cannot be migrated.

Two rules of the reference cannot be broken through these settings, because the
provider builds the calls: ``IsOnlineDB=True`` is only ever sent with ``FULL``, and an
``UPDF`` task always names the chain's FULL task (``MigrateTaskId``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["AlibabaSettings", "BackupFile", "settings_problems"]

SYSTEM_DATABASES = frozenset({"master", "model", "msdb", "tempdb", "distribution"})

OSS_POSITION = r"^oss-[a-z0-9-]+\.aliyuncs\.com:[a-z0-9][a-z0-9-]{1,61}[a-z0-9]:[^\s:][^\s]*$"


class BackupFile(BaseModel):
    """One backup file in OSS: by object position, or by shared URL(s)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    oss_object: str | None = Field(
        default=None, pattern=OSS_POSITION,
        description="OssObjectPositions, 'endpoint:bucket:key', e.g. "
                    "'oss-ap-southeast-1.aliyuncs.com:backups:sales/sales_FULL.bak' (SQL Server after 2008 R2).",
    )
    urls: list[str] | None = Field(
        default=None, min_length=1,
        description="OSSUrls: the shared (signed) URL(s) of the file, required on SQL Server 2008 R2.",
    )

    @model_validator(mode="after")
    def _one_way(self) -> BackupFile:
        if (self.oss_object is None) == (self.urls is None):
            raise ValueError("give the file either as oss_object (endpoint:bucket:key) or as urls, not both")
        for url in self.urls or ():
            if not url.startswith(("https://", "http://")) or any(ch.isspace() for ch in url):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return self

    def params(self) -> dict[str, str]:
        """The request parameters that name this file."""
        if self.oss_object is not None:
            return {"OssObjectPositions": self.oss_object}
        # Several URLs are joined by '|' and the whole is URL-encoded, as the reference says.
        return {"OSSUrls": quote("|".join(self.urls or ()), safe="")}

    @property
    def way(self) -> str:
        return "oss_object" if self.oss_object is not None else "urls"


class AlibabaSettings(BaseModel):
    """One SQL Server database restored from backup files in OSS into an RDS instance."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    instance_id: str = Field(pattern=r"^rm-[a-z0-9]{4,40}$", description="DBInstanceId of the RDS instance.")
    database: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{0,63}$", description="DBName: the database to create.")
    mode: Literal["one-shot", "chain"] = Field(
        default="one-shot",
        description="'one-shot': one FULL task that brings the database online (IsOnlineDB=True); "
                    "'chain': FULL (IsOnlineDB=False), an UPDF task per file in logs, then "
                    "CreateOnlineDatabaseTask as the cutover (the plan's cutover policy applies).",
    )
    full: BackupFile = Field(description="The full backup file.")
    logs: list[BackupFile] = Field(
        default_factory=list, description="Incremental (differential) or log backup files, in restore order (chain).",
    )
    check_db_mode: Literal["AsyncExecuteDBCheck", "SyncExecuteDBCheck"] = Field(
        default="AsyncExecuteDBCheck",
        description="CheckDBMode: DBCC CHECKDB after (Async) or before (Sync) the database goes online.",
    )
    engine_version: str | None = Field(
        default=None, pattern=r"^(2008r2|2012|2014|2016|2017|2019|2022)$",
        description="The instance's SQL Server version, if known: checks the file rules offline.",
    )

    def files(self) -> list[tuple[str, BackupFile]]:
        """Every file with its key path under ``settings``."""
        return [("full", self.full), *((f"logs.{n}", log) for n, log in enumerate(self.logs))]


def settings_problems(settings: AlibabaSettings) -> Sequence[tuple[str, str]]:
    """The rules across fields, as (key path under settings, message)."""
    problems: list[tuple[str, str]] = []
    if settings.database.lower() in SYSTEM_DATABASES:
        problems.append(("database", f"{settings.database} is a system database; it cannot be migrated"))
    if settings.logs and settings.mode == "one-shot":
        problems.append(("logs", "log and incremental files need mode: chain (a one-shot FULL task with "
                                 "IsOnlineDB=True brings the database online and takes no further file)"))
    if settings.engine_version == "2008r2" and settings.mode == "chain":
        problems.append(("mode", "SQL Server 2008 R2 migrates only one-shot (IsOnlineDB=True): no chain"))
    if settings.engine_version is not None:
        wanted = "urls" if settings.engine_version == "2008r2" else "oss_object"
        for path, file in settings.files():
            if file.way != wanted:
                problems.append((f"{path}.{file.way}", _version_rule(settings.engine_version)))
    seen: dict[tuple[str, ...], str] = {}
    for path, file in settings.files():
        key = (file.oss_object,) if file.oss_object else tuple(file.urls or ())
        if key in seen:
            problems.append((path, f"the same file as {seen[key]}: a chain restores each file once"))
        seen.setdefault(key, path)
    return problems


def _version_rule(version: str) -> str:
    if version == "2008r2":
        return "SQL Server 2008 R2 takes backup files only by OSSUrls: give urls instead"
    return f"SQL Server {version} needs OssObjectPositions: give oss_object (endpoint:bucket:key) instead"


def version_problem(engine_version: str, settings: AlibabaSettings) -> str | None:
    """What is wrong with the files for an instance of ``engine_version`` (as the API spells it)."""
    version = "2008r2" if engine_version.lower().startswith("2008r2") else engine_version.split("_")[0]
    wanted = "urls" if version == "2008r2" else "oss_object"
    wrong = [path for path, file in settings.files() if file.way != wanted]
    if wrong:
        return f"{', '.join(wrong)}: {_version_rule(version)}"
    if version == "2008r2" and settings.mode == "chain":
        return "SQL Server 2008 R2 migrates only one-shot (IsOnlineDB=True): no chain"
    return None
