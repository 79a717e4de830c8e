"""Watching many DRS jobs at once, and finding a job by its name.

DRS has no batch describe for backup migration jobs, but its list call returns up to
a page of jobs with their status and ``error_log``. So one poll lists the newest jobs
(filtered by the batch's common name prefix) page by page until every job of the
batch has been seen: a fleet of jobs in flight costs a few list calls per round
instead of one Show per job. Newest-first order keeps a run's own jobs on the first
pages however long the project's history is, and jobs created while paging only push
others later (seen twice, never missed). The few jobs still unseen after
``MAX_PAGES`` are asked about one by one with Show.

The same list call, filtered by exact name, reconciles a create whose answer was
lost: DRS takes no client token, so the deterministic job name is the only handle.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from batchmig.errors import NotFoundError
from batchmig.plugin import Call, Caller, Outputs, Poller, WaitStatus

from batchmig_huaweicloud import api
from batchmig_huaweicloud.status import wait_status

__all__ = ["JOB_POLLER", "MAX_PAGES", "PAGE_SIZE", "find_job_by_name", "list_call", "poll_jobs", "show_call"]

PAGE_SIZE = 100
"""Jobs per list page, and so per poll batch (the API's maximum is undocumented)."""
MAX_PAGES = 5
SHOW_FALLBACK = 10
"""At most this many unseen jobs of a batch are asked about with Show per poll."""


def list_call(*, name: str | None = None, offset: int = 0, limit: int | None = None) -> Call:
    query: dict[str, Any] = {
        "limit": limit or PAGE_SIZE,
        "offset": offset,
        "sort_key": "created_at",
        "sort_dir": "desc",
    }
    if name:
        query["name"] = name
    return Call(api.LIST, {"query": query}, resource=name)


def show_call(job_id: str) -> Call:
    return Call(api.SHOW, {"job_id": job_id}, resource=job_id)


async def _pages(
    caller: Caller, name: str | None, max_pages: int
) -> AsyncIterator[tuple[Mapping[str, Any], list[Any]]]:
    for page in range(max_pages):
        answer = await caller.read(list_call(name=name, offset=page * PAGE_SIZE))
        jobs = answer.get("jobs") or []
        yield answer, jobs
        if len(jobs) < PAGE_SIZE:
            return


async def poll_jobs(caller: Caller, batch: Sequence[Outputs]) -> Sequence[WaitStatus]:
    wanted = {str(o["job_id"]) for o in batch if o.get("job_id")}
    names = [str(o.get("job_name") or "") for o in batch]
    # Character-wise on purpose: job names share the start, not path components.
    prefix = os.path.commonprefix(names) if all(names) else ""  # noqa: RUF071
    found: dict[str, WaitStatus] = {}
    async for answer, jobs in _pages(caller, prefix if len(prefix) >= 3 else None, MAX_PAGES):
        for job in jobs:
            if str(job.get("id")) in wanted:
                found[str(job["id"])] = wait_status(job, answer.get("_request_id"))
        if wanted <= found.keys():
            break
    for job_id in sorted(wanted - found.keys())[:SHOW_FALLBACK]:
        try:
            detail = await caller.read(show_call(job_id))
        except NotFoundError as exc:
            found[job_id] = WaitStatus.failed(
                f"DRS job {job_id} no longer exists (deleted?)", code=exc.code, request_id=exc.request_id
            )
            continue
        found[job_id] = wait_status(detail, detail.get("_request_id"))
    return [found.get(str(o.get("job_id")), WaitStatus.running("not in the newest jobs yet")) for o in batch]


JOB_POLLER = Poller(
    name="huawei-drs-jobs",
    action=api.LIST,
    poll=poll_jobs,
    max_batch=PAGE_SIZE,
    min_interval=2.0,
    example=lambda outputs: list_call(name=str(outputs.get("job_name") or "") or None),
)


async def find_job_by_name(caller: Caller, name: str, max_pages: int = 20) -> Mapping[str, Any] | None:
    """The job named ``name`` (names are case-insensitive), the oldest if several."""
    matches: list[Mapping[str, Any]] = []
    async for _, jobs in _pages(caller, name, max_pages):
        matches += [job for job in jobs if str(job.get("name", "")).lower() == name.lower()]
    if not matches:
        return None
    return min(matches, key=lambda job: str(job.get("create_time") or ""))
