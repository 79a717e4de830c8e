"""Generate the mixed fleets the campaigns run, in the shapes of the plan templates.

Why generated and not a checked-in file: the crash campaign needs 200 instances in
CI and more in soak mode, and every instance must touch a different cloud resource
(two Huawei DRS jobs on one target database fail each other's precheck; two imports
into one Tencent instance queue). The shapes follow ``plans/*.yaml``: Tencent
cold-backup imports (FULL and FULL_LOG with incrementals), Tencent DTS jobs created
by batchmig (full and full-incremental, with a cutover), Huawei DRS OBS full
restores, OBS chains (full + incrementals) and RDS full-backup restores, and Tencent
manual backups (CreateBackup). ``WITH_ALIBABA`` adds Alibaba Cloud RDS migrations from
OSS (one-shot FULL, and FULL + two log files + CreateOnlineDatabaseTask); campaigns
opt in with ``kinds=WITH_ALIBABA``.
"""

from __future__ import annotations

from collections import Counter

import yaml

#: The kinds of instance, in the order they are dealt out round-robin.
KINDS = ("tc-full", "tc-full-log", "dts-full", "dts-incremental", "drs-obs", "drs-chain", "drs-rds", "tc-backup")
WITH_ALIBABA = (*KINDS, "rds-oss", "rds-chain")

PROVIDERS = {
    "tencent-sqlserver": {
        "region": "ap-guangzhou",
        "credentials": {"secret_id": "${env:TENCENTCLOUD_SECRET_ID}", "secret_key": "${env:TENCENTCLOUD_SECRET_KEY}"},
    },
    "tencent-dts": {
        "region": "ap-guangzhou",
        "credentials": {"secret_id": "${env:TENCENTCLOUD_SECRET_ID}", "secret_key": "${env:TENCENTCLOUD_SECRET_KEY}"},
    },
    "huawei-drs": {
        "region": "cn-north-4",
        "credentials": {"ak": "${env:HUAWEICLOUD_SDK_AK}", "sk": "${env:HUAWEICLOUD_SDK_SK}",
                        "project_id": "${env:HUAWEICLOUD_SDK_PROJECT_ID}"},
    },
}
ALIBABA = {
    "region": "cn-hangzhou",
    "credentials": {"access_key_id": "${env:ALIBABA_CLOUD_ACCESS_KEY_ID}",
                    "access_key_secret": "${env:ALIBABA_CLOUD_ACCESS_KEY_SECRET}"},
}
OSS = "oss-cn-hangzhou.aliyuncs.com:campaign-backups"

DTS_JOB = {
    "source": {"access_type": "extranet", "region": "ap-guangzhou", "ip": "203.0.113.25", "port": 1433,
               "user": "dts_reader", "password_credential": "source_password"},
    "target": {"region": "ap-guangzhou", "instance_id": "mssql-4fb2l6tr", "user": "dts_writer",
               "password_credential": "target_password"},
}


def tencent_id(number: int) -> str:
    """A sandbox-valid Tencent SQL Server instance id: ``mssql-`` + 8 lowercase letters/digits."""
    return f"mssql-c{number:07d}"


def huawei_id(number: int, suffix: str = "in04", tag: int = 0xC) -> str:
    """A Huawei RDS id: 32 hex digits + ``in04`` (instances) or ``br04`` (backups)."""
    return f"{tag:x}{number:031x}{suffix}"


def instance(kind: str, number: int) -> dict:
    iid = f"{kind}-{number:04d}"
    if kind == "tc-full":
        return {"id": iid, "provider": "tencent-sqlserver", "settings": {
            "instance_id": tencent_id(number),
            "import": {"backup_file": f"https://demo-1250000000.cos.ap-guangzhou.myqcloud.com/{iid}/full.bak"}}}
    if kind == "tc-full-log":
        return {"id": iid, "provider": "tencent-sqlserver", "settings": {
            "instance_id": tencent_id(number),
            "import": {"recovery_type": "FULL_LOG", "upload_type": "COS_UPLOAD", "backup_file": f"{iid}_full.bak",
                       "incremental_files": [f"{iid}_log_1.trn", f"{iid}_log_final.trn"]}}}
    if kind == "tc-backup":
        return {"id": iid, "provider": "tencent-sqlserver", "settings": {
            "instance_id": tencent_id(number), "scenario": "backup"}}
    if kind in ("dts-full", "dts-incremental"):
        migrate = "full" if kind == "dts-full" else "full-incremental"
        return {"id": iid, "provider": "tencent-dts", "settings": {"migrate_type": migrate}}
    if kind == "drs-obs":
        return {"id": iid, "provider": "huawei-drs", "settings": {
            "target_instance_id": huawei_id(number), "files": [{"name": f"{iid}_full.bak", "obs_path": "full/"}]}}
    if kind == "drs-chain":
        return {"id": iid, "provider": "huawei-drs", "settings": {
            "target_instance_id": huawei_id(number),
            "files": [{"name": f"{iid}_full.bak", "obs_path": "chain/"}],
            "incrementals": [{"files": [{"name": f"{iid}_log_1.trn", "obs_path": "chain/"}]},
                             {"files": [{"name": f"{iid}_log_final.trn", "obs_path": "chain/"}]}]}}
    if kind == "drs-rds":
        return {"id": iid, "provider": "huawei-drs", "settings": {
            "file_source": "RDS", "bucket_name": None, "target_instance_id": huawei_id(number),
            "file_id": huawei_id(number, "br04", 0xE),
            "files": [{"rds_version": "2019_EE", "rds_source_instance_id": huawei_id(number, tag=0xF)}]}}
    if kind in ("rds-oss", "rds-chain"):
        # One database per instance; ten databases share an RDS instance, as on a real one.
        settings = {"instance_id": f"rm-c{number // 10:07d}", "database": f"db{number:05d}",
                    "full": {"oss_object": f"{OSS}:{iid}/full.bak"}}
        if kind == "rds-chain":
            settings |= {"mode": "chain", "logs": [{"oss_object": f"{OSS}:{iid}/log_{n}.trn"} for n in (1, 2)]}
        return {"id": iid, "provider": "alibaba-rds-sqlserver", "settings": settings}
    raise ValueError(kind)


def fleet_plan(count: int, *, name: str = "campaign-fleet", run: dict | None = None,
               max_concurrency: int = 200, kinds: tuple[str, ...] = KINDS) -> str:
    """A plan of ``count`` instances dealt round-robin over ``kinds``, as YAML text."""
    providers = dict(PROVIDERS)
    if any(kind.startswith("rds-") for kind in kinds):
        providers["alibaba-rds-sqlserver"] = ALIBABA
    document = {
        "version": 1,
        "name": name,
        "providers": providers,
        "defaults": {
            "wave": "main",
            "timeouts": {"default": "2h", "wait-*": "12h"},
            "settings": {
                "tencent-sqlserver": {"scenario": "import"},
                "tencent-dts": {"migrate_type": "full", "job": DTS_JOB},
                "huawei-drs": {"file_source": "OBS", "bucket_name": "campaign-backups", "is_precheck": True},
            },
        },
        "waves": [{"name": "main", "max_concurrency": max_concurrency}],
        "run": run or {},
        "instances": [instance(kinds[n % len(kinds)], n) for n in range(count)],
    }
    return yaml.safe_dump(document, sort_keys=False)


def kinds_of(count: int, kinds: tuple[str, ...] = KINDS) -> Counter[str]:
    return Counter(kinds[n % len(kinds)] for n in range(count))
