"""Huawei's own Python SDK (huaweicloudsdkdrs), pointed at the emulator, gets correct answers.

Optional: skipped when the SDK is not installed. The SDK is synchronous (requests),
so it runs in a worker thread while the emulator serves on the event loop.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
from batchmig.testing import EmulatorHost

from batchmig_huaweicloud import api
from batchmig_huaweicloud.demo import DEMO_CREDENTIALS

pytest.importorskip("huaweicloudsdkdrs")

from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions.exceptions import ClientRequestException
from huaweicloudsdkcore.region.region import Region
from huaweicloudsdkdrs.v5 import DrsClient
from huaweicloudsdkdrs.v5 import model as m


def sdk_client(url: str, project_id: str | None = DEMO_CREDENTIALS["project_id"]) -> Any:
    credentials = BasicCredentials(DEMO_CREDENTIALS["ak"], DEMO_CREDENTIALS["sk"], project_id)
    return DrsClient.new_builder().with_credentials(credentials).with_endpoint(url).build()


def create_request() -> Any:
    body = m.CreateOfflineTaskReq(
        base_info=m.BackupJobBaseInfo(name="sdk-job-01", engine_type="sqlserver", enterprise_project_id="0"),
        target_db_info=m.BackupJobEndpointInfo(target_instance_id="0a3182607bc549bcb46cc9a8755761a6in04"),
        backup_info=m.BackupInfo(
            file_source="OBS", bucket_name="sdk-bucket", files=[m.BackupFileInfo(name="db.bak", obs_path="")]
        ),
        options=m.BackupRestoreOptionInfo(is_last_backup=True, is_precheck=True, recovery_mode="full"),
    )
    return m.CreateReplicationJobRequest(body=body)


def sdk_session(url: str) -> dict[str, Any]:
    client = sdk_client(url)
    created = client.create_replication_job(create_request())
    job_id = created.job_id
    shown = client.show_replication_job(m.ShowReplicationJobRequest(job_id=job_id))
    listed = client.list_replication_jobs(
        m.ListReplicationJobsRequest(
            name="sdk-job",
            status="TRANSFERRING",
            dbs_instance_ids=["a", shown.target_db_info.target_instance_id],
            limit=10,
            offset=0,
        )
    )
    client.update_replication_job(
        m.UpdateReplicationJobRequest(
            job_id=job_id, body=m.ModifyOfflineTaskReq(name="sdk-job-02", description="d")
        )
    )
    try:
        client.delete_replication_job(m.DeleteReplicationJobRequest(job_id=job_id))
        delete_error = None
    except ClientRequestException as exc:
        delete_error = (exc.status_code, exc.error_code)
    try:
        client.show_replication_job(m.ShowReplicationJobRequest(job_id="no-such-jb000"))
        missing = None
    except ClientRequestException as exc:
        missing = (exc.status_code, exc.error_code, exc.request_id)
    # No project id: the SDK asks IAM (here: the sandbox) for the region's project.
    credentials = BasicCredentials(DEMO_CREDENTIALS["ak"], DEMO_CREDENTIALS["sk"])
    credentials.iam_endpoint = url
    without_project = (
        DrsClient.new_builder()
        .with_credentials(credentials)
        .with_region(Region("ap-southeast-1", url))
        .build()
    )
    resolved = without_project.list_replication_jobs(m.ListReplicationJobsRequest())
    try:
        sdk_client(url, project_id=None).list_replication_jobs(m.ListReplicationJobsRequest())
        unresolved = None
    except ClientRequestException as exc:
        unresolved = (exc.status_code, exc.error_code)
    return {
        "job_id": job_id,
        "shown": shown,
        "listed": listed,
        "delete_error": delete_error,
        "missing": missing,
        "resolved_count": resolved.count,
        "unresolved": unresolved,
    }


@pytest.mark.anyio
async def test_official_sdk_round_trip(sandbox: EmulatorHost) -> None:
    result = await anyio.to_thread.run_sync(sdk_session, sandbox.url)
    shown = result["shown"]
    assert shown.id == result["job_id"] and shown.status == "TRANSFERRING"
    assert shown.base_info.name == "sdk-job-01"
    assert shown.backup_info.file_info[0].file_name == "db.bak"
    assert result["listed"].count == 1 and result["listed"].jobs[0].id == result["job_id"]
    assert result["delete_error"] == (400, "DRS.10000001")  # still running
    status, code, request_id = result["missing"]
    assert (status, code) == (400, "DRS.10000010") and request_id
    assert result["resolved_count"] == 0  # another region's project: the SDK resolved it via IAM
    assert len(sandbox.calls("KeystoneListProjects")) == 1
    # Neither region nor project: the SDK sends "{project_id}" literally, which DRS refuses.
    assert result["unresolved"] == (403, "DRS.M00261")
    assert sandbox.resources(api.CREATE) == ["sdk-job-01"]
    assert all(entry.get("status") != 401 for entry in sandbox.audit)  # every SDK signature verified
