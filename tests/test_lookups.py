"""find_created and poll_listed against a cloud whose lists lag (no network: a scripted caller)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from batchmig.errors import NotFoundError, OutcomeUnsureError, TransientError
from batchmig.plugin import Answer, Call, Listing, find_created, poll_listed
from batchmig.testing import FakeClock

pytestmark = pytest.mark.anyio


class ScriptedCloud:
    """A Caller over a list of jobs that become listed ``lag`` seconds after ``created``."""

    def __init__(self, jobs: list[dict[str, Any]], *, lag: float = 0.0, clock: FakeClock | None = None,
                 describes: bool = True, broken_reads: int = 0) -> None:
        self.jobs = jobs
        self.lag = lag
        self.clock = clock or FakeClock(start=10.0)
        self.describes = describes
        self.broken_reads = broken_reads
        self.calls: list[Call] = []

    async def read(self, call: Call) -> Answer:
        self.calls.append(call)
        if self.broken_reads:
            self.broken_reads -= 1
            return Answer({})  # a 200 with an empty body: no records at all
        params: Mapping[str, Any] = call.params
        if call.action == "DescribeJob":
            job = next((j for j in self.jobs if j["name"] == params["name"] or j["id"] == params.get("id")), None)
            if job is None or not self.describes:
                raise NotFoundError("JobNotFound", "no such job")
            return Answer(job, "r-describe")
        listed = [j for j in self.jobs if self.clock.now() - j["created"] >= self.lag]
        if "name" in params:
            listed = [j for j in listed if j["name"] == params["name"]]
        page = sorted(listed, key=lambda j: -j["created"])[params["offset"]: params["offset"] + params["limit"]]
        return Answer({"jobs": page}, "r-list")

    async def sleep(self, seconds: float) -> None:
        await self.clock.sleep(seconds)


def listing(**filters: Any) -> Listing:
    return Listing(lambda offset: Call("ListJobs", {**filters, "offset": offset, "limit": 2}),
                   lambda answer: answer.payload["jobs"], page_size=2)


def named(name: str) -> Callable[[Mapping[str, Any]], bool]:
    return lambda job: job["name"] == name


async def test_a_lagging_list_is_read_again_until_the_create_shows() -> None:
    cloud = ScriptedCloud([{"id": "j1", "name": "bm-a", "created": 10.0}], lag=3.0)
    found = await find_created(cloud, listing(name="bm-a"), named("bm-a"), what="the job bm-a", pause=2.0)
    assert found is not None and found["id"] == "j1"
    assert len(cloud.calls) == 3 and cloud.clock.slept == [2.0, 2.0]  # empty, empty, found


async def test_a_per_name_describe_settles_it_at_once() -> None:
    cloud = ScriptedCloud([], lag=100.0)
    describe = Call("DescribeJob", {"name": "bm-a"})
    assert await find_created(cloud, listing(name="bm-a"), named("bm-a"), what="x", describe=describe) is None
    assert [c.action for c in cloud.calls] == ["ListJobs", "DescribeJob"]  # no waiting: NotFound is proof
    cloud = ScriptedCloud([{"id": "j9", "name": "bm-a", "created": 0.0}], lag=100.0)
    found = await find_created(cloud, listing(name="bm-a"), named("bm-a"), what="x", describe=describe)
    assert found is not None and found["id"] == "j9"


async def test_an_empty_window_means_not_created_unless_lists_can_lag_longer() -> None:
    cloud = ScriptedCloud([{"id": "other", "name": "bm-b", "created": 0.0}])
    assert await find_created(cloud, listing(), named("bm-a"), what="x", relists=2, pause=1.0) is None
    assert len(cloud.calls) == 3
    with pytest.raises(OutcomeUnsureError, match=r"cannot tell whether the job bm-a was created.*can lag longer"):
        await find_created(ScriptedCloud([]), listing(), named("bm-a"), what="the job bm-a", lists_lag=True)


async def test_an_unusable_list_is_never_read_as_nothing_there() -> None:
    cloud = ScriptedCloud([{"id": "j1", "name": "bm-a", "created": 0.0}], broken_reads=1)
    found = await find_created(cloud, listing(), named("bm-a"), what="x")
    assert found is not None  # the empty 200 was not taken as "no jobs"; the next read found it
    with pytest.raises(OutcomeUnsureError, match="no list answer was usable"):
        await find_created(ScriptedCloud([], broken_reads=10), listing(), named("bm-a"), what="x", relists=2)


async def test_a_search_longer_than_its_page_limit_is_never_read_as_not_created() -> None:
    others = [{"id": f"j{n}", "name": f"bm-other-{n}", "created": float(n)} for n in range(7)]
    cloud = ScriptedCloud(others)  # 7 jobs, pages of 2, 3 pages read: the 4th may hold it
    with pytest.raises(OutcomeUnsureError, match="more than 3 pages of 2"):
        await find_created(cloud, listing(), named("bm-a"), what="the job bm-a", max_pages=3)
    assert len(cloud.calls) == 3  # and no relisting window spent on it either
    assert await find_created(ScriptedCloud(others), listing(), named("bm-a"), what="x", max_pages=4,
                              relists=0) is None  # the 4th page is short: the search was read to its end


async def test_poll_listed_pages_newest_first_then_describes_the_rest() -> None:
    jobs = [{"id": f"j{n}", "name": f"bm-{n}", "created": float(n)} for n in range(6)]
    cloud = ScriptedCloud(jobs)
    seen = await poll_listed(cloud, listing(), ["j5", "j4", "j0", "gone"], lambda job: job["id"],
                             describe=lambda ident: Call("DescribeJob", {"name": "", "id": ident}),
                             describe_record=lambda answer, ident: answer.payload, max_pages=1)
    assert seen["j5"].record == jobs[5] and seen["j4"].request_id == "r-list"
    assert seen["j0"].record == jobs[0] and seen["j0"].request_id == "r-describe"
    assert seen["gone"].record is None and seen["gone"].gone is not None
    assert [c.action for c in cloud.calls] == ["ListJobs", "DescribeJob", "DescribeJob"]


async def test_poll_listed_stops_paging_once_all_are_seen_and_flags_malformed_pages() -> None:
    jobs = [{"id": f"j{n}", "name": f"bm-{n}", "created": float(n)} for n in range(6)]
    cloud = ScriptedCloud(jobs)
    seen = await poll_listed(cloud, listing(), ["j5"], lambda job: job["id"], max_pages=3)
    assert list(seen) == ["j5"] and len(cloud.calls) == 1
    with pytest.raises(TransientError, match="the list answer has no records"):
        await poll_listed(ScriptedCloud(jobs, broken_reads=1), listing(), ["j5"], lambda job: job["id"])
