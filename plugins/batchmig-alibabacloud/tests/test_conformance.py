"""batchmig's provider conformance suite, at full strictness, against the emulator."""

from __future__ import annotations

from typing import Any, ClassVar

from batchmig.testing.conformance import ProviderConformance, Strictness

OSS = "oss-cn-hangzhou.aliyuncs.com:bm-backups"


class TestAlibabaRdsConformance(ProviderConformance):
    provider = "alibaba-rds-sqlserver"
    region = "cn-hangzhou"
    strictness = Strictness.FULL
    samples: ClassVar[list[dict[str, Any]]] = [
        # One-shot: a FULL task that brings the database online.
        {"instance_id": "rm-conf0001", "database": "sales", "full": {"oss_object": f"{OSS}:sales/sales_full.bak"}},
        # A chain: FULL, a log file, then CreateOnlineDatabaseTask as the cutover.
        {"instance_id": "rm-conf0001", "database": "hr", "mode": "chain",
         "full": {"oss_object": f"{OSS}:hr/hr_full.bak"}, "logs": [{"oss_object": f"{OSS}:hr/hr_log1.trn"}]},
    ]
    # SQL Server 2008 R2 (files by OSSUrls) runs in the templates' rehearsal and the SDK test.

    def copy_sample(self, settings: dict[str, Any], copy: int) -> dict[str, Any]:
        # One database is migrated once (the plan refuses two): each copy restores its own.
        return {**settings, "database": f"{settings['database']}_{copy}"}
