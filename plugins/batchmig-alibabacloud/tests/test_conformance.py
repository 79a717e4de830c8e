"""batchmig's provider conformance suite, at full strictness, against the emulator."""

from __future__ import annotations

from typing import Any, ClassVar

from batchmig.testing.conformance import ProviderConformance, Strictness


class TestAlibabacloudConformance(ProviderConformance):
    provider = "alibabacloud"
    region = "eu-1"
    strictness = Strictness.FULL
    samples: ClassVar[list[dict[str, Any]]] = [
        {"database": "sales", "backup_url": "https://backups.example/sales.bak"},
        {"database": "hr", "backup_url": "https://backups.example/hr.bak", "overwrite": True},
    ]
