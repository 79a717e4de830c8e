"""A hundred instances of both Tencent providers against the sandbox, with answers
dropped after the server acted: no throttle at the documented caps, no create or
start that took effect twice, every instance succeeded."""

from __future__ import annotations

from pathlib import Path

from batchmig.testing import SandboxConfig, make_registry, run_plan

from batchmig_tencentcloud import plugin

COS = "https://fleet-1250000000.cos.ap-guangzhou.myqcloud.com"


def fleet_plan(directory: Path, count: int) -> Path:
    lines = [
        "version: 1",
        "name: tencent-fleet",
        "providers:",
        "  tencent-sqlserver: {region: ap-guangzhou}",
        "  tencent-dts: {region: ap-guangzhou}",
        "run: {retry: {base_delay: 0.05, max_delay: 0.5}}",
        "defaults:",
        "  settings:",
        "    tencent-sqlserver: {scenario: import}",
        "    tencent-dts:",
        "      migrate_type: full",
        "      job:",
        "        source: {access_type: extranet, region: ap-guangzhou, ip: 203.0.113.9, port: 1433}",
        "        target: {region: ap-guangzhou, instance_id: mssql-fleet000}",
        "instances:",
    ]
    for n in range(count):
        if n % 2:
            lines.append(f"  - {{id: dts-{n:03d}, provider: tencent-dts}}")
        else:
            target = "mssql-" + f"{n:08d}".translate(str.maketrans("0123456789", "abcdefghij"))
            lines.append(f"  - {{id: sql-{n:03d}, provider: tencent-sqlserver, settings: {{instance_id: {target}, "
                         f"import: {{backup_file: '{COS}/db{n}.bak'}}}}}}")
    path = directory / "fleet.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_hundred_mixed_instances_with_dropped_answers(tmp_path: Path) -> None:
    faults = [{"kind": "drop", "mutating_only": True, "probability": 0.1}]
    result = run_plan(fleet_plan(tmp_path, 100), make_registry(plugin), tmp_path,
                      sandbox_config=SandboxConfig(time_scale=600, seed=11, faults=faults))
    assert set(result.statuses.values()) == {"succeeded"}, result.report["counts"]
    dropped = [e for e in result.audit if e.get("outcome") == "dropped"]
    assert len(dropped) >= 5, "the fault injection dropped too few answers to prove anything"
    assert result.duplicates() == {}
    assert not [e for e in result.audit if e.get("outcome") == "throttled"]
    assert result.report["calls"]["reconciled"] >= len(dropped) // 2
    polls = result.report["calls"]["calls_by_action"]["DescribeMigrateJobs"]
    assert polls < 50 * 3, "DTS jobs must be polled with list pages, not one call per job"
