"""The mixed fleet of the rate-bound benchmark: a quarter each of Tencent SQL Server FULL
imports, Tencent DTS jobs, Huawei DRS OBS full migrations and Alibaba RDS one-shot FULL
migrations from OSS, each into its own target.

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
    "alibaba-rds-sqlserver": {"restore_seconds": 660},
}
WAIT_WORK = {"wait-import": 600.0, "wait-check": 60.0, "wait-migration": 900.0, "wait-full": 660.0,
             "survey-tasks": 0.0}
"""Cloud seconds of the work each wait step waits for (Huawei's job: precheck, then restore;
Alibaba's FULL task is given the same 660 s; its survey of earlier tasks is a list call)."""

HEADER = """\
version: 1
name: bench-fleet
providers:
  tencent-sqlserver: {region: ap-guangzhou}
  tencent-dts:
    region: ap-guangzhou
  huawei-drs: {region: cn-north-4}
  alibaba-rds-sqlserver: {region: cn-hangzhou}
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


def write_fleet_plan(path: Path, instances: int, *, rate: float | None = None, kinds: int = 4,
                     run: str | None = None) -> Path:
    """``instances`` of the mixed fleet (``kinds=1``: Tencent imports only); ``rate``
    overrides every cap of every provider (the engine-overhead runs); ``run`` is the
    plan's ``run:`` settings as flow YAML (``{poll_interval: 0.05}``)."""
    header = HEADER.rstrip("\n")
    if run is not None:
        header = header.replace("\ninstances:", f"\nrun: {run}\ninstances:")
    if rate is not None:
        caps = f"rate_limits: {{'*': {rate}}}"
        header = header.replace("{region: ap-guangzhou}", f"{{region: ap-guangzhou, {caps}}}")
        header = header.replace("    region: ap-guangzhou\n", f"    region: ap-guangzhou\n    {caps}\n")
        header = header.replace("{region: cn-north-4}", f"{{region: cn-north-4, {caps}}}")
        header = header.replace("{region: cn-hangzhou}", f"{{region: cn-hangzhou, {caps}}}")
    lines = [header]
    for n in range(instances):
        kind = n % kinds
        if kind == 0:
            lines.append(f"  - {{id: sql-{n:05d}, provider: tencent-sqlserver, settings: {{instance_id: "
                         f"{_tencent_instance(n)}, import: {{backup_file: 'https://b-1250000000.cos.ap-guangzhou."
                         f"myqcloud.com/db{n}/full.bak'}}}}}}")
        elif kind == 1:
            lines.append(f"  - {{id: dts-{n:05d}, provider: tencent-dts}}")
        elif kind == 2:
            lines.append(f"  - {{id: drs-{n:05d}, provider: huawei-drs, settings: {{target_instance_id: "
                         f"{n:032x}in04, files: [{{name: db{n}_full.bak, obs_path: full/}}]}}}}")
        else:  # ten databases per RDS instance
            lines.append(f"  - {{id: rds-{n:05d}, provider: alibaba-rds-sqlserver, settings: {{instance_id: "
                         f"rm-b{n // 40:07d}, database: db{n:05d}, full: {{oss_object: "
                         f"'oss-cn-hangzhou.aliyuncs.com:bench-backups:db{n}/full.bak'}}}}}}")
    path.write_text("\n".join(lines) + "\n")
    return path


def imports_of(instances: int) -> list[tuple[str, str, str]]:
    """(target instance, backup URL, import name) of the Tencent imports among the first ``instances``."""
    bucket = "https://b-1250000000.cos.ap-guangzhou.myqcloud.com"
    return [(_tencent_instance(n), f"{bucket}/db{n}/full.bak", f"peer-{n:05d}") for n in range(instances)]
