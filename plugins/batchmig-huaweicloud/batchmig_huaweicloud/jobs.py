"""Which DRS jobs one instance needs, and the create body of each.

DRS has no "incremental migration" object: each backup of a full+incremental chain
is restored by its own backup migration job against the same target, and only the
job flagged ``is_last_backup`` brings the database online. So an instance becomes an
ordered list of ``JobPlan``s; the provider turns each into a create step and a wait
step. Everything here is pure, so dry-run shows exactly these bodies.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from batchmig_huaweicloud.settings import BackupFile, DrsSettings

__all__ = ["JobPlan", "create_body", "job_plans"]


@dataclass(frozen=True)
class JobPlan:
    """One backup migration job of an instance."""

    label: str
    """``full``, ``incr-1``, ``incr-2``...: names the steps and ends the job name."""
    name: str
    recovery_mode: str
    is_last_backup: bool
    files: tuple[BackupFile, ...]
    cutover: bool

    @property
    def create_step(self) -> str:
        return f"create-{self.label}"

    @property
    def wait_step(self) -> str:
        return f"wait-{self.label}"


def job_plans(settings: DrsSettings, generated_name: Callable[[str], str]) -> list[JobPlan]:
    """The jobs of one instance, in order. ``generated_name(label)`` names a job when
    the plan gives no ``task_name``."""
    chain: list[tuple[str, str, tuple[BackupFile, ...]]] = [
        (
            "full" if settings.recovery_mode == "full" else "incr-0",
            settings.recovery_mode,
            tuple(settings.files),
        )
    ]
    chain += [(f"incr-{i}", "incre", tuple(step.files)) for i, step in enumerate(settings.incrementals, 1)]
    single = len(chain) == 1
    plans = []
    for index, (label, mode, files) in enumerate(chain):
        last = index == len(chain) - 1
        if settings.task_name:
            name = settings.task_name if single else f"{settings.task_name}-{label}"
        else:
            name = generated_name(label)
        plans.append(
            JobPlan(
                label=label,
                name=name,
                recovery_mode=mode,
                is_last_backup=last and settings.is_last_backup,
                files=files,
                # Bringing the database online at the end of a chain is the switch-over.
                cutover=last and not single and settings.is_last_backup,
            )
        )
    return plans


def _file(settings: DrsSettings, f: BackupFile) -> dict[str, Any]:
    # DRS wants obs_path present, as "" when unused (the Terraform provider notes it).
    entry: dict[str, Any] = {"name": f.name, "obs_path": f.obs_path}
    if settings.file_source == "RDS":
        entry["rds_version"] = f.rds_version
        entry["rds_source_instance_id"] = f.rds_source_instance_id
    return entry


def create_body(settings: DrsSettings, job: JobPlan) -> dict[str, Any]:
    """The ``CreateReplicationJob`` body for ``job``; unset optional fields are omitted."""
    base: dict[str, Any] = {"name": job.name, "engine_type": settings.engine_type}
    if settings.description is not None:
        base["description"] = settings.description
    if settings.enterprise_project_id is not None:
        base["enterprise_project_id"] = settings.enterprise_project_id
    if settings.tags:
        base["tags"] = [{"key": t.key, "value": t.value} for t in settings.tags]

    target: dict[str, Any] = {"target_instance_id": settings.target_instance_id}
    if settings.ms_file_stream_status is not None:
        target["ms_file_stream_status"] = settings.ms_file_stream_status
    if settings.file_source == "RDS":
        target["file_id"] = settings.file_id

    backup: dict[str, Any] = {"file_source": settings.file_source}
    if settings.file_source == "OBS":
        backup["bucket_name"] = settings.bucket_name
    backup["files"] = [_file(settings, f) for f in job.files]

    options: dict[str, Any] = {
        "is_last_backup": job.is_last_backup,
        "is_precheck": settings.is_precheck,
        "recovery_mode": job.recovery_mode,
        "is_cover": settings.is_cover,
        "is_default_restore": settings.is_default_restore,
    }
    if settings.db_names:
        options["db_names"] = list(settings.db_names)
    if settings.reset_db_name_map:
        options["reset_db_name_map"] = dict(settings.reset_db_name_map)
    if settings.is_delete_backup_file is not None and settings.file_source == "OBS":
        options["is_delete_backup_file"] = settings.is_delete_backup_file
    if settings.consistency_check_mode is not None:
        options["consistency_check_mode"] = settings.consistency_check_mode
    return {"base_info": base, "target_db_info": target, "backup_info": backup, "options": options}
