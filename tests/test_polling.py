"""The poll scheduler asks about a job when it is likely done, never before it plausibly is.

Behaviour on the injected clock: what each queue learns from finished jobs, when it
makes a job due, and which jobs a poll takes — no test waits on the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchmig.engine.polling import PROBE_EVERY, Durations, PollHub, _PollQueue, _Waiter
from batchmig.plugin import Caller, Poller, WaitItem, WaitStatus
from batchmig.testing import FakeClock, make_instance
from batchmig.testing.testcloud import TestcloudProvider

INTERVAL = 0.5


def make_queue(clock: FakeClock, answers: dict[str, str] | None = None, max_batch: int = 1) -> _PollQueue:
    """A queue on a stub hub; its poller answers each job's state from ``answers``."""

    async def poll(_caller: Caller, batch: Sequence[WaitItem]) -> list[WaitStatus]:
        states = answers or {}
        return [WaitStatus.running() if states.get(str(item.outputs["id"]), "running") == "running"
                else WaitStatus.succeeded() for item in batch]

    pipeline = SimpleNamespace(limiter=SimpleNamespace(cap=lambda _key: 20.0), key=lambda *_: "key")
    hub: Any = PollHub.__new__(PollHub)
    hub.pipeline, hub.clock, hub.last_seen, hub._unrecognised = pipeline, clock, {}, set()
    poller = Poller(name="jobs", action="DescribeJobs", poll=poll, max_batch=max_batch)
    return _PollQueue(hub, "conn", poller, INTERVAL)


def waiter(job: str, clock: FakeClock, group: str = "g") -> _Waiter:
    item = WaitItem(make_instance(TestcloudProvider(), "testcloud", {}, id=job), {"id": job})
    return _Waiter(job, item, group, started=clock.now())


def due_of(queue: _PollQueue, job: str) -> float:
    return next(due for due, _, w in queue.heap if w.instance == job)


def test_nothing_learned_polls_at_once_and_thinks_anything_plausible() -> None:
    durations = Durations()
    assert durations.next_poll_age(None) == 0.0
    assert durations.plausible == 0.0


def test_a_finished_job_counts_with_its_age_when_found_done() -> None:
    durations = Durations()
    durations.learn(12.0)
    durations.learn(30.0)
    assert durations.plausible == 12.0
    assert durations.next_poll_age(None) == 12.0
    assert durations.next_poll_age(12.0) == 30.0


def test_jobs_of_one_length_are_first_polled_at_that_length() -> None:
    durations = Durations()
    for _ in range(50):
        durations.learn(10.0)
    assert durations.next_poll_age(None) == pytest.approx(10.0)
    assert durations.plausible == pytest.approx(10.0)


def test_each_poll_waits_for_a_share_of_the_jobs_still_running() -> None:
    durations = Durations(window=100, share=0.05)
    for seconds in range(1, 101):
        durations.learn(float(seconds))
    assert durations.next_poll_age(None) == 6.0  # by then 5% of all jobs are done
    assert durations.next_poll_age(50.0) == 53.0  # 5% of the 50 still running at 50 s
    assert durations.next_poll_age(99.5) == 100.0
    assert durations.next_poll_age(500.0) == 100.0  # older than any: the interval decides


def test_only_the_recent_jobs_are_remembered() -> None:
    durations = Durations(window=10)
    for _ in range(10):
        durations.learn(100.0)
    for _ in range(10):
        durations.learn(5.0)
    assert durations.plausible == 5.0
    assert durations.next_poll_age(None) == 5.0
    assert durations.next_poll_age(6.0) == 5.0  # all learned jobs were done by then


async def poll_head(queue: _PollQueue, clock: FakeClock) -> list[_Waiter]:
    """Take the batch the queue would send now and answer it, as its task does."""
    await queue.slots.acquire()
    batch = queue._take_batch(clock.now())
    await queue._poll(batch)
    return batch


@pytest.mark.anyio  # a queue's wake-up event belongs to the event loop (anyio 4.3 needs one)
async def test_cold_queue_polls_a_new_job_at_once() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    job = waiter("a", clock)
    queue.schedule(job)
    assert due_of(queue, "a") == clock.now()
    assert job.ready == clock.now()


@pytest.mark.anyio  # a queue's wake-up event belongs to the event loop (anyio 4.3 needs one)
async def test_no_poll_before_a_job_can_plausibly_be_done() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    for _ in range(20):
        queue.durations[""].learn(10.0)
    job = waiter("new", clock)
    queue.schedule(job)
    assert due_of(queue, "new") == pytest.approx(clock.now() + 10.0)
    assert job.ready == pytest.approx(clock.now() + 9.0), "spare capacity may probe from 0.9 of the shortest"


