"""SQL Server instances as DescribeDBInstances shows them, and its filters.

The sandbox's instances exist on first use (see ``sqlserver``), so it knows only an
instance's id, region, creation time and current status. Everything else the API
reports (network, billing, backup policy, topology) is derived from the id: stable
across calls and sandbox restarts, different for each instance, and consistent
with itself. Every instance is the same kind: a two-node mirroring HA instance of
SQL Server 2019 Enterprise on cloud SSD, pay-as-you-go, in a VPC, with daily
packaged backups kept 7 days, a sandbox tag, no read-only or publish/subscribe
role, no public address, never isolated and without cross-region backup.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

__all__ = ["SANDBOX_TAG", "instance_view", "matches"]

SANDBOX_TAG = {"TagKey": "batchmig-sandbox", "TagValue": "emulated"}
# region: (RegionId, ZoneId of its zone 0, its name in Chinese as zone names show it)
_REGIONS = {
    "ap-guangzhou": (1, 100000, "广州"), "ap-shanghai": (4, 200000, "上海"),
    "ap-hongkong": (5, 300000, "中国香港"), "ap-shanghai-fsi": (7, 700000, "上海金融"),
    "ap-beijing": (8, 800000, "北京"), "ap-singapore": (9, 900000, "新加坡"),
    "ap-shenzhen-fsi": (11, 110000, "深圳金融"), "na-siliconvalley": (15, 150000, "硅谷"),
    "ap-chengdu": (16, 160000, "成都"), "eu-frankfurt": (17, 170000, "法兰克福"),
    "ap-seoul": (18, 180000, "首尔"), "ap-chongqing": (19, 190000, "重庆"),
    "na-ashburn": (22, 220000, "弗吉尼亚"), "ap-bangkok": (23, 230000, "曼谷"),
    "ap-tokyo": (25, 250000, "东京"), "ap-nanjing": (33, 330000, "南京"),
    "ap-jakarta": (72, 720000, "雅加达"), "sa-saopaulo": (74, 740000, "圣保罗"),
}  # fmt: skip
_ZONE = 1
_CHINESE_DIGITS = "零一二三四五六七八九"
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


def _digest(instance_id: str) -> int:
    return int(hashlib.sha256(instance_id.encode()).hexdigest()[:16], 16)


def _short_id(prefix: str, number: int) -> str:
    """``vpc-`` + 8 lower-case letters and digits, as Tencent's resource ids look."""
    return prefix + "".join(_ALPHABET[number // 36**i % 36] for i in range(8))


def instance_view(record: Mapping[str, Any], status: int, created: str) -> dict[str, Any]:
    """One ``DBInstance``: ``status`` is computed by the caller, ``created`` is its
    creation time as the API prints it."""
    instance_id, region = record["InstanceId"], record["Region"]
    region_id, zone_base, region_name = _REGIONS.get(region, (0, 0, region))
    digest = _digest(instance_id)
    zone = f"{region}-{_ZONE}"
    zone_name = f"{region_name}{_CHINESE_DIGITS[_ZONE]}区"
    vpc, subnet = 1000 + digest % 9000, 10000 + digest // 9000 % 90000
    vip = f"10.{digest % 200 + 1}.{digest // 200 % 250 + 1}.{digest // 50000 % 250 + 2}"
    unset = "0000-00-00 00:00:00"
    return {
        "InstanceId": instance_id, "Name": instance_id, "ProjectId": 0, "RegionId": region_id,
        "ZoneId": zone_base + _ZONE, "VpcId": vpc, "SubnetId": subnet, "Status": status,
        "Vip": vip, "Vport": 1433, "CreateTime": created, "UpdateTime": created, "StartTime": created,
        "EndTime": unset, "IsolateTime": unset, "Memory": 8, "UsedStorage": 10, "Storage": 200,
        "VersionName": "SQL Server 2019 Enterprise", "RenewFlag": 0, "Model": 1, "Region": region,
        "Zone": zone, "BackupTime": "00:00-06:00", "PayMode": 0,
        "Uid": f"gamedb.{region}.{digest % 100000:05d}.sqlserver", "Cpu": 4, "Version": "2019",
        "Type": "CLOUD_SSD", "Pid": 1001, "UniqVpcId": _short_id("vpc-", digest),
        "UniqSubnetId": _short_id("subnet-", digest // 36**8), "IsolateOperator": "", "SubFlag": "",
        "ROFlag": "", "HAFlag": "MIRROR", "ResourceTags": [dict(SANDBOX_TAG)], "BackupModel": "master_pkg",
        "InstanceNote": "", "BackupCycle": [1, 2, 3, 4, 5, 6, 7], "BackupCycleType": "daily",
        "BackupSaveDays": 7, "InstanceType": "HA", "CrossRegions": [], "CrossBackupEnabled": "disable",
        "CrossBackupSaveDays": 7, "DnsPodDomain": "", "TgwWanVPort": 0, "Collation": "Chinese_PRC_CI_AS",
        "TimeZone": "China Standard Time", "IsDrZone": False,
        "SlaveZones": {"SlaveZone": zone, "SlaveZoneName": zone_name, "DrInstanceId": ""},
        "Architecture": "DOUBLE", "Style": "EXCLUSIVE", "MultiSlaveZones": [], "ThroughputPerformance": 0,
    }  # fmt: skip


# DescribeDBInstances filter -> the field it matches; lists match any of their items.
_EXACT = {"ProjectId": "ProjectId", "Status": "Status", "PayMode": "PayMode", "VpcId": "UniqVpcId",
          "SubnetId": "UniqSubnetId", "Zone": "Zone", "InstanceType": "InstanceType"}  # fmt: skip
_ANY_OF = {"InstanceIdSet": "InstanceId", "VipSet": "Vip", "VersionSet": "Version", "UidSet": "Uid"}


def matches(view: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """Whether an instance passes every filter of a DescribeDBInstances request."""
    if any(name in params and view[field] != params[name] for name, field in _EXACT.items()):
        return False
    if any(params.get(name) and view[field] not in params[name] for name, field in _ANY_OF.items()):
        return False
    names = params.get("InstanceNameSet")
    if names and not any(name in view["Name"] for name in names):
        return False
    tag_keys = params.get("TagKeys")
    if tag_keys and not {tag["TagKey"] for tag in view["ResourceTags"]} & set(tag_keys):
        return False
    search = params.get("SearchKey")
    return not search or any(search in view[field] for field in ("InstanceId", "Name", "Vip"))
