"""Every rule of the CreateBackupMigrationJob seed, refused before any call.

Each case starts from a valid settings block, breaks one rule and expects the key
path and message the plan error will show. Field rules come from the settings model
(pydantic), cross-field rules from ``Provider.check``; both are collected here the
way the core reports them.
"""

from __future__ import annotations

from typing import Any

import pytest
from batchmig.plugin import Instance
from pydantic import ValidationError

from batchmig_huaweicloud.provider import DrsProvider
from batchmig_huaweicloud.settings import DrsSettings

OBS_FULL: dict[str, Any] = {
    "target_instance_id": "0a3182607bc549bcb46cc9a8755761a6in04",
    "file_source": "OBS",
    "bucket_name": "zyy-obs",
    "files": [{"name": "db01_full.bak", "obs_path": "full/"}],
}
RDS_FULL: dict[str, Any] = {
    "target_instance_id": "0a3182607bc549bcb46cc9a8755761a6in04",
    "file_source": "RDS",
    "file_id": "0d87037d934848999fdc10bbabb08e6fbr04",
    "files": [{"rds_version": "2019_EE", "rds_source_instance_id": "7fb189b57339473a929d41dabb3878a2in04"}],
}


def problems(settings: dict[str, Any]) -> list[tuple[str, str]]:
    try:
        model = DrsSettings.model_validate(settings)
    except ValidationError as exc:
        return [(".".join(str(p) for p in err["loc"]), err["msg"]) for err in exc.errors()]
    instance = Instance(id="db01", provider="huawei-drs", connection="hw", settings=model, token="a1b2c3d4")
    return list(DrsProvider().check(instance))


def with_(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**base, **changes}


def assert_problem(settings: dict[str, Any], path: str, fragment: str) -> None:
    found = problems(settings)
    assert any(p == path and fragment in m for p, m in found), found


def test_the_valid_scenarios_have_no_problem() -> None:
    assert problems(OBS_FULL) == []
    assert problems(RDS_FULL) == []
    chain = with_(
        OBS_FULL, incrementals=[{"files": [{"name": "log1.bak"}]}, {"files": [{"name": "log2.bak"}]}]
    )
    assert problems(chain) == []


@pytest.mark.parametrize(
    ("name", "fragment"),
    [
        ("abc", "4 to 50 characters"),
        ("a" * 51, "4 to 50 characters"),
        ("1abc", "start with a letter"),
        ("_abc", "start with a letter"),
        ("ab c", "only letters, digits"),
        ("abc.d", "only letters, digits"),
        ("ab日本", "only letters, digits"),
    ],
)
def test_task_name_rule(name: str, fragment: str) -> None:
    assert_problem(with_(OBS_FULL, task_name=name), "task_name", fragment)


def test_task_name_rule_holds_for_chain_suffixes() -> None:
    chain = with_(OBS_FULL, task_name="a" * 48, incrementals=[{"files": [{"name": "log1.bak"}]}])
    assert_problem(chain, "task_name", "4 to 50 characters")
    assert problems(with_(OBS_FULL, task_name="Mig_db-01")) == []


def test_engine_must_be_sqlserver() -> None:
    assert_problem(with_(OBS_FULL, engine_type="mysql"), "engine_type", "must be 'sqlserver'")


@pytest.mark.parametrize(
    ("bucket", "fragment"),
    [
        ("ab", "3 to 63"),
        ("a" * 64, "3 to 63"),
        ("My-Bucket", "lowercase letters"),
        ("my_bucket", "lowercase letters"),
        ("-bucket", "start and end"),
        ("bucket.", "start and end"),
        ("192.168.1.10", "IP address"),
    ],
)
def test_bucket_name_rules(bucket: str, fragment: str) -> None:
    assert_problem(with_(OBS_FULL, bucket_name=bucket), "bucket_name", fragment)


def test_bucket_required_for_obs() -> None:
    settings = dict(OBS_FULL)
    del settings["bucket_name"]
    assert_problem(settings, "bucket_name", "required when file_source is OBS")


def test_obs_file_name_required() -> None:
    assert_problem(with_(OBS_FULL, files=[{"name": ""}]), "files.0.name", "required for OBS")
    assert_problem(with_(OBS_FULL, files=[]), "files", "at least one")


