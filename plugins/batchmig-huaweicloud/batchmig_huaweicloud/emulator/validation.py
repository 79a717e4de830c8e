"""DRS's checks of a create (and update) body, answered as HTTP 400 with DRS v5 codes.

The rules are the seed's, from ``batchmig_huaweicloud.rules`` (the very functions the
provider checks plans with). The codes are those the v5 pages show: a missing
parameter is ``DRS.10000001`` ("Failed.", the create page's 400 example), an invalid
value ``DRS.M00202`` ("The value of %s is invalid.", in the v5 examples). The v3
catalogue's finer codes (``DRS.M00201`` empty parameter, ``M00269``-``M00271`` for
tags) appear on no v5 page, so they are not used. Messages name the field and come
in English or Chinese (``X-Language``).

Like DRS, the emulator ignores unknown keys and takes the documentation's empty
placeholders (``""``, ``[]``, ``{}``, ``[""]``) as "not set"; the RDS example even
sends ``recovery_mode: ""`` and ``is_last_backup: ""``, read here as full and true.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchmig_huaweicloud import rules

__all__ = ["CreateRequest", "Invalid", "invalid_value", "validate_create", "validate_update"]

MAX_TAGS = 20


FAILED = "DRS.10000001"
INVALID_VALUE = "DRS.M00202"


class Invalid(Exception):  # noqa: N818 - it is DRS's answer, raised to stop checking
    """A DRS error answer: its code, its message in en-us and zh-cn, its HTTP status."""

    def __init__(self, code: str, message: str, message_zh: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.message_zh = message_zh

    def message_in(self, language: str) -> str:
        """``X-Language`` is ``en-us`` (the default) or ``zh-cn``, in any case."""
        return self.message_zh if language.lower() == "zh-cn" else self.message


def _empty(field: str) -> Invalid:
    return Invalid(FAILED, f"Failed. The parameter {field} is empty.", f"失败。参数 {field} 为空。")


def invalid_value(field: str, why: str | None = None) -> Invalid:
    """DRS.M00202 for ``field`` (a body field, a path or query parameter)."""
    return Invalid(
        INVALID_VALUE, f"The value of {field} is invalid." + (f" {why}" if why else ""), f"参数 {field} 的值无效。"
    )




@dataclass(frozen=True)
class CreateRequest:
    """A create body that passed every check, normalised."""

    base_info: dict[str, Any]
    target_db_info: dict[str, Any]
    backup_info: dict[str, Any]
    options: dict[str, Any]


def _object(body: Mapping[str, Any], key: str) -> dict[str, Any]:
    value = body.get(key)
    if not isinstance(value, dict):
        raise _empty(key)
    return value


def _text(obj: Mapping[str, Any], key: str, field: str, *, required: bool = False) -> str:
    value = obj.get(key)
    if value is None or value == "":
        if required:
            raise _empty(field)
        return ""
    if not isinstance(value, str):
        raise invalid_value(field)
    return value


def _flag(
    obj: Mapping[str, Any], key: str, *, required: bool, placeholder: bool | None = None
) -> bool | None:
    value = obj.get(key)
    if value == "" and placeholder is not None:
        return placeholder
    if value is None:
        if required:
            raise _empty(f"options.{key}")
        return None
    if not isinstance(value, bool):
        raise invalid_value(f"options.{key}")
    return value


def _check(problem: str | None, field: str) -> None:
    if problem:
        raise invalid_value(field, problem)


def _base_info(base: dict[str, Any]) -> dict[str, Any]:
    name = _text(base, "name", "base_info.name", required=True)
    _check(rules.task_name_problem(name), "base_info.name")
    engine = _text(base, "engine_type", "base_info.engine_type", required=True)
    _check(rules.engine_type_problem(engine), "base_info.engine_type")
    description = _text(base, "description", "base_info.description")
    _check(rules.description_problem(description), "base_info.description")
    tags = base.get("tags") or []
    if not isinstance(tags, list):
        raise invalid_value("base_info.tags")
    if len(tags) > MAX_TAGS:
        raise invalid_value("base_info.tags", f"At most {MAX_TAGS} tags are allowed.")
    seen: set[str] = set()
    for tag in tags:
        key = str(tag.get("key", "")) if isinstance(tag, dict) else ""
        value = str(tag.get("value", "")) if isinstance(tag, dict) else ""
        if len(key) > 36:
            raise invalid_value("base_info.tags.key", "A tag key has at most 36 characters.")
        _check(rules.tag_key_problem(key), "base_info.tags.key")
        _check(rules.tag_value_problem(value), "base_info.tags.value")
        if key in seen:
            raise invalid_value("base_info.tags.key", f"Duplicate tag key: {key}.")
        seen.add(key)
    return {
        "name": name,
        "engine_type": engine,
        "description": description,
        "enterprise_project_id": _text(base, "enterprise_project_id", "base_info.enterprise_project_id")
        or "0",
        "tags": [{"key": t["key"], "value": t.get("value", "")} for t in tags],
    }


def _backup_info(backup: dict[str, Any], target: dict[str, Any]) -> dict[str, Any]:
    source = _text(backup, "file_source", "backup_info.file_source", required=True)
    _check(rules.file_source_problem(source), "backup_info.file_source")
    files = backup.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
        raise _empty("backup_info.files")
    out: dict[str, Any] = {"file_source": source, "files": files}
    if source == "OBS":
        bucket = _text(backup, "bucket_name", "backup_info.bucket_name", required=True)
        _check(rules.bucket_name_problem(bucket), "backup_info.bucket_name")
        out["bucket_name"] = bucket
        for i, f in enumerate(files):
            _text(f, "name", f"backup_info.files[{i}].name", required=True)
            _text(f, "obs_path", f"backup_info.files[{i}].obs_path")  # "" is fine
    else:
        _text(target, "file_id", "target_db_info.file_id", required=True)
        for i, f in enumerate(files):
            _text(f, "rds_version", f"backup_info.files[{i}].rds_version", required=True)
            _text(
                f, "rds_source_instance_id", f"backup_info.files[{i}].rds_source_instance_id", required=True
            )
    return out


def _options(options: dict[str, Any], source: str) -> dict[str, Any]:
    rds = source == "RDS"
    mode = options.get("recovery_mode")
    if rds and mode in ("", None):
        mode = "full"
    if mode in (None, ""):
        raise _empty("options.recovery_mode")
    if not isinstance(mode, str):
        raise invalid_value("options.recovery_mode")
    _check(rules.recovery_mode_problem(mode), "options.recovery_mode")
    last = _flag(options, "is_last_backup", required=True, placeholder=True if rds else None)
    out: dict[str, Any] = {
        "recovery_mode": mode,
        "is_last_backup": last,
        "is_precheck": _flag(options, "is_precheck", required=True),
        "is_cover": bool(_flag(options, "is_cover", required=False)),
        "is_default_restore": _flag(options, "is_default_restore", required=False) is not False,
        "is_delete_backup_file": _flag(options, "is_delete_backup_file", required=False) is not False,
    }
    db_names = options.get("db_names") or []
    if not isinstance(db_names, list) or not all(isinstance(n, str) for n in db_names):
        raise invalid_value("options.db_names")
    named = [n for n in db_names if n]
    if not out["is_default_restore"] and not named:
        raise _empty("options.db_names")
    reset = options.get("reset_db_name_map") or {}
    if not isinstance(reset, dict):
        raise invalid_value("options.reset_db_name_map")
    # Entries without a new name (the RDS example's {"db": ""}) rename nothing.
    renames = {k: v for k, v in reset.items() if v}
    if renames:
        if list(renames) != [""]:
            raise invalid_value("options.reset_db_name_map", "The key must be an empty string.")
        if mode != "full" or last is not True or len(named) > 1:
            raise invalid_value(
                "options.reset_db_name_map",
                "Only one database, a full backup and the last backup can be renamed.",
            )
    out["db_names"] = db_names
    out["reset_db_name_map"] = renames
    consistency = options.get("consistency_check_mode")
    if consistency not in (None, "", "sync", "async"):
        raise invalid_value("options.consistency_check_mode")
    if consistency:
        out["consistency_check_mode"] = consistency
    return out


def validate_create(body: Any) -> CreateRequest:
    if not isinstance(body, dict):
        raise invalid_value("body")
    base = _base_info(_object(body, "base_info"))
    target = _object(body, "target_db_info")
    _text(target, "target_instance_id", "target_db_info.target_instance_id", required=True)
    backup = _backup_info(_object(body, "backup_info"), target)
    options = _options(_object(body, "options"), backup["file_source"])
    target_out = {
        "target_instance_id": target["target_instance_id"],
        "ms_file_stream_status": _text(
            target, "ms_file_stream_status", "target_db_info.ms_file_stream_status"
        ),
        "file_id": _text(target, "file_id", "target_db_info.file_id"),
    }
    return CreateRequest(base, target_out, backup, options)


def validate_update(body: Any) -> dict[str, str]:
    if not isinstance(body, dict):
        raise invalid_value("body")
    name = _text(body, "name", "name", required=True)
    _check(rules.task_name_problem(name), "name")
    description = _text(body, "description", "description")
    _check(rules.description_problem(description), "description")
    return {"name": name, **({"description": description} if "description" in body else {})}
