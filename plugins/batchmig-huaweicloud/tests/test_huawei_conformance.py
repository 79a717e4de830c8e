"""The core's provider conformance suite, run against the huawei-drs emulator."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, ClassVar

from batchmig.testing.conformance import ProviderConformance


class TestHuaweiDrsConformance(ProviderConformance):
    idempotent_steps = False  # none of the calls used takes a client token: creates are reconciled by name
    provider = "huawei-drs"
    region = "cn-north-4"
    samples: ClassVar[list[dict[str, Any]]] = [
        {
            "target_instance_id": "obs-full",
            "bucket_name": "conformance-bak",
            "files": [{"name": "db01_full.bak", "obs_path": "full/"}],
        },
        {
            "target_instance_id": "obs-chain",
            "bucket_name": "conformance-bak",
            "files": [{"name": "db02_full.bak", "obs_path": "full/"}],
            "incrementals": [{"files": [{"name": "db02_log1.bak", "obs_path": "logs/"}]}],
        },
        {
            "target_instance_id": "rds-full",
            "file_source": "RDS",
            "file_id": "0d87037d934848999fdc10bbabb08e6fbr04",
            "files": [
                {"rds_version": "2019_EE", "rds_source_instance_id": "7fb189b57339473a929d41dabb3878a2in04"}
            ],
        },
    ]

    def write_plan(
        self, directory: Path, copies: int = 1, rate_limits: dict[str, float] | None = None, cutover: str = "auto"
    ) -> Path:
        # DRS refuses two restores of one database into one target at once (and a
        # second full restore without is_cover), so every copy gets its own target.
        path = super().write_plan(directory, copies, rate_limits, cutover)
        plan = json.loads(path.read_text(encoding="utf-8"))
        for instance in plan["instances"]:
            settings = instance["settings"]
            settings["target_instance_id"] = f"{settings['target_instance_id']}-{instance['id']}"
        path.write_text(json.dumps(plan, indent=2), encoding="utf-8")
        return path

    def test_a_hundred_instances_at_the_default_caps(self, tmp_path: Path) -> None:
        plan = self.write_plan(tmp_path, copies=34)  # 102 instances, 136 DRS jobs
        drops = [{"kind": "drop", "mutating_only": True, "probability": 0.1}]
        result = self.run(tmp_path, plan, faults=drops, seed=11)
        assert len(result.statuses) == 102
        assert set(result.statuses.values()) == {"succeeded"}, result.report["instances"]
        assert [e for e in result.audit if e.get("outcome") == "throttled"] == []
        assert result.duplicates() == {}
        assert [e for e in result.audit if e.get("outcome") == "dropped"]
        caps = {"CreateReplicationJob": 10, "ListReplicationJobs": 20, "ShowReplicationJob": 20}
        for (_, _, action), peak in result.max_per_second().items():
            assert peak <= caps.get(action, 20), (action, peak)
        creates = [e for e in result.audit if e.get("action") == "CreateReplicationJob" and e.get("changed")]
        assert len(creates) == 136

    def test_an_empty_list_answer_is_not_read_as_no_jobs(self, tmp_path: Path) -> None:
        """A create's answer is lost; the lists that reconcile it answer 200 with an empty body."""
        faults = [
            {"kind": "drop", "action": "CreateReplicationJob", "count": 1, "name": "lost"},
            {"kind": "truncate", "keep_bytes": 0, "action": "ListReplicationJobs", "count": 2, "after": "lost"},
        ]
        result = self.run(tmp_path, self.write_plan(tmp_path), faults=faults)
        assert [e["action"] for e in result.audit if "truncated_to" in e] == ["ListReplicationJobs"] * 2
        assert set(result.statuses.values()) == {"succeeded"}, result.report["instances"]
        assert result.duplicates() == {}, "an empty list was read as 'no job', and the job created again"