@pytest.mark.anyio
async def test_a_job_likely_done_is_asked_before_one_that_cannot_be() -> None:
    clock = FakeClock(start=0.0)
    queue = make_queue(clock)
    for _ in range(20):
        queue.durations[""].learn(10.0)
    old = waiter("old", clock)
    queue.schedule(old)
    clock.advance(5.0)
    young = waiter("young", clock)
    queue.schedule(young)
    clock.advance(5.2)  # "old" is past every learned duration and still running
    assert await poll_head(queue, clock) == [old]
    assert old.running_age == pytest.approx(10.2)
    assert due_of(queue, "old") == pytest.approx(10.2 + INTERVAL)
    assert queue.heap[0][2] is old, "the overdue job is asked first"
    assert due_of(queue, "young") == pytest.approx(15.0)


@pytest.mark.anyio
async def test_one_new_job_in_twenty_probes_below_the_learned_age() -> None:
    # Learned ages err late (a job counts with its age when found done): a probe, asked
    # every interval from two intervals before the first-poll age, finds out how late.
    clock = FakeClock(start=0.0)
    queue = make_queue(clock)
    for _ in range(20):
        queue.durations[""].learn(10.0)
    jobs = [waiter(f"j{n:02d}", clock) for n in range(PROBE_EVERY)]
    for job in jobs:
        queue.join(job)
    probes = [job for job in jobs if job.probe]
    assert probes == [jobs[-1]]
    assert due_of(queue, jobs[0].instance) == pytest.approx(10.0)
    assert due_of(queue, probes[0].instance) == pytest.approx(10.0 - 2 * INTERVAL)
    clock.advance(10.0 - 2 * INTERVAL)
    queue.heap = [entry for entry in queue.heap if entry[2] is probes[0]]
    assert await poll_head(queue, clock) == probes
    assert due_of(queue, probes[0].instance) == pytest.approx(10.0 - INTERVAL), "asked again an interval later"


@pytest.mark.anyio
async def test_a_finished_job_teaches_its_queue() -> None:
    clock = FakeClock(start=0.0)
    answers = {"a": "running"}
    queue = make_queue(clock, answers)
    job = waiter("a", clock)
    job.done = asyncio.get_running_loop().create_future()
    queue.schedule(job)
    clock.advance(4.0)
    await poll_head(queue, clock)
    assert job.running_age == 4.0, "it was running when asked, however late the poll"
    assert queue.durations[""].plausible == 0.0
    answers["a"] = "succeeded"
    clock.advance(2.0)
    await poll_head(queue, clock)
    assert job.done.done() and job.result is not None and job.result.state == "succeeded"
    assert queue.durations[""].plausible == 6.0, "found done 6 s after it began"


@pytest.mark.anyio
async def test_jobs_queued_before_anything_was_learned_wait_for_what_was() -> None:
    clock = FakeClock(start=0.0)
    queue = make_queue(clock)
    early = waiter("early", clock)
    queue.schedule(early)
    assert due_of(queue, "early") == 0.0
    for _ in range(20):
        queue.durations[""].learn(10.0)
    clock.advance(1.0)
    await queue.slots.acquire()
    queue.slots.release()
    # The queue's task finds the head due on stale knowledge and puts it back.
    due, _, head = queue.heap[0]
    assert queue._times(head)[1] > due
    queue.heap.pop()
    queue.schedule(head)
    assert due_of(queue, "early") == pytest.approx(10.0)


def test_spare_capacity_is_under_most_of_the_cap_in_the_last_second() -> None:
    clock = FakeClock(start=0.0)
    queue = make_queue(clock)  # cap 20: spare under 16 polls a second
    queue.recent.extend([0.06 * i for i in range(15)])
    assert queue._spare(0.9)
    queue.recent.append(0.9)
    assert not queue._spare(0.95)
    assert queue._spare(1.05), "the oldest poll left the last second"


@pytest.mark.anyio  # a queue's wake-up event belongs to the event loop (anyio 4.3 needs one)
async def test_a_batch_takes_every_member_of_its_group_that_could_be_done() -> None:
    clock = FakeClock(start=0.0)
    queue = make_queue(clock, max_batch=10)
    for _ in range(20):
        queue.durations[""].learn(10.0)
    jobs = {name: waiter(name, clock, group) for name, group in
            (("overdue", "g"), ("plausible", "g"), ("other-group", "h"))}
    clock.advance(8.0)
    jobs["young"] = waiter("young", clock)  # 3 s old: far from the shortest job
    clock.advance(3.0)
    jobs["overdue"].taken, jobs["overdue"].running_age = 10.5, 10.5
    for job in jobs.values():
        queue.schedule(job)
    batch = queue._take_batch(clock.now())
    assert sorted(w.instance for w in batch) == ["overdue", "plausible"]
    assert sorted(w.instance for _, _, w in queue.heap) == ["other-group", "young"]


