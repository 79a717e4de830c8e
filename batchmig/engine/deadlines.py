"""Many deadlines on one timer of the event loop.

Every step of every instance has a deadline, and nearly every step ends long before
it. A timer of the loop per step (``loop.call_at``, then its ``cancel``) costs uvloop
a libuv handle made, started, stopped and closed each time: about 0.8% of the
runner's CPU in the overhead scenario's profile (docs/benchmarks.md). Here the
deadlines wait in a heap and only the earliest has a timer of the loop; a deadline
that is no longer wanted is marked dead in place (``cancel``), and dead ones are
dropped as they come up, or all at once when they outnumber the live ones (a step's
deadline can be hours away: the heap stays about the size of the steps running).

A deadline fires exactly when a timer of its own would have: its callback runs from
the loop's timer callback once the loop's clock reaches it.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
from collections.abc import Callable
from typing import Any

COMPACT_SLACK = 64
"""Dead entries tolerated beyond the live ones before the heap is rebuilt without them."""


class Deadline:
    """One pending deadline: ``cancel`` it once it is no longer wanted."""

    __slots__ = ("_owner", "args", "callback", "when")

    def __init__(self, owner: Deadlines, when: float, callback: Callable[..., None] | None,
                 args: tuple[Any, ...]) -> None:
        self._owner = owner
        self.when = when
        self.callback = callback
        self.args = args

    def cancel(self) -> None:
        """Forget this deadline (a no-op once it fired or was cancelled)."""
        if self.callback is not None:
            self.callback = None
            self.args = ()
            self._owner._forget()


class Deadlines:
    """Run ``callback(*args)`` at each deadline (the loop's clock), on one timer of the loop."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Deadline]] = []
        self._order = itertools.count()
        self._live = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def at(self, when: float, callback: Callable[..., None], *args: Any) -> Deadline:
        """Call ``callback(*args)`` once ``loop.time()`` reaches ``when``, unless cancelled first."""
        deadline = Deadline(self, when, callback, args)
        heapq.heappush(self._heap, (when, next(self._order), deadline))
        self._live += 1
        if when < self._timer_at:
            self._arm(when)
        return deadline

    def after(self, seconds: float, callback: Callable[..., None], *args: Any) -> Deadline:
        return self.at(asyncio.get_running_loop().time() + seconds, callback, *args)

    def close(self) -> None:
        """Drop every deadline and the loop's timer (the run is over)."""
        for _, _, deadline in self._heap:
            deadline.callback = None
        self._heap.clear()
        self._live = 0
        self._disarm()

    def _forget(self) -> None:
        self._live -= 1
        if len(self._heap) > 2 * self._live + COMPACT_SLACK:
            self._heap = [entry for entry in self._heap if entry[2].callback is not None]
            heapq.heapify(self._heap)
            if not self._heap:
                self._disarm()

    def _arm(self, when: float) -> None:
        self._disarm()
        self._timer = asyncio.get_running_loop().call_at(when, self._fire)
        self._timer_at = when

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = math.inf

    def _fire(self) -> None:
        # Due: what the loop's timer was armed for (the loop may run it a little before
        # its clock reads that time, as it would a timer of the deadline's own) and
        # whatever else the clock has reached. A callback may add or cancel deadlines.
        due = max(self._timer_at, asyncio.get_running_loop().time())
        self._timer = None
        self._timer_at = math.inf
        while self._heap and (self._heap[0][0] <= due or self._heap[0][2].callback is None):
            deadline = heapq.heappop(self._heap)[2]
            callback, args = deadline.callback, deadline.args
            if callback is not None:
                deadline.callback = None
                deadline.args = ()
                self._live -= 1
                callback(*args)
        if self._heap and self._heap[0][0] < self._timer_at:
            self._arm(self._heap[0][0])
