"""Which emulated operation a method and path name.

The emulator sits on one loopback port for every region, so it serves the DRS
backup-migration paths and the two IAM paths a client needs (token, project lookup)
side by side, as a real client pointed at one endpoint expects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["IAM_PROJECTS", "IAM_TOKENS", "MUTATING", "Route", "route"]

IAM_TOKENS = "KeystoneCreateUserTokenByPassword"
IAM_PROJECTS = "KeystoneListProjects"

MUTATING = {"CreateReplicationJob", "UpdateReplicationJob", "DeleteReplicationJob"}

_JOBS = re.compile(r"^/v5/(?P<project>[^/]+)/backup-migration-jobs/?$")
_JOB = re.compile(r"^/v5/(?P<project>[^/]+)/backup-migration-jobs/(?P<job>[^/]+)/?$")
_BY_METHOD = {
    ("POST", "jobs"): "CreateReplicationJob",
    ("GET", "jobs"): "ListReplicationJobs",
    ("GET", "job"): "ShowReplicationJob",
    ("PUT", "job"): "UpdateReplicationJob",
    ("DELETE", "job"): "DeleteReplicationJob",
}


@dataclass(frozen=True)
class Route:
    action: str
    params: dict[str, str] = field(default_factory=dict)


def route(method: str, path: str) -> Route | None:
    """The operation at ``method path`` (path already URL-decoded), or None."""
    method = method.upper()
    if path.rstrip("/") == "/v3/auth/tokens" and method == "POST":
        return Route(IAM_TOKENS)
    if path.rstrip("/") == "/v3/projects" and method == "GET":
        return Route(IAM_PROJECTS)
    if match := _JOBS.match(path):
        action = _BY_METHOD.get((method, "jobs"))
        return Route(action, {"project_id": match["project"]}) if action else None
    if match := _JOB.match(path):
        action = _BY_METHOD.get((method, "job"))
        return Route(action, {"project_id": match["project"], "job_id": match["job"]}) if action else None
    return None
