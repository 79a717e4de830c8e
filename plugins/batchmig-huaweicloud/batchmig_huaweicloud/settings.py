"""What a plan says about one DRS instance (``settings:``) and one provider config.

The settings are flat rather than nested like the API body (``base_info``,
``backup_info``...), because an operator thinks in "which target, which bucket,
which files", and the README maps every key to its API field. One rule per field
lives in a field validator so the plan error points at that key; rules that span
fields are in ``checks.settings_problems`` (``Provider.check``), which points at the
key to change.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from batchmig_huaweicloud import rules

__all__ = ["BackupFile", "DrsOptions", "DrsSettings", "IncrementalBackup", "Tag"]


def _raise(problem: str | None) -> None:
    if problem:
        raise ValueError(problem)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BackupFile(_Strict):
    """One backup file (``backup_info.files[]``)."""

    name: str = Field(
        "",
        description="Backup file name in the bucket, e.g. 'db01_full.bak'. Required for OBS; "
        "may stay empty for an RDS backup.",
    )
    obs_path: str = Field(
        "",
        description="Folder of the file inside the OBS bucket, e.g. 'full/' ('' for the bucket root). "
        "Always sent, as '' when unused, as DRS expects.",
    )
    rds_version: str | None = Field(
        None, description="RDS only (required): SQL Server version of the backup, e.g. '2019_EE'."
    )
    rds_source_instance_id: str | None = Field(
        None, description="RDS only (required): id of the RDS instance the backup was taken from."
    )


class IncrementalBackup(_Strict):
    """One later step of a full+incremental chain: one DRS job with ``recovery_mode=incre``."""

    files: list[BackupFile] = Field(
        ..., description="The incremental (differential or log) backup file(s) of this step."
    )

    @field_validator("files")
    @classmethod
    def _some_files(cls, files: list[BackupFile]) -> list[BackupFile]:
        if not files:
            raise ValueError("each incremental step needs at least one backup file")
        return files


class Tag(_Strict):
    """A tag on the DRS task (``base_info.tags[]``)."""

    key: str = Field(..., description="1-36 letters, digits, '_' or '-'.")
    value: str = Field("", description="Letters, digits, spaces and _ . : / = + - @")

    @field_validator("key")
    @classmethod
    def _key(cls, key: str) -> str:
        _raise(rules.tag_key_problem(key))
        return key

    @field_validator("value")
    @classmethod
    def _value(cls, value: str) -> str:
        _raise(rules.tag_value_problem(value))
        return value


class DrsSettings(_Strict):
    """Settings of one ``huawei-drs`` instance: restore SQL Server backups into an RDS
    for SQL Server instance with DRS backup migration jobs.

    Scenarios: ``file_source: OBS`` with ``files`` (one full job); the same plus
    ``incrementals`` (a chain of jobs, the last one being the cutover); ``file_source:
    RDS`` with ``file_id`` and one file giving ``rds_version`` and
    ``rds_source_instance_id`` (one full job from an RDS full backup).
    """

    target_instance_id: str = Field(
        ...,
        min_length=1,
        description="Id of the RDS for SQL Server instance to restore into "
        "(target_db_info.target_instance_id).",
    )
    file_source: str = Field(
        "OBS",
        description="Where the backup is: 'OBS' (.bak files in an OBS bucket) or 'RDS' (an RDS full "
        "backup). Upper case, as DRS requires.",
    )
    bucket_name: str | None = Field(
        None,
        description="OBS bucket holding the backup files (required for OBS, same region as the target).",
    )
    files: list[BackupFile] = Field(
        ...,
        description="Files of the first job: the full backup (OBS), or one entry with rds_version and "
        "rds_source_instance_id (RDS).",
    )
    incrementals: list[IncrementalBackup] = Field(
        default_factory=list,
        description="OBS full+incremental: later backups, oldest first, each restored by its own job. "
        "Every job but the last leaves the database RESTORING; the last one is the cutover.",
    )
    file_id: str | None = Field(
        None, description="RDS only (required): id of the RDS full backup (target_db_info.file_id)."
    )
    recovery_mode: str = Field(
        "full",
        description="Mode of the first job: 'full', or 'incre' when the full backup was already restored "
        "(database RESTORING) before this plan. Later jobs are always 'incre'.",
    )
    is_last_backup: bool = Field(
        True,
        description="Whether the plan's final job restores the last backup and brings the database "
        "online. false leaves it RESTORING for more backups later (then there is no cutover step).",
    )
    task_name: str | None = Field(
        None,
        description="DRS task name (4-50 letters, digits, '-', '_', leading letter). Chains append "
        "'-full', '-incr-1'... Default: generated from the instance id and run token, which is "
        "what lets batchmig find a job whose create answer was lost.",
    )
    engine_type: str = Field("sqlserver", description="DB engine; DRS accepts only 'sqlserver'.")
    description: str | None = Field(None, description="Task description (at most 256 characters).")
    enterprise_project_id: str | None = Field(
        None, description="Enterprise project of the task ('0' is the default project)."
    )
    tags: list[Tag] = Field(default_factory=list, description="Tags put on every task.")
    ms_file_stream_status: str | None = Field(
        None, description="Whether FILESTREAM is enabled on the target ('on' or 'off'), if known."
    )
    is_cover: bool = Field(
        False, description="Overwrite databases of the same name on the target (DRS default: false)."
    )
    is_default_restore: bool = Field(
        True, description="Restore every database in the backup; false restores only db_names."
    )
    db_names: list[str] = Field(
        default_factory=list, description="Databases to restore (case-sensitive names in the backup)."
    )
    reset_db_name_map: dict[str, str] = Field(
        default_factory=dict,
        description="Restore under a new name: {'': 'new_name'}. The key must be the empty string; only "
        "for a backup with one database, a full backup and a single job with is_last_backup.",
    )
    is_precheck: bool = Field(True, description="Run DRS's precheck before restoring.")
    is_delete_backup_file: bool | None = Field(
        None, description="OBS: delete the copy downloaded to the RDS disk afterwards (DRS default: true)."
    )
    consistency_check_mode: Literal["sync", "async"] | None = Field(
        None, description="DBCC consistency check after the restore: 'sync' or 'async'."
    )

    @field_validator("file_source")
    @classmethod
    def _file_source(cls, value: str) -> str:
        _raise(rules.file_source_problem(value))
        return value

    @field_validator("bucket_name")
    @classmethod
    def _bucket(cls, value: str | None) -> str | None:
        if value is not None:
            _raise(rules.bucket_name_problem(value))
        return value

    @field_validator("files")
    @classmethod
    def _some_files(cls, files: list[BackupFile]) -> list[BackupFile]:
        if not files:
            raise ValueError("at least one backup file is required")
        return files

    @field_validator("recovery_mode")
    @classmethod
    def _recovery_mode(cls, value: str) -> str:
        _raise(rules.recovery_mode_problem(value))
        return value

    @field_validator("task_name")
    @classmethod
    def _task_name(cls, value: str | None) -> str | None:
        if value is not None:
            _raise(rules.task_name_problem(value))
        return value

    @field_validator("engine_type")
    @classmethod
    def _engine(cls, value: str) -> str:
        _raise(rules.engine_type_problem(value))
        return value

    @field_validator("description")
    @classmethod
    def _description(cls, value: str | None) -> str | None:
        if value is not None:
            _raise(rules.description_problem(value))
        return value

    @field_validator("reset_db_name_map")
    @classmethod
    def _reset_map(cls, mapping: dict[str, str]) -> dict[str, str]:
        if len(mapping) > 1:
            raise ValueError("reset_db_name_map renames the backup's only database: give one entry")
        for key, new_name in mapping.items():
            if key != "":
                raise ValueError(
                    f"reset_db_name_map key must be the empty string '' (DRS requires it), not {key!r}; "
                    "the value is the new database name"
                )
            if not new_name:
                raise ValueError("reset_db_name_map needs the new database name as its value")
        return mapping


class DrsOptions(_Strict):
    """Extra keys of a ``huawei-drs`` provider configuration (``providers.<name>.options``)."""

    project_id: str | None = Field(
        None,
        description="Project id of the region. Default: the HUAWEICLOUD_SDK_PROJECT_ID credential, "
        "else resolved once from IAM (GET /v3/projects?name=<region>).",
    )
    auth: Literal["aksk", "token"] = Field(
        "aksk",
        description="'aksk': sign every request with the access key (SDK-HMAC-SHA256). 'token': get "
        "an IAM token with iam_user/iam_domain and the iam_password credential.",
    )
    iam_endpoint: str | None = Field(
        None,
        description="IAM base URL for tokens and project lookup. Default: "
        "https://iam.<region>.myhuaweicloud.com, or the provider endpoint when one is set (sandbox).",
    )
    iam_user: str | None = Field(None, description="Token auth: IAM user name.")
    iam_domain: str | None = Field(None, description="Token auth: account (domain) name of the IAM user.")
    language: Literal["en-us", "zh-cn"] | None = Field(
        None, description="X-Language header: language of DRS error messages."
    )
