"""Instance ``settings:`` of the ``tencent-dts`` provider (DTS API 2018-03-30).

A DTS migration job either exists already (``job_id``) or is described under
``job:`` and created by batchmig. Database passwords never appear in the plan: the
settings name an environment variable or a credentials field holding them, and the
value is added only to the signed request (see ``secret_refs``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["DtsSettings", "JobSpec", "SourceSpec", "TargetSpec", "check_settings"]

MIGRATE_TYPES = {"structure": 1, "full": 2, "full-incremental": 3}
CONSISTENCY = {"not-configured": 1, "full": 2, "inconsistent-only": 4, "none": 5}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class _Secret(_Strict):
    password_env: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z_][A-Za-z0-9_]*$",
        description="Name of the environment variable that holds the database password.",
    )
    password_credential: str | None = Field(
        default=None,
        description="Name of a field of the provider's credentials: block that holds the database password "
        "(e.g. source_password: '${env:SRC_PW}').",
    )


class SourceSpec(_Secret):
    """Where DTS reads from (SrcInfo). Which fields are needed depends on access_type."""

    access_type: Literal["extranet", "cvm", "dcg", "vpncloud", "cdb", "ccn"] = Field(
        description="How DTS reaches the source (SrcAccessType): extranet (public IP), cvm (a CVM instance), "
        "dcg (Direct Connect), vpncloud (VPN), cdb (a TencentDB instance), ccn (Cloud Connect Network)."
    )
    region: str = Field(description="Region of the source, e.g. ap-guangzhou.")
    ip: str | None = Field(default=None, description="Source address (extranet, cvm, dcg, vpncloud, ccn).")
    port: int | None = Field(default=None, ge=1, le=65535, description="Source port, usually 1433.")
    user: str | None = Field(default=None, description="Login used by DTS on the source.")
    instance_id: str | None = Field(default=None, description="TencentDB instance id (access_type cdb).")
    cvm_instance_id: str | None = Field(default=None, description="CVM instance id (access_type cvm).")
    vpc_id: str | None = Field(default=None, description="VPC id (dcg, vpncloud, ccn).")
    subnet_id: str | None = Field(default=None, description="Subnet id (dcg, vpncloud, ccn).")
    uniq_dcg_id: str | None = Field(default=None, description="Direct Connect gateway id (dcg).")
    uniq_vpn_gw_id: str | None = Field(default=None, description="VPN gateway id (vpncloud).")
    ccn_id: str | None = Field(default=None, description="Cloud Connect Network id (ccn).")
    supplier: Literal["aliyun", "others"] | None = Field(default=None, description="Source cloud vendor.")
    engine_version: str | None = Field(default=None, description="Source SQL Server version.")


class TargetSpec(_Secret):
    """The TencentDB for SQL Server instance DTS writes to (DstInfo)."""

    region: str = Field(description="Region of the target instance.")
    instance_id: str = Field(
        pattern=r"^mssql-[0-9a-z]+$", description="Target instance id, e.g. mssql-4fb2l6tr."
    )
    user: str | None = Field(default=None, description="Login used by DTS on the target.")


class DatabaseSpec(_Strict):
    """One entry of DatabaseInfo."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Database to migrate.")
    schema_name: str | None = Field(default=None, alias="schema", description="Schema, for table lists.")
    tables: list[str] = Field(default_factory=list, description="Tables to migrate; empty: all of them.")


class JobSpec(_Strict):
    """A migration job for batchmig to create (CreateMigrateJob)."""

    name: str | None = Field(
        default=None,
        min_length=1,
        max_length=60,
        description="JobName. Default: a deterministic name batchmig derives from the instance; batchmig "
        "finds the job by this name after a lost answer, so it must be unique.",
    )
    migrate_object: Literal["instance", "databases"] = Field(
        default="instance", description="Migrate the whole instance (1) or the listed databases (2)."
    )
    databases: list[DatabaseSpec] = Field(
        default_factory=list,
        description="Databases (and tables) for migrate_object 'databases' (DatabaseInfo).",
    )
    consistency_check: Literal["not-configured", "full", "inconsistent-only", "none"] = Field(
        default="not-configured", description="Data consistency check after migration (ConsistencyType)."
    )
    source: SourceSpec
    target: TargetSpec
    tags: dict[str, str] = Field(default_factory=dict, description="Tags put on the job.")


class DtsSettings(_Strict):
    """Settings of one ``tencent-dts`` instance: one DTS migration job."""

    job_id: str | None = Field(
        default=None, pattern=r"^dts-[0-9a-z]+$", description="An existing job to check, start and complete."
    )
    job: JobSpec | None = Field(default=None, description="A job to create; give this or job_id.")
    migrate_type: Literal["structure", "full", "full-incremental"] = Field(
        description="structure (1): schema only; full (2): schema and data; full-incremental (3): then keep "
        "syncing until the cutover step (CompleteMigrateJob). For job_id, say what the job is."
    )
    complete_mode: Literal["waitForSync", "immediately"] | None = Field(
        default=None,
        description="CompleteMigrateJob's CompleteMode: wait until the lag is 0 (default) or stop at once.",
    )


def check_settings(settings: DtsSettings) -> Iterator[tuple[str, str]]:
    """Rules across fields, as (key path, message)."""
    if (settings.job_id is None) == (settings.job is None):
        yield "job_id", "give either job_id (an existing job) or job (a job to create), not both or neither"
    if settings.complete_mode is not None and settings.migrate_type != "full-incremental":
        yield "complete_mode", "complete_mode only applies to migrate_type full-incremental"
    job = settings.job
    if job is None:
        return
    if job.migrate_object == "databases" and not job.databases:
        yield "job.databases", "list the databases when migrate_object is 'databases'"
    if job.migrate_object == "instance" and job.databases:
        yield "job.databases", "databases are only used with migrate_object 'databases'"
    for side, spec in (("source", job.source), ("target", job.target)):
        if spec.password_env and spec.password_credential:
            yield f"job.{side}.password_env", "give password_env or password_credential, not both"
    source = job.source
    needs = {
        "extranet": ("ip", "port"),
        "cvm": ("cvm_instance_id", "port"),
        "dcg": ("ip", "port", "vpc_id", "subnet_id", "uniq_dcg_id"),
        "vpncloud": ("ip", "port", "vpc_id", "subnet_id", "uniq_vpn_gw_id"),
        "ccn": ("ip", "port", "vpc_id", "subnet_id", "ccn_id"),
        "cdb": ("instance_id",),
    }[source.access_type]
    for name in needs:
        if getattr(source, name) is None:
            yield f"job.source.{name}", f"required with access_type {source.access_type}"
