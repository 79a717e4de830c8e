"""Rate-aware polling of asynchronous cloud work, shared by all instances.

Instances do not poll on their own timers: with a thousand jobs in flight that would
either blow the describe action's cap or starve it. Each instance registers what it
waits on with the queue for its (connection, poller); one task per queue picks the
things that are due, earliest first, packs them into batches (``Poller.max_batch``,
within one ``Poller.group``) and sends the polls through the pipeline, whose limiter
paces them against the describe action's cap. At most a quarter second's worth of
polls is in flight per queue, so the due-order — not the limiter's FIFO — decides
who is asked next, and a thing is never polled more often than ``min_interval``.

Describe calls are a budget shared by every waiting instance, so a poll goes where it
is most likely to find work finished (``Durations``): each queue learns how long each
kind of wait takes (the wait step: a survey that lists earlier tasks and a restore
that takes minutes may share a poller) from its recent finished ones, polls a new job
first when a small share of such jobs would have finished by its age, and after each
"still running" asks again when a small share of the jobs that were still running at
that age would have finished — so nothing is polled before it can plausibly be done,
and under pressure the due-order favours the jobs most likely to be done. What is
learned errs late (a job counts with its age when found done), and a queue that only
ever asks at the learned age would never find out how late: one new job of a kind in
``PROBE_EVERY`` is a probe, asked every interval from shortly before that age, so the
learned durations close in on the real ones. Capacity the due polls leave spare is
not wasted: a batch is filled with other jobs that could be done, and when nothing is
due a few early polls ask about the next most likely jobs.

The hub remembers what each instance's last poll said, so a step that times out can
say where its job stood; a status value the provider does not know is logged once
per instance (and counts as still running) instead of being polled in silence.
"""

from __future__ import annotations

import asyncio
import bisect
import heapq
import itertools
import math
from collections import Counter, defaultdict, deque
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from batchmig.engine.pipeline import Pipeline, ReadCaller
from batchmig.engine.workers import Workers
from batchmig.errors import ProviderError, TransientError
from batchmig.plugin import Poller, WaitItem, WaitStatus
from batchmig.ratelimit import Clock

log = structlog.get_logger("batchmig.polling")

MIN_SCALED_INTERVAL = 0.2
"""Scaled-down poll intervals (sandbox time scales) never go below this many seconds."""

MALFORMED_TOLERANCE = 5
"""Unusable poll answers in a row a waiter tolerates before its instance fails."""

IN_FLIGHT_SECONDS = 0.25
"""Polls one queue has in flight: this many seconds' worth at the describe action's cap
(at least 4), so the due-order — not the limiter's FIFO — decides who is asked next."""

PROBE_FRACTION = 0.9
"""Spare capacity may ask about a job from this fraction of the shortest duration learned
(so a queue whose jobs got shorter finds out); due polls wait for the learned durations."""

DURATION_SAMPLES = 256
"""Finished jobs a queue learns its jobs' durations from (the most recent ones)."""

SPARE_SHARE = 0.8
"""The describe action has spare capacity while this queue used less than this share of
its cap in the last second: then up to ``EARLY_POLLS`` early polls may be in flight."""

EARLY_POLLS = 2
"""Early polls in flight at once: a due poll waits behind at most this many slots of the cap."""

POLL_SHARE = 0.05
"""A job is due when this share of the jobs still running at its last poll would be done."""

PROBE_EVERY = 20
"""One new job of a kind in this many is a probe (about ``POLL_SHARE`` of the learned samples)."""

PROBE_LEAD = 2
"""A probe is first asked this many poll intervals before the kind's first-poll age (at the
earliest at ``PROBE_FRACTION`` of the shortest duration learned), then every interval up to it."""


class Durations:
    """How long one kind of job takes, learned from the recent finished ones.

    A finished job counts with its age at the answer that said so: an upper bound, so
    what is learned errs late rather than early — a poll queue that falls behind
    learns longer durations and asks less, never more (an estimate between the last
    "running" and that answer would fall far short when polls are far apart). With
    nothing learned yet every job is due at once and plausibly done at any age.
    """

    def __init__(self, window: int = DURATION_SAMPLES, share: float = POLL_SHARE) -> None:
        self.share = share
        self._recent: deque[float] = deque(maxlen=window)
        self._sorted: list[float] = []

    def learn(self, finished_age: float) -> None:
        if len(self._recent) == self._recent.maxlen:
            del self._sorted[bisect.bisect_left(self._sorted, self._recent[0])]
        self._recent.append(finished_age)
        bisect.insort(self._sorted, finished_age)

    @property
    def plausible(self) -> float:
        """The youngest age at which a job of this kind may be done (the shortest seen)."""
        return self._sorted[0] if self._sorted else 0.0

    def next_poll_age(self, running_age: float | None) -> float:
        """The age at which ``share`` of the jobs still running at ``running_age`` are done."""
        if not self._sorted:
            return 0.0
        n = len(self._sorted)
        done_before = 0.0 if running_age is None else bisect.bisect_right(self._sorted, running_age) / n
        target = done_before + self.share * (1.0 - done_before)
        return self._sorted[min(n - 1, math.floor(target * n))]