@pytest.mark.parametrize(
    ("tag", "path", "fragment"),
    [
        ({"key": "k" * 37, "value": "v"}, "tags.0.key", "1 to 36"),
        ({"key": "", "value": "v"}, "tags.0.key", "1 to 36"),
        ({"key": "bad key", "value": "v"}, "tags.0.key", "letters, digits, '_' and '-'"),
        ({"key": "team", "value": "a#b"}, "tags.0.value", "letters, digits, spaces"),
    ],
)
def test_tag_rules(tag: dict[str, str], path: str, fragment: str) -> None:
    assert_problem(with_(OBS_FULL, tags=[tag]), path, fragment)


def test_tag_value_allows_the_documented_characters_and_keys_are_unique() -> None:
    assert problems(with_(OBS_FULL, tags=[{"key": "owner_1-x", "value": "a b_c.d:e/f=g+h-i@j"}])) == []
    twice = [{"key": "team", "value": "a"}, {"key": "team", "value": "b"}]
    assert_problem(with_(OBS_FULL, tags=twice), "tags.1.key", "given twice")


def test_reset_db_name_map_key_must_be_empty_string() -> None:
    assert_problem(with_(OBS_FULL, reset_db_name_map={"old": "new"}), "reset_db_name_map", "empty string")


def test_reset_db_name_map_only_with_one_database() -> None:
    settings = with_(OBS_FULL, reset_db_name_map={"": "new"}, is_default_restore=False, db_names=["a", "b"])
    assert_problem(settings, "reset_db_name_map", "only one database")


def test_reset_db_name_map_only_with_a_full_backup() -> None:
    settings = with_(OBS_FULL, reset_db_name_map={"": "new"}, recovery_mode="incre")
    assert_problem(settings, "reset_db_name_map", "full backup")
    chain = with_(OBS_FULL, reset_db_name_map={"": "new"}, incrementals=[{"files": [{"name": "l.bak"}]}])
    assert_problem(chain, "reset_db_name_map", "full backup")


def test_reset_db_name_map_only_with_the_last_backup() -> None:
    settings = with_(OBS_FULL, reset_db_name_map={"": "new"}, is_last_backup=False)
    assert_problem(settings, "reset_db_name_map", "is_last_backup true")
    assert problems(with_(OBS_FULL, reset_db_name_map={"": "new"})) == []


@pytest.mark.parametrize(
    ("source", "fragment"), [("obs", "upper case: 'OBS'"), ("Rds", "upper case"), ("S3", "one of")]
)
def test_file_source_upper_case(source: str, fragment: str) -> None:
    assert_problem(with_(OBS_FULL, file_source=source), "file_source", fragment)


@pytest.mark.parametrize("mode", ["FULL", "incremental", "1", ""])
def test_recovery_mode_full_or_incre(mode: str) -> None:
    assert_problem(with_(OBS_FULL, recovery_mode=mode), "recovery_mode", "'full' or 'incre'")


@pytest.mark.parametrize(
    ("change", "path", "fragment"),
    [
        ({"file_id": None}, "file_id", "required when file_source is RDS"),
        ({"files": [{"rds_source_instance_id": "x"}]}, "files.0.rds_version", "required"),
        ({"files": [{"rds_version": "2019_EE"}]}, "files.0.rds_source_instance_id", "required"),
        ({"bucket_name": "zyy-obs"}, "bucket_name", "only used with file_source OBS"),
        ({"recovery_mode": "incre"}, "recovery_mode", "must be 'full'"),
        ({"incrementals": [{"files": [{"name": "l.bak"}]}]}, "incrementals", "need OBS"),
    ],
)
def test_rds_required_fields(change: dict[str, Any], path: str, fragment: str) -> None:
    assert_problem(with_(RDS_FULL, **change), path, fragment)


def test_required_target_and_no_unknown_keys() -> None:
    settings = dict(OBS_FULL)
    del settings["target_instance_id"]
    assert_problem(settings, "target_instance_id", "Field required")
    assert_problem(with_(OBS_FULL, bucket="x"), "bucket", "Extra inputs are not permitted")


def test_description_limit_and_db_names_when_not_restoring_all() -> None:
    assert_problem(with_(OBS_FULL, description="x" * 257), "description", "at most 256")
    assert_problem(with_(OBS_FULL, description="a<b"), "description", "must not contain")
    assert problems(with_(OBS_FULL, description="miao'shu")) == []
    assert_problem(with_(OBS_FULL, is_default_restore=False), "db_names", "name the databases")


def test_settings_schema_documents_every_field() -> None:
    schema = DrsSettings.model_json_schema()
    missing = [name for name, spec in schema["properties"].items() if not spec.get("description")]
    assert missing == []
    assert schema["additionalProperties"] is False
