"""batchmig's provider conformance suite, run against the Tencent emulators."""

from __future__ import annotations

from typing import Any, ClassVar

from batchmig.testing.conformance import ProviderConformance

COS = "https://migration-1250000000.cos.ap-guangzhou.myqcloud.com"


class TestSqlServerConformance(ProviderConformance):
    idempotent_steps = False  # none of the calls used takes a client token: creates are reconciled by name
    provider = "tencent-sqlserver"
    region = "ap-guangzhou"
    samples: ClassVar[list[dict[str, Any]]] = [
        {"instance_id": "mssql-conform1", "scenario": "backup"},
        {
            "instance_id": "mssql-conform1",
            "scenario": "import",
            "import": {"backup_file": f"{COS}/sales.bak"},
        },
        {
            "instance_id": "mssql-conform2",
            "scenario": "backup-then-import",
            "backup": {"strategy": "databases", "databases": ["hr"]},
            "import": {
                "recovery_type": "FULL_LOG",
                "upload_type": "COS_UPLOAD",
                "backup_file": "hr_full.bak",
                "incremental_files": ["hr_log1.trn", "hr_log2.trn"],
                "rename": {"hr": "hr_cloud"},
            },
        },
    ]


class TestDtsConformance(ProviderConformance):
    idempotent_steps = False  # none of the calls used takes a client token: creates are reconciled by name
    provider = "tencent-dts"
    region = "ap-guangzhou"
    samples: ClassVar[list[dict[str, Any]]] = [
        {
            "migrate_type": "full-incremental",
            "job": {
                "source": {
                    "access_type": "extranet",
                    "region": "ap-guangzhou",
                    "ip": "203.0.113.7",
                    "port": 1433,
                },
                "target": {"region": "ap-guangzhou", "instance_id": "mssql-conform3"},
            },
        },
        {
            "migrate_type": "full",
            "job": {
                "migrate_object": "databases",
                "databases": [{"name": "sales"}],
                "source": {"access_type": "cdb", "region": "ap-shanghai", "instance_id": "mssql-source01"},
                "target": {"region": "ap-guangzhou", "instance_id": "mssql-conform3"},
            },
        },
    ]
