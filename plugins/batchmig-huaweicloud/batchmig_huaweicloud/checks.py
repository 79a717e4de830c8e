"""Seed rules that span several settings, as (key path, message) pairs.

These run in ``Provider.check`` before any call, so a bad plan fails with every
problem located at the key to change instead of as a DRS 400 in the middle of a
change window. Rules on a single value are field validators in ``settings``.
"""

from __future__ import annotations

from collections.abc import Sequence

from batchmig_huaweicloud import rules
from batchmig_huaweicloud.jobs import JobPlan
from batchmig_huaweicloud.settings import DrsSettings

__all__ = ["settings_problems"]

Problem = tuple[str, str]


def settings_problems(settings: DrsSettings, jobs: Sequence[JobPlan] | None = None) -> list[Problem]:
    """Every cross-field problem of ``settings``; ``jobs`` as ``job_plans`` makes them."""
    problems: list[Problem] = []
    problems += _source_problems(settings)
    problems += _restore_option_problems(settings)
    problems += _tag_problems(settings)
    if jobs is not None:
        problems += _name_problems(settings, jobs)
    return problems


def _source_problems(s: DrsSettings) -> list[Problem]:
    out: list[Problem] = []
    if s.file_source == "OBS":
        if not s.bucket_name:
            out.append(("bucket_name", "bucket_name is required when file_source is OBS"))
        if s.file_id:
            out.append(("file_id", "file_id is only used with file_source RDS"))
        steps = [("files", s.files)] + [
            (f"incrementals.{i}.files", step.files) for i, step in enumerate(s.incrementals)
        ]
        for path, files in steps:
            for j, f in enumerate(files):
                if not f.name:
                    out.append((f"{path}.{j}.name", "the backup file name is required for OBS"))
                if f.rds_version is not None or f.rds_source_instance_id is not None:
                    out.append(
                        (f"{path}.{j}", "rds_version and rds_source_instance_id are only used with RDS")
                    )
    elif s.file_source == "RDS":
        if s.bucket_name:
            out.append(("bucket_name", "bucket_name is only used with file_source OBS"))
        if not s.file_id:
            out.append(("file_id", "file_id (the RDS full backup id) is required when file_source is RDS"))
        if s.incrementals:
            out.append(
                ("incrementals", "an RDS full backup is restored by one full job; incrementals need OBS")
            )
        if s.recovery_mode != "full":
            out.append(("recovery_mode", "an RDS backup is a full backup: recovery_mode must be 'full'"))
        if len(s.files) != 1:
            out.append(("files", "give exactly one file entry for an RDS full backup"))
        for j, f in enumerate(s.files):
            if not f.rds_version:
                out.append((f"files.{j}.rds_version", "rds_version is required when file_source is RDS"))
            if not f.rds_source_instance_id:
                out.append(
                    (
                        f"files.{j}.rds_source_instance_id",
                        "rds_source_instance_id is required when file_source is RDS",
                    )
                )
    return out


def _restore_option_problems(s: DrsSettings) -> list[Problem]:
    out: list[Problem] = []
    if s.reset_db_name_map:
        named = [name for name in s.db_names if name]
        if len(named) > 1:
            out.append(("reset_db_name_map", "reset_db_name_map needs a backup with only one database"))
        if s.recovery_mode != "full" or s.incrementals:
            out.append(
                ("reset_db_name_map", "reset_db_name_map is only allowed for a full backup restored alone")
            )
        if not s.is_last_backup:
            out.append(("reset_db_name_map", "reset_db_name_map is only allowed with is_last_backup true"))
    if not s.is_default_restore and not [name for name in s.db_names if name]:
        out.append(("db_names", "name the databases to restore when is_default_restore is false"))
    if s.ms_file_stream_status is not None and s.ms_file_stream_status not in ("on", "off"):
        out.append(("ms_file_stream_status", "ms_file_stream_status must be 'on' or 'off'"))
    return out


def _tag_problems(s: DrsSettings) -> list[Problem]:
    seen: set[str] = set()
    out: list[Problem] = []
    for i, tag in enumerate(s.tags):
        if tag.key in seen:
            out.append((f"tags.{i}.key", f"tag key {tag.key!r} is given twice"))
        seen.add(tag.key)
    return out


def _name_problems(s: DrsSettings, jobs: Sequence[JobPlan]) -> list[Problem]:
    out: list[Problem] = []
    for job in jobs:
        problem = rules.task_name_problem(job.name)
        if problem:
            # Generated names always pass; only a given task_name can break the rule.
            out.append(("task_name", f"job name {job.name!r}: {problem}"))
    return out
