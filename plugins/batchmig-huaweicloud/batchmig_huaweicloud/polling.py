"""Watching many DRS jobs at once, and finding a job by its name.

DRS has no batch describe for backup migration jobs, but its list call returns up to
a page of jobs with their status and ``error_log``. So one poll lists the newest jobs
(filtered by the batch's common name prefix) page by page until every job of the
batch has been seen (batchmig's ``poll_listed``): a fleet of jobs in flight costs a
few list calls per round instead of one Show per job. Newest-first order keeps a
run's own jobs on the first pages however long the project's history is, and jobs
created while paging only push others later (seen twice, never missed). The few jobs
still unseen after ``MAX_PAGES`` are asked about one by one with Show.

The same list call, filtered by exact name, reconciles a create whose answer was
lost (batchmig's ``find_created``): DRS takes no client token, so the deterministic
job name is the only handle. A list answer without a ``jobs`` array (an empty 200)
is a malformed answer, never "no jobs".
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from batchmig.plugin import Call, Caller, Listing, Poller, WaitItem, WaitStatus, find_created, poll_listed

from batchmig_huaweicloud import api
from batchmig_huaweicloud.status import wait_status

__all__ = ["JOB_POLLER", "MAX_PAGES", "PAGE_SIZE", "find_job_by_name", "jobs_listing", "poll_jobs", "show_call"]

PAGE_SIZE = 100
"""Jobs per list page, and so per poll batch (the API's maximum is undocumented)."""
MAX_PAGES = 5
SHOW_FALLBACK = 10
"""At most this many unseen jobs of a batch are asked about with Show per poll."""


def jobs_listing(name: str | None = None) -> Listing:
    """The backup migration jobs, newest first (filtered by name when given)."""

    def page(offset: int) -> Call:
        query: dict[str, Any] = {"limit": PAGE_SIZE, "offset": offset, "sort_key": "created_at", "sort_dir": "desc"}
        if name:
            query["name"] = name
        return Call(api.LIST, {"query": query}, resource=name)

    return Listing(page, lambda answer: answer.payload["jobs"], PAGE_SIZE)


def show_call(job_id: str) -> Call:
    return Call(api.SHOW, {"job_id": job_id}, resource=job_id)


def job_id_of(item: WaitItem) -> str:
    """The job a wait watches: the one its create step (``context["label"]``) made."""
    return str(item.outputs[f"{item.context['label']}_job_id"])


async def poll_jobs(caller: Caller, batch: Sequence[WaitItem]) -> Sequence[WaitStatus]:
    names = [str(item.context.get("job_name") or "") for item in batch]
    # Character-wise on purpose: job names share the start, not path components.
    prefix = os.path.commonprefix(names) if all(names) else ""  # noqa: RUF071
    seen = await poll_listed(
        caller, jobs_listing(prefix if len(prefix) >= 3 else None), [job_id_of(item) for item in batch],
        lambda job: job.get("id"), describe=show_call, describe_record=lambda answer, job_id: answer.payload,
        max_pages=MAX_PAGES, max_describes=SHOW_FALLBACK,
    )
    statuses = []
    for item in batch:
        found = seen.get(job_id_of(item))
        if found is None:
            statuses.append(WaitStatus.running("not in the newest jobs yet"))
        elif found.gone is not None:
            statuses.append(WaitStatus.failed(f"DRS job {job_id_of(item)} no longer exists (deleted?)",
                                              code=found.gone.code, request_id=found.gone.request_id))
        else:
            assert found.record is not None
            statuses.append(wait_status(found.record, found.request_id))
    return statuses


JOB_POLLER = Poller(
    name="huawei-drs-jobs",
    action=api.LIST,
    poll=poll_jobs,
    max_batch=PAGE_SIZE,
    min_interval=2.0,
    example=lambda item: jobs_listing(str(item.context.get("job_name") or "") or None).page(0),
)


async def find_job_by_name(
    caller: Caller, name: str, *, relists: int = 3, max_pages: int = 20
) -> Mapping[str, Any] | None:
    """The job named ``name`` (names are case-insensitive), newest first.

    ``relists`` > 0 is for reconciling a lost create (see ``find_created``: a lagging
    list is read again, an unusable one raises ``OutcomeUnsureError``); 0 looks once.
    """
    return await find_created(
        caller, jobs_listing(name), lambda job: str(job.get("name", "")).lower() == name.lower(),
        what=f"the DRS job {name!r}", relists=relists, max_pages=max_pages,
    )
