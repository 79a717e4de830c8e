"""Rate-aware polling of asynchronous cloud work, shared by all instances.

Instances do not poll on their own timers: with a thousand jobs in flight that would
either blow the describe action's cap or starve it. Each instance registers what it
waits on with the queue for its (connection, poller); one task per queue picks the
things that are due, earliest first, packs them into batches (``Poller.max_batch``,
within one ``Poller.group``) and sends the polls through the pipeline, whose limiter
paces them against the describe action's cap. At most about one second's worth of
polls is in flight per queue, so the due-order — not the limiter's FIFO — decides
who is asked next, and a thing is never polled more often than ``min_interval``.

The hub remembers what each instance's last poll said, so a step that times out can
say where its job stood; a status value the provider does not know is logged once
per instance (and counts as still running) instead of being polled in silence.
"""

from __future__ import annotations

import heapq
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog
from anyio.abc import TaskGroup

from batchmig.engine.pipeline import Pipeline, ReadCaller
from batchmig.errors import ProviderError, TransientError
from batchmig.plugin import Outputs, Poller, WaitStatus
from batchmig.ratelimit import Clock

log = structlog.get_logger("batchmig.polling")

MIN_SCALED_INTERVAL = 0.2
"""Scaled-down poll intervals (sandbox time scales) never go below this many seconds."""

MALFORMED_TOLERANCE = 5
"""Unusable poll answers in a row a waiter tolerates before its instance fails."""


@dataclass
class _Waiter:
    instance: str
    outputs: Outputs
    group: Any
    done: anyio.Event = field(default_factory=anyio.Event)
    result: WaitStatus | BaseException | None = None
    polls: int = 0
    malformed: int = 0
    solo: bool = False
    cancelled: bool = False


class _PollQueue:
    def __init__(self, hub: PollHub, connection: str, poller: Poller, interval: float) -> None:
        self.hub = hub
        self.connection = connection
        self.poller = poller
        self.interval = interval
        self.heap: list[tuple[float, int, _Waiter]] = []
        self.counter = itertools.count()
        self.wakeup = anyio.Event()
        cap = hub.pipeline.limiter.cap(hub.pipeline.key(connection, poller.action))
        self.slots = anyio.Semaphore(max(2, math.ceil(cap)))

    def add(self, waiter: _Waiter, due: float) -> None:
        heapq.heappush(self.heap, (due, next(self.counter), waiter))
        self.wakeup.set()

    async def run(self, tg: TaskGroup) -> None:
        # Started from the first waiting instance's task, this task inherited its log
        # bindings; it serves every instance, so it logs under none of them.
        structlog.contextvars.unbind_contextvars("instance", "provider")
        clock = self.hub.clock
        while True:
            while self.heap and self.heap[0][2].cancelled:
                heapq.heappop(self.heap)
            if not self.heap:
                self.wakeup = anyio.Event()
                await self.wakeup.wait()
                continue
            due = self.heap[0][0]
            delay = due - clock.now()
            if delay > 0:
                self.wakeup = anyio.Event()
                with anyio.move_on_after(delay):
                    await self.wakeup.wait()
                continue
            await self.slots.acquire()
            batch = self._take_batch(clock.now())
            if not batch:
                self.slots.release()
                continue
            tg.start_soon(self._poll, batch)

    def _take_batch(self, now: float) -> list[_Waiter]:
        first = heapq.heappop(self.heap)[2]
        if first.cancelled:
            return []
        batch = [first]
        if self.poller.max_batch > 1 and not first.solo:
            skipped = []
            while self.heap and len(batch) < self.poller.max_batch and self.heap[0][0] <= now + self.interval / 2:
                entry = heapq.heappop(self.heap)
                waiter = entry[2]
                if waiter.cancelled:
                    continue
                if waiter.group == first.group and not waiter.solo:
                    batch.append(waiter)
                else:
                    skipped.append(entry)
            for entry in skipped:
                heapq.heappush(self.heap, entry)
        return batch

    async def _poll(self, batch: list[_Waiter]) -> None:
        try:
            caller = ReadCaller(self.hub.pipeline, self.connection,
                                wanted=lambda: any(not waiter.cancelled for waiter in batch))
            try:
                statuses: Sequence[WaitStatus] | None = await self.poller.poll(caller, [w.outputs for w in batch])
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
                    waiter.result = error
                    waiter.done.set()
                    continue
                assert statuses is not None
                status = statuses[index] if index < len(statuses) else WaitStatus.running()
                self.hub.saw(waiter.instance, status, self.poller.name)
                if status.state == "running":
                    if not waiter.cancelled:
                        self.add(waiter, now + self.interval)
                else:
                    waiter.result = status
                    waiter.done.set()
        finally:
            self.slots.release()


class PollHub:
    """All poll queues of one run; ``wait`` blocks an instance until its work is done."""

    def __init__(
        self, pipeline: Pipeline, clock: Clock, tg: TaskGroup, interval: float | None = None, scale: float = 1.0
    ) -> None:
        self.pipeline = pipeline
        self.clock = clock
        self._tg = tg
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
            self._tg.start_soon(queue.run, self._tg)
        return queue

    async def wait(self, connection: str, poller: Poller, outputs: Outputs, instance: str) -> WaitStatus:
        """Return the terminal status (succeeded or failed) of the thing ``outputs`` names.

        Raises the ``ProviderError`` of a poll that failed for good (after retries).
        """
        queue = self._queue(connection, poller)
        self.last_seen.pop(instance, None)
        waiter = _Waiter(instance, outputs, poller.group(outputs))
        queue.add(waiter, self.clock.now())
        try:
            await waiter.done.wait()
        finally:
            waiter.cancelled = True
            self.polls_by_poller[poller.name] = self.polls_by_poller.get(poller.name, 0) + waiter.polls
        if isinstance(waiter.result, BaseException):
            raise waiter.result
        assert waiter.result is not None
        self.last_seen.pop(instance, None)
        return waiter.result
