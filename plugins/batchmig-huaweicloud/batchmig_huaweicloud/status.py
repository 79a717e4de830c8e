"""What a DRS backup migration job's ``status`` means.

The documented values are ``TRANSFERRING``, ``SUCCESS``, ``FAILED`` and ``PRECHECK
FAILED`` (with a space). The Show page claims lower case and other DRS listings show
more states, so compare case-insensitively and treat anything unknown as still
running: waiting a little longer is recoverable, declaring a live job dead is not.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from batchmig.plugin import WaitStatus

__all__ = ["RECOVERY_MODE_NAMES", "job_state", "normalise_recovery_mode", "wait_status"]

RECOVERY_MODE_NAMES = {"1": "full", "2": "incre"}
"""DRS sometimes answers recovery_mode with these numbers instead of the names."""

_FAILED = {"FAILED", "PRECHECK FAILED", "PRECHECK_FAILED"}


def normalise_recovery_mode(value: object) -> str:
    text = str(value or "").strip().lower()
    return RECOVERY_MODE_NAMES.get(text, text)


def job_state(status: object) -> Literal["running", "succeeded", "failed"]:
    text = " ".join(str(status or "").split()).upper()
    if text == "SUCCESS":
        return "succeeded"
    if text in _FAILED:
        return "failed"
    return "running"


def wait_status(job: Mapping[str, Any], request_id: str | None = None) -> WaitStatus:
    """The ``WaitStatus`` for one job as Show or List describes it."""
    status = str(job.get("status") or "")
    state = job_state(status)
    if state == "succeeded":
        outputs = {"job_status": status}
        if job.get("finish_time"):
            outputs["job_finish_time"] = str(job["finish_time"])
        return WaitStatus.succeeded(outputs, message=f"job {job.get('name') or job.get('id')}: {status}")
    if state == "failed":
        reason = str(job.get("error_log") or "").strip() or "no error_log given"
        code = "PRECHECK_FAILED" if "PRECHECK" in status.upper() else "FAILED"
        return WaitStatus.failed(
            f"DRS job {job.get('id')} {status}: {reason}", code=code, request_id=request_id
        )
    return WaitStatus.running(status or "no status yet")
