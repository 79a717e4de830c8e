"""The mixed fleet of the rate-bound benchmark: a third each of Tencent SQL Server FULL
imports, Tencent DTS jobs and Huawei DRS OBS full migrations, each into its own target.

The emulated work is scaled down (``TIME_SCALE``) so that the rate caps, not the
emulated restores, bound the run; ``SANDBOX_OPTIONS`` pins the emulators' durations so
the critical path of emulated work (``EMULATED_WORK_SECONDS``, in cloud seconds) is
known when the lower bound is computed.
"""

from __future__ import annotations

from pathlib import Path

TIME_SCALE = 600.0
SANDBOX_OPTIONS = {
    "tencent-sqlserver": {"import_seconds": 600},
    "tencent-dts": {"check_seconds": 60, "migrate_seconds": 900},
    "huawei-drs": {"precheck_seconds": 60, "full_restore_seconds": 600},
}
EMULATED_WORK_SECONDS = 960.0  # the longest chain: a DTS check (60) and migration (900)

HEADER = """\
version: 1
name: bench-fleet
providers:
  tencent-sqlserver: {region: ap-guangzhou}
  tencent-dts:
    region: ap-guangzhou
  huawei-drs: {region: cn-north-4}
defaults:
  settings:
    tencent-sqlserver: {scenario: import}
    tencent-dts:
      migrate_type: full
      job:
        source: {access_type: extranet, region: ap-guangzhou, ip: 203.0.113.25, port: 1433, user: r,
                 password_credential: source_password}
        target: {region: ap-guangzhou, instance_id: mssql-4fb2l6tr, user: w, password_credential: target_password}
    huawei-drs: {file_source: OBS, bucket_name: bench-backups, is_precheck: true}
instances:
"""


def _tencent_instance(n: int) -> str:
    digits = f"{n:08d}".translate(str.maketrans("0123456789", "abcdefghij"))
    return f"mssql-{digits}"


def write_fleet_plan(path: Path, instances: int) -> Path:
    lines = [HEADER.rstrip("\n")]
    for n in range(instances):
        kind = n % 3
        if kind == 0:
            lines.append(f"  - {{id: sql-{n:05d}, provider: tencent-sqlserver, settings: {{instance_id: "
                         f"{_tencent_instance(n)}, import: {{backup_file: 'https://b-1250000000.cos.ap-guangzhou."
                         f"myqcloud.com/db{n}/full.bak'}}}}}}")
        elif kind == 1:
            lines.append(f"  - {{id: dts-{n:05d}, provider: tencent-dts}}")
        else:
            lines.append(f"  - {{id: drs-{n:05d}, provider: huawei-drs, settings: {{target_instance_id: "
                         f"{n:032x}in04, files: [{{name: db{n}_full.bak, obs_path: full/}}]}}}}")
    path.write_text("\n".join(lines) + "\n")
    return path
