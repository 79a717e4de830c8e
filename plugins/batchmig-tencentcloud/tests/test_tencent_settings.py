"""Settings models (pydantic) and the cross-field rules of Provider.check."""

from __future__ import annotations

from typing import Any

import pytest
from batchmig.plugin import Instance
from pydantic import ValidationError

from batchmig_tencentcloud.dts import DtsProvider, DtsSettings
from batchmig_tencentcloud.sqlserver import SqlServerProvider, SqlServerSettings


def sql_problems(settings: dict[str, Any]) -> list[tuple[str, str]]:
    model = SqlServerSettings.model_validate(settings)
    return list(SqlServerProvider().check(Instance("db", "tencent-sqlserver", "tc", model)))


def dts_problems(settings: dict[str, Any]) -> list[tuple[str, str]]:
    model = DtsSettings.model_validate(settings)
    return list(DtsProvider().check(Instance("db", "tencent-dts", "tc", model)))


BACKUP: dict[str, Any] = {"instance_id": "mssql-a", "scenario": "backup"}
IMPORT: dict[str, Any] = {
    "instance_id": "mssql-abcd1234",
    "scenario": "import",
    "import": {"backup_file": "https://b/x.bak"},
}


@pytest.mark.parametrize(
    "settings",
    [
        {"instance_id": "mssql-abcd1234"},  # no scenario
        {"instance_id": "i-abcd", "scenario": "backup"},  # not a SQL Server instance id
        {"instance_id": "mssql-abcd1234", "scenario": "backup", "bakup": {}},  # typo
        {"instance_id": "mssql-abcd1234", "scenario": "backup", "backup": {"name": "has space"}},
        {"instance_id": "mssql-abcd1234", "scenario": "backup", "backup": {"name": "x" * 61}},
        {**IMPORT, "import": {"backup_file": "https://b/x.bak", "recovery_type": "FULL_LOGS"}},
        {**IMPORT, "import": {"backup_file": "https://b/x.bak", "upload_type": "cos_url"}},
    ],
)
def test_sqlserver_model_rejects(settings):
    with pytest.raises(ValidationError):
        SqlServerSettings.model_validate(settings)


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({**BACKUP, "backup": {"strategy": "databases"}}, "backup.databases"),
        ({**BACKUP, "backup": {"databases": ["x"]}}, "backup.databases"),
        ({"instance_id": "mssql-a", "scenario": "import"}, "import"),
        ({**IMPORT, "scenario": "backup"}, "import"),
        ({**IMPORT, "import": {"backup_file": "x.bak"}}, "import.backup_file"),
        (
            {**IMPORT, "import": {"backup_file": "https://b/x.bak", "upload_type": "COS_UPLOAD"}},
            "import.backup_file",
        ),
        ({**IMPORT, "import": {"backup_file": "https://b/x.bak", "recovery_type": "FULL_LOG"}},
         "import.incremental_files"),
        ({**IMPORT, "import": {"backup_file": "https://b/x.bak", "incremental_files": ["https://b/l.trn"]}},
         "import.incremental_files"),
        ({**IMPORT, "import": {"backup_file": "https://b/x.bak", "recovery_type": "FULL_DIFF",
                               "incremental_files": ["https://b/x.bak"]}}, "import.incremental_files.0"),
        ({**IMPORT, "import": {"backup_file": "https://b/x.bak", "rename": {"a": "c", "b": "c"}}},
         "import.rename"),
    ],
)  # fmt: skip
def test_sqlserver_check(settings, path):
    assert path in [found for found, _ in sql_problems(settings)]


def test_sqlserver_valid_settings_have_no_problems():
    assert sql_problems(IMPORT) == []
    assert sql_problems({"instance_id": "mssql-a", "scenario": "backup"}) == []


def test_import_is_spelled_import_in_the_schema():
    schema = SqlServerSettings.model_json_schema(by_alias=True)
    assert "import" in schema["properties"] and "import_" not in schema["properties"]
    assert schema["additionalProperties"] is False
    assert all(prop.get("description") for prop in schema["properties"].values())


SOURCE: dict[str, Any] = {
    "access_type": "extranet",
    "region": "ap-guangzhou",
    "ip": "203.0.113.1",
    "port": 1433,
}
TARGET: dict[str, Any] = {"region": "ap-guangzhou", "instance_id": "mssql-abcd1234"}


@pytest.mark.parametrize(
    ("settings", "path"),
    [
        ({"migrate_type": "full"}, "job_id"),
        ({"migrate_type": "full", "job_id": "dts-1", "job": {"source": SOURCE, "target": TARGET}}, "job_id"),
        ({"migrate_type": "full", "job_id": "dts-1", "complete_mode": "immediately"}, "complete_mode"),
        ({"migrate_type": "full", "job": {"source": SOURCE, "target": TARGET, "migrate_object": "databases"}},
         "job.databases"),
        ({"migrate_type": "full", "job": {"source": {**SOURCE, "ip": None}, "target": TARGET}},
         "job.source.ip"),
        ({"migrate_type": "full", "job": {"source": {"access_type": "cdb", "region": "ap-guangzhou"},
                                          "target": TARGET}}, "job.source.instance_id"),
        ({"migrate_type": "full",
          "job": {"source": {**SOURCE, "password_env": "A", "password_credential": "b"}, "target": TARGET}},
         "job.source.password_env"),
    ],
)  # fmt: skip
def test_dts_check(settings, path):
    assert path in [found for found, _ in dts_problems(settings)]


def test_dts_model_rejects_plain_passwords():
    with pytest.raises(ValidationError):
        DtsSettings.model_validate(
            {"migrate_type": "full", "job": {"source": {**SOURCE, "password": "x"}, "target": TARGET}}
        )
    assert dts_problems({"migrate_type": "full-incremental", "job_id": "dts-1kl0iy0v"}) == []
