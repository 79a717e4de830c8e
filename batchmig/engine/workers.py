"""Reused tasks: an instance or a poll handed to a parked task instead of a new one.

The engine runs each instance, and each poll of a batch, in a task of the run's task
group. Spawning an anyio task costs about 30 µs of CPU (its handle, its cancel-scope
bookkeeping, a new asyncio task); handing a job to a task that finished its last one
and waits for the next costs about 3 µs (a future). ``Workers`` keeps the tasks that
ran out of work parked and gives them the next job; it spawns a task only when none
is parked, so there are never more tasks than jobs running at once were.

A worker runs its jobs one after another in one task, so in one context: a job must
not leave context variables behind that the next one would read (the engine binds
an instance's log fields afresh at each instance's start).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from anyio.abc import TaskGroup

Job = tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]


class Workers:
    """Run jobs in tasks of ``tg``, reusing the tasks that are done with theirs."""

    def __init__(self, tg: TaskGroup, name: str) -> None:
        self._tg = tg
        self._name = name
        self._parked: list[asyncio.Future[Job]] = []

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """``tg.start_soon(func, *args)``, in a parked worker if there is one."""
        while self._parked:
            parked = self._parked.pop()
            if not parked.done():  # a worker cancelled while parked (the run's end) is gone
                parked.set_result((func, args))
                return
        self._tg.start_soon(self._work, func, args, name=self._name)

    async def _work(self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await func(*args)
            parked: asyncio.Future[Job] = loop.create_future()
            self._parked.append(parked)
            func, args = await parked
