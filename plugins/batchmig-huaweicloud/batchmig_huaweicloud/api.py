"""The DRS v5 backup-migration operations batchmig uses, and where they live.

Action names are the official SDK's operation names, so the rate-limit keys, the
journal and the sandbox's audit log use the words Huawei's own docs use. A ``Call``'s
``params`` hold path parameters by name, the body under ``"body"`` and the query
string under ``"query"``; ``Connection.prepare`` turns them into a request.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ACTIONS",
    "CREATE",
    "DELETE",
    "LIST",
    "SHOW",
    "UPDATE",
    "Operation",
    "drs_endpoint",
    "iam_endpoint",
]

CREATE = "CreateReplicationJob"
SHOW = "ShowReplicationJob"
LIST = "ListReplicationJobs"
UPDATE = "UpdateReplicationJob"
DELETE = "DeleteReplicationJob"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    """Template with ``{project_id}`` and, for one job, ``{job_id}``."""
    mutating: bool


ACTIONS: dict[str, Operation] = {
    CREATE: Operation("POST", "/v5/{project_id}/backup-migration-jobs", mutating=True),
    SHOW: Operation("GET", "/v5/{project_id}/backup-migration-jobs/{job_id}", mutating=False),
    LIST: Operation("GET", "/v5/{project_id}/backup-migration-jobs", mutating=False),
    UPDATE: Operation("PUT", "/v5/{project_id}/backup-migration-jobs/{job_id}", mutating=True),
    DELETE: Operation("DELETE", "/v5/{project_id}/backup-migration-jobs/{job_id}", mutating=True),
}


def _domain(region: str) -> str:
    # The SDK's region table puts only the EU sovereign region on the .eu domain.
    return "myhuaweicloud.eu" if region == "eu-west-101" else "myhuaweicloud.com"


def drs_endpoint(region: str) -> str:
    return f"https://drs.{region}.{_domain(region)}"


def iam_endpoint(region: str) -> str:
    return f"https://iam.{region}.{_domain(region)}"