@dataclass(slots=True)
class _Waiter:
    instance: str
    item: WaitItem
    group: Any
    started: float = 0.0
    kind: str = ""
    """The wait step: durations are learned per kind."""
    taken: float | None = None
    """When its latest poll was taken from the queue."""
    running_age: float | None = None
    """Age (seconds since the wait began) at the latest answer that said "running"."""
    ready: float = 0.0
    """When it may be polled at all: plausibly done and ``interval`` after its last poll."""
    result: WaitStatus | BaseException | None = None
    polls: int = 0
    malformed: int = 0
    probe: bool = False
    solo: bool = False
    cancelled: bool = False
    done: asyncio.Future[None] | None = None
    """Resolved once ``result`` is known (``finish``): the future ``PollHub.wait`` awaits
    (not an asyncio event, which makes one per wait anyway, behind two more calls)."""

    def finish(self, result: WaitStatus | BaseException) -> None:
        self.result = result
        if self.done is not None and not self.done.done():  # cancelled with its instance's wait: nobody reads it
            self.done.set_result(None)


class _PollQueue:
    def __init__(self, hub: PollHub, connection: str, poller: Poller, interval: float) -> None:
        self.hub = hub
        self.connection = connection
        self.poller = poller
        self.interval = interval
        self.heap: list[tuple[float, int, _Waiter]] = []
        self.counter = itertools.count()
        self.queued: dict[Hashable, int] = {}
        """Entries in ``heap`` per group (cancelled ones included until they leave it): a batch
        whose group has no other entry is its head alone, found without scanning the heap."""
        self.wakeup: asyncio.Future[None] | None = None
        """What the queue's task awaits while it has nothing to send (``wake`` resolves it)."""
        self.woken_by_any = True
        """Whether any new entry must wake the task, not only a new head: it sleeps with its
        head ready for an early poll that spare capacity or the early polls in flight hold back
        (the task then looks again at each new entry, as it always did)."""
        cap = hub.pipeline.limiter.cap(hub.pipeline.key(connection, poller.action))
        self.slots = anyio.Semaphore(max(4, math.ceil(cap * IN_FLIGHT_SECONDS)))
        self.cap = cap
        self.durations: defaultdict[str, Durations] = defaultdict(Durations)
        """What this queue learned per kind of wait."""
        self.joined: Counter[str] = Counter()
        """New waiters per kind so far (every ``PROBE_EVERY``-th is a probe)."""
        self.early_in_flight = 0
        self.recent: deque[float] = deque()
        """When this queue's polls of the last second were taken."""

    def add(self, waiter: _Waiter, due: float) -> None:
        entry = (due, next(self.counter), waiter)
        heapq.heappush(self.heap, entry)
        self.queued[waiter.group] = self.queued.get(waiter.group, 0) + 1
        # An entry behind the head changes nothing the sleeping task waits for (the head's
        # due and ready times): waking it for each would cost a turn and a new timer each.
        if self.woken_by_any or self.heap[0] is entry:
            self.wake()

    def _left(self, waiter: _Waiter) -> None:
        """Count ``waiter``'s entry out of ``queued``: it left the heap."""
        left = self.queued[waiter.group] - 1
        if left:
            self.queued[waiter.group] = left
        else:
            del self.queued[waiter.group]

    def _pop(self) -> _Waiter:
        waiter = heapq.heappop(self.heap)[2]
        self._left(waiter)
        return waiter

    def wake(self) -> None:
        """Let the queue's task look again (a new head, a cancelled head, an early poll ended)."""
        _resolve(self.wakeup)

    def join(self, waiter: _Waiter) -> None:
        """Queue a new waiter (a probe, if it is the ``PROBE_EVERY``-th of its kind)."""
        self.joined[waiter.kind] += 1
        waiter.probe = self.joined[waiter.kind] % PROBE_EVERY == 0
        self.schedule(waiter)

    def schedule(self, waiter: _Waiter) -> None:
        """Queue ``waiter`` for the poll most likely to find it done (new or still running)."""
        waiter.ready, due = self._times(waiter)
        self.add(waiter, due)

    def _times(self, waiter: _Waiter) -> tuple[float, float]:
        """(ready, due) of ``waiter`` on what this queue has learned so far."""
        earliest = waiter.started if waiter.taken is None else waiter.taken + self.interval
        durations = self.durations[waiter.kind]
        ready = max(earliest, waiter.started + PROBE_FRACTION * durations.plausible)
        first = durations.next_poll_age(None)
        if waiter.probe and (waiter.running_age or 0.0) < first:
            lead = max(PROBE_FRACTION * durations.plausible, first - PROBE_LEAD * self.interval)
            return ready, max(earliest, waiter.started + lead)
        likely = waiter.started + durations.next_poll_age(waiter.running_age)
        return ready, max(earliest, likely)

    def _spare(self, now: float) -> bool:
        """Whether the describe action has room: under ``SPARE_SHARE`` of its cap used in the last second."""
        while self.recent and self.recent[0] <= now - 1.0:
            self.recent.popleft()
        return len(self.recent) < self.cap * SPARE_SHARE

    async def run(self) -> None:
        # Started from the first waiting instance's task, this task inherited its log
        # bindings; it serves every instance, so it logs under none of them.
        structlog.contextvars.unbind_contextvars("instance", "provider")
        clock = self.hub.clock
        while True:
            while self.heap and self.heap[0][2].cancelled:
                self._pop()
            self.woken_by_any = True  # until it sleeps toward its head's own times
            if not self.heap:
                self.wakeup = asyncio.get_running_loop().create_future()
                await self.wakeup
                continue
            due, _, head = self.heap[0]
            now = clock.now()
            if due <= now and not head.solo and self._times(head)[1] > due:
                # Queued before this queue learned that it cannot be done yet.
                self._pop()
                self.schedule(head)
                continue
            early = due > now and head.ready <= now and self.early_in_flight < EARLY_POLLS and self._spare(now)
            if due > now and not early:
                # Wake when the head is due or ready for an early poll, or the head changes.
                wake = due if head.ready <= now else min(due, head.ready)
                self.woken_by_any = head.ready <= now
                await self._sleep(wake - now)
                continue
            try:  # a free slot without anyio's shielded turn of the loop (a cancel scope) per poll
                self.slots.acquire_nowait()
            except anyio.WouldBlock:
                await self.slots.acquire()
            batch = self._take_batch(clock.now())
            if not batch:
                self.slots.release()
                continue
            self.early_in_flight += early
            self.recent.append(now)
            self.hub.workers.start_soon(self._poll, batch, early)

    async def _sleep(self, seconds: float) -> None:
        """Until ``seconds`` passed or ``wake`` was called: a timer resolves the same future
        (``move_on_after`` would enter a cancel scope with a deadline each time, about 15 µs;
        an ``asyncio.Event``, which makes a future per wait anyway, cost 3 µs more a sleep)."""
        loop = asyncio.get_running_loop()
        self.wakeup = wakeup = loop.create_future()
        timer = loop.call_at(loop.time() + seconds, _resolve, wakeup)
        try:
            await wakeup
        finally:
            timer.cancel()

    def _take_batch(self, now: float) -> list[_Waiter]:
        """The head and, up to ``max_batch``, others of its group that may be polled now.

        Filling the batch costs no extra call, so every member that could be done is
        taken, most likely first; the scan is bounded so a large queue stays cheap.
        """
        first = self._pop()
        if first.cancelled:
            return []
        first.taken = now
        batch = [first]
        if self.poller.max_batch > 1 and not first.solo and first.group in self.queued:
            scan = 4 * self.poller.max_batch
            horizon = now + self.interval / 2
            if len(self.heap) <= scan:
                return self._take_members(batch, horizon)
            skipped = []
            while self.heap and len(batch) < self.poller.max_batch and scan > 0:
                scan -= 1
                entry = heapq.heappop(self.heap)
                waiter = entry[2]
                if waiter.cancelled:
                    self._left(waiter)
                    continue
                if waiter.group == first.group and not waiter.solo and waiter.ready <= horizon:
                    self._left(waiter)
                    waiter.taken = now
                    batch.append(waiter)
                else:
                    skipped.append(entry)
            for entry in skipped:
                heapq.heappush(self.heap, entry)
        return batch

    def _take_members(self, batch: list[_Waiter], horizon: float) -> list[_Waiter]:
        """``_take_batch``'s scan when it would visit the whole heap: the same members (the
        most likely first of those that may be polled by ``horizon``) found in one pass over
        the heap, which then loses only them, instead of every entry taken off and put back
        (most of them polled a moment ago: 35-38 µs a batch in the overhead run, 29-33 now)."""
        first = batch[0]
        members = sorted(
            entry for entry in self.heap
            if entry[2].ready <= horizon and entry[2].group == first.group and not entry[2].solo
            and not entry[2].cancelled
        )[: self.poller.max_batch - 1]
        if members:
            taken = {entry[1] for entry in members}
            self.heap = [entry for entry in self.heap if entry[1] not in taken]
            heapq.heapify(self.heap)
            for _, _, waiter in members:
                self._left(waiter)
                waiter.taken = first.taken
                batch.append(waiter)
        return batch

    async def _poll(self, batch: list[_Waiter], early: bool = False) -> None:
        try:
            caller = ReadCaller(self.hub.pipeline, self.connection,
                                wanted=lambda: any(not waiter.cancelled for waiter in batch))
            try:
                statuses: Sequence[WaitStatus] | None = await self.poller.poll(caller, [w.item for w in batch])
                error: BaseException | None = None
            except ProviderError as exc:
                statuses, error = None, exc
            except Exception as exc:  # an answer the provider could not make sense of
                log.warning("poll.malformed_answer", poller=self.poller.name, error=f"{type(exc).__name__}: {exc}")
                statuses, error = None, TransientError("MalformedAnswer", f"a poll answer was unusable: {exc}")
            now = self.hub.clock.now()
            for index, waiter in enumerate(batch):
                waiter.polls += 1
                malformed = isinstance(error, TransientError) and error.code == "MalformedAnswer"
                if malformed and (len(batch) > 1 or waiter.malformed < MALFORMED_TOLERANCE):
                    # Poll the members of a spoilt batch alone, to find whose answer is bad.
                    waiter.solo = True
                    waiter.malformed += len(batch) == 1
                    if not waiter.cancelled:
                        self.add(waiter, now + (0 if len(batch) > 1 else self.interval))
                    continue
                if error is not None:
                    waiter.finish(error)
                    continue
                assert statuses is not None
                status = statuses[index] if index < len(statuses) else WaitStatus.running()
                self.hub.saw(waiter.instance, status, self.poller.name)
                if status.state == "running":
                    waiter.running_age = now - waiter.started
                    if not waiter.cancelled:
                        self.schedule(waiter)
                else:
                    self.durations[waiter.kind].learn(now - waiter.started)
                    waiter.finish(status)
        finally:
            if early:
                self.early_in_flight -= 1
                self.wake()
            self.slots.release()