def _batch_by_popping(queue: _PollQueue, now: float) -> list[str]:
    """What a batch is, spelled out: entries off the heap in due order, the head and then
    every member of its group that may be polled within half an interval, up to
    ``max_batch``, looking at ``4 * max_batch`` entries at most."""
    heap = sorted(queue.heap)
    first = heap.pop(0)[2]
    batch = [first.instance]
    scan = 4 * queue.poller.max_batch
    for _, _, other in heap[:scan]:
        if len(batch) == queue.poller.max_batch:
            break
        if not other.cancelled and other.group == first.group and not other.solo and (
                other.ready <= now + queue.interval / 2):
            batch.append(other.instance)
    return batch


@given(st.integers(1, 6), st.lists(st.tuples(st.floats(0, 3), st.floats(0, 3), st.sampled_from("gh"),
                                             st.booleans(), st.booleans()), min_size=1, max_size=40))
def test_a_batch_is_the_most_likely_members_whatever_the_queue_holds(
    max_batch: int, entries: list[tuple[float, float, str, bool, bool]]
) -> None:
    clock = FakeClock(start=0.0)
    queue = make_queue(clock, max_batch=max_batch)
    waiters = []
    for number, (due, ready, group, solo, cancelled) in enumerate(entries):
        job = waiter(f"job-{number}", clock, group)
        job.ready, job.solo, job.cancelled = ready, solo and number > 0, cancelled and number > 0
        waiters.append(job)
        queue.add(job, due)
    queue.heap[0][2].solo = queue.heap[0][2].cancelled = False  # the head: what the queue's task hands over
    expected = _batch_by_popping(queue, 1.0)
    batch = queue._take_batch(1.0)
    assert [w.instance for w in batch] == expected
    assert all(w.taken == 1.0 for w in batch)
    left = {w.instance for _, _, w in queue.heap}
    assert left >= {w.instance for w in waiters if not w.cancelled} - set(expected)
    assert not left & set(expected)


def _queued_by_counting(queue: _PollQueue) -> dict[Any, int]:
    counted: dict[Any, int] = {}
    for _, _, job in queue.heap:
        counted[job.group] = counted.get(job.group, 0) + 1
    return counted


@given(st.integers(1, 6), st.lists(st.tuples(st.floats(0, 3), st.floats(0, 3), st.sampled_from("ghk"),
                                             st.booleans(), st.booleans()), min_size=1, max_size=40),
       st.integers(1, 5))
def test_the_entries_per_group_are_counted_through_every_batch(
    max_batch: int, entries: list[tuple[float, float, str, bool, bool]], batches: int
) -> None:
    """``queued`` (what lets a lone head skip the scan) matches the heap after each batch,
    and a batch is the same whether or not the scan was skipped."""
    clock = FakeClock(start=0.0)
    queue = make_queue(clock, max_batch=max_batch)
    for number, (due, ready, group, solo, cancelled) in enumerate(entries):
        job = waiter(f"job-{number}", clock, group)
        job.ready, job.solo, job.cancelled = ready, solo, cancelled
        queue.add(job, due)
    for _ in range(batches):
        if not queue.heap:
            break
        queue.heap[0][2].solo = queue.heap[0][2].cancelled = False
        expected = _batch_by_popping(queue, 1.0)
        assert [w.instance for w in queue._take_batch(1.0)] == expected
        assert queue.queued == _queued_by_counting(queue)


@pytest.mark.anyio  # the queue's wake-up future belongs to the event loop
async def test_a_sleeping_queue_is_woken_by_a_new_head_not_by_an_entry_behind_it() -> None:
    clock = FakeClock(start=0.0)
    queue = make_queue(clock, max_batch=10)
    loop = asyncio.get_running_loop()
    head = waiter("head", clock)
    head.ready = 5.0
    queue.add(head, 5.0)
    queue.woken_by_any = False  # what its task sets when it sleeps toward a head not ready yet
    queue.wakeup = loop.create_future()
    behind = waiter("behind", clock)
    behind.ready = 0.0
    queue.add(behind, 6.0)
    assert not queue.wakeup.done(), "the head's times are unchanged: its task sleeps on"
    queue.add(waiter("new-head", clock), 1.0)
    assert queue.wakeup.done()
    queue.woken_by_any, queue.wakeup = True, loop.create_future()  # the head ready, an early poll held back
    queue.add(waiter("later", clock), 9.0)
    assert queue.wakeup.done(), "spare capacity may have come: the task looks again"
