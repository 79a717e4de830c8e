"""The script users write today: Tencent's official Python SDK in a thread pool.

This is the peer of the side-by-side benchmark, written the way a DBA would write it
without batchmig: one ``SqlserverClient`` per worker thread, each worker takes an
instance, creates its cold-backup import, starts it, then asks about it every
``poll_seconds`` until it ends. Nothing here knows the caps; what differs between the
settings is what a DBA tunes:

``standard``
    The SDK's ``StandardRetryer()`` as documented (3 attempts, 1 s then 2 s apart,
    no jitter, on throttles and network errors), 20 threads (one per request the cap
    allows each second), and a throttle that survives the retryer makes the script
    wait a second and try again — a migration is not abandoned for a throttle.
``hammer``
    No retryer, 128 threads, and a throttled call is sent again at once: the setting
    that comes closest by brute force.

The poll interval is the same cloud time for both (30 s, divided by the sandbox's
time scale), like ``watch -n 30``; the work and the fleet are the benchmark's.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.common.retry import StandardRetryer
from tencentcloud.sqlserver.v20180328 import models, sqlserver_client

THROTTLE_CODES = ("RequestLimitExceeded", "RequestLimitExceeded.UinLimitExceeded",
                  "RequestLimitExceeded.GlobalRegionUinLimitExceeded")
POLL_CLOUD_SECONDS = 30.0


@dataclass(frozen=True)
class PeerSetting:
    name: str
    threads: int
    retryer: bool
    pause_after_throttle: float


SETTINGS = {
    "standard": PeerSetting("standard", threads=20, retryer=True, pause_after_throttle=1.0),
    "hammer": PeerSetting("hammer", threads=128, retryer=False, pause_after_throttle=0.0),
}


@dataclass(frozen=True)
class Import:
    """One line of the DBA's inventory: the target instance and its backup file."""

    instance_id: str
    backup_url: str
    name: str


def run_peer(setting: PeerSetting, endpoint: str, secret: tuple[str, str], region: str,
             imports: Sequence[Import], time_scale: float) -> dict[str, Any]:
    """Migrate ``imports``; returns wall seconds, failures and the script's own retries."""
    local = threading.local()
    retries = [0]
    lock = threading.Lock()
    poll_seconds = POLL_CLOUD_SECONDS / time_scale

    def client() -> sqlserver_client.SqlserverClient:
        if not hasattr(local, "client"):
            http = HttpProfile(endpoint=urlsplit(endpoint).netloc, protocol="http")
            profile = ClientProfile(httpProfile=http, retryer=StandardRetryer() if setting.retryer else None)
            local.client = sqlserver_client.SqlserverClient(credential.Credential(*secret), region, profile)
        return local.client

    def call(action: str, fields: Mapping[str, Any]) -> Any:
        request = getattr(models, f"{action}Request")()
        request.from_json_string(json.dumps(fields))
        while True:
            try:
                return getattr(client(), action)(request)
            except TencentCloudSDKException as exc:
                if exc.get_code() not in THROTTLE_CODES:
                    raise
                with lock:
                    retries[0] += 1
                if setting.pause_after_throttle:
                    time.sleep(setting.pause_after_throttle)

    def migrate(item: Import) -> bool:
        created = call("CreateBackupMigration", {
            "InstanceId": item.instance_id, "RecoveryType": "FULL", "UploadType": "COS_URL",
            "MigrationName": item.name, "BackupFiles": [item.backup_url]})
        migration = created.BackupMigrationId
        call("StartBackupMigration", {"InstanceId": item.instance_id, "BackupMigrationId": migration})
        while True:
            time.sleep(poll_seconds)
            answer = call("DescribeBackupMigration", {"InstanceId": item.instance_id,
                                                      "BackupMigrationId": migration})
            status = answer.BackupMigrationSet[0].Status if answer.BackupMigrationSet else None
            if status in (9, 10):
                return status == 9

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=setting.threads) as pool:
        outcomes = list(pool.map(_guarded(migrate), imports))
    return {"setting": setting.name, "threads": setting.threads, "retryer": setting.retryer,
            "makespan_seconds": round(time.monotonic() - started, 2),
            "succeeded": sum(1 for ok in outcomes if ok), "failed": sum(1 for ok in outcomes if not ok),
            "script_retries": retries[0]}


def _guarded(migrate: Callable[[Import], bool]) -> Callable[[Import], bool]:
    def run(item: Import) -> bool:
        try:
            return migrate(item)
        except TencentCloudSDKException:
            return False
    return run