def _resolve(wakeup: asyncio.Future[None] | None) -> None:
    if wakeup is not None and not wakeup.done():
        wakeup.set_result(None)


class PollHub:
    """All poll queues of one run; ``wait`` blocks an instance until its work is done."""

    def __init__(
        self, pipeline: Pipeline, clock: Clock, tg: TaskGroup, interval: float | None = None, scale: float = 1.0
    ) -> None:
        self.pipeline = pipeline
        self.clock = clock
        self._tg = tg
        self.workers = Workers(tg, "poll")
        self._interval = interval
        self._scale = scale
        self._queues: dict[tuple[str, str], _PollQueue] = {}
        self.polls_by_poller: dict[str, int] = {}
        self.last_seen: dict[str, WaitStatus] = {}
        """Instance id -> what the last poll of its current wait said (kept after a timeout)."""
        self._unrecognised: set[tuple[str, str]] = set()

    def saw(self, instance: str, status: WaitStatus, poller: str) -> None:
        self.last_seen[instance] = status
        if status.unrecognised and (instance, status.unrecognised) not in self._unrecognised:
            self._unrecognised.add((instance, status.unrecognised))
            log.warning("poll.unrecognised_status", instance=instance, poller=poller, value=status.unrecognised,
                        hint="batchmig keeps polling as if it were still running; the provider may need an update")

    def _queue(self, connection: str, poller: Poller) -> _PollQueue:
        key = (connection, poller.name)
        queue = self._queues.get(key)
        if queue is None:
            interval = self._interval
            if interval is None:
                interval = max(MIN_SCALED_INTERVAL, poller.min_interval / self._scale)
            queue = self._queues[key] = _PollQueue(self, connection, poller, interval)
            self._tg.start_soon(queue.run)
        return queue

    async def wait(self, connection: str, poller: Poller, item: WaitItem, kind: str = "") -> WaitStatus:
        """Return the terminal status (succeeded or failed) of the thing ``item`` names;
        ``kind`` (the wait step's name) is what the queue learns durations by.

        Raises the ``ProviderError`` of a poll that failed for good (after retries).
        """
        queue = self._queue(connection, poller)
        instance = item.instance.id
        self.last_seen.pop(instance, None)
        waiter = _Waiter(instance, item, poller.group(item), started=self.clock.now(), kind=kind)
        waiter.done = done = asyncio.get_running_loop().create_future()
        queue.join(waiter)
        try:
            await done
        finally:
            waiter.cancelled = True
            if queue.heap and queue.heap[0][2] is waiter:  # its task may sleep toward this head's times
                queue.wake()
            self.polls_by_poller[poller.name] = self.polls_by_poller.get(poller.name, 0) + waiter.polls
        if isinstance(waiter.result, BaseException):
            raise waiter.result
        assert waiter.result is not None
        self.last_seen.pop(instance, None)
        return waiter.result
