"""Reused tasks, and their cancellation held back while a call is on the wire.

The engine runs each instance, and each poll of a batch, in a task of the run's task
group. Spawning an anyio task costs about 30 µs of CPU (its handle, its cancel-scope
bookkeeping, a new asyncio task); handing a job to a task that finished its last one
and waits for the next costs about 3 µs (a future). ``Workers`` keeps the tasks that
ran out of work parked and gives them the next job; it spawns a task only when none
is parked, so there are never more tasks than jobs running at once were.

A worker runs its jobs one after another in one task, so in one context: a job must
not leave context variables behind that the next one would read (the engine binds
an instance's log fields afresh at each instance's start).

A call on the wire must finish and be accounted even when its instance is stopped,
times out or loses its lease, or the run's task group is cancelled. anyio's way is a
shielded cancel scope around each send: making, entering and leaving one cost about
11 µs per call inside a run (two `current_task()` lookups, a weak dictionary, set
bookkeeping; docs/benchmarks.md). A worker holds that back more cheaply: it lives in
one shielded scope, so nothing from outside reaches it but through its ``Guard``;
the scopes inside it (an instance's) are cancelled through the guard too
(``GuardedScope``), and the guard defers every such cancel while the task ``holds``
it (a send), delivering it as the send ends. When the task group is cancelled, a
watcher task of the workers cancels each worker through its guard.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

import anyio
from anyio.abc import TaskGroup

Job = tuple[Callable[..., Awaitable[Any]], tuple[Any, ...]]

_SCOPE_CLASS: list[type[anyio.CancelScope]] = []


def cancel_scope(*, shield: bool = False) -> anyio.CancelScope:
    """``anyio.CancelScope(shield=shield)``, made by the running backend's own class.

    ``anyio.CancelScope(...)`` looks the running backend up at every scope (sniffio, the
    current task, a dict): measured in the overhead run (thread CPU time around it), 6.2
    of the 14 µs a call's shielded scope cost went to making it, 3.2 by the class itself.
    batchmig runs on asyncio alone (``eventloop.py``): the class is asked for once.
    """
    if not _SCOPE_CLASS:
        _SCOPE_CLASS.append(type(anyio.CancelScope()))
    return _SCOPE_CLASS[0](shield=shield)


class Guard:
    """One worker task's cancellation, deferred while the task holds the guard."""

    __slots__ = ("_deferred", "held", "loop", "task")

    def __init__(self, task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop) -> None:
        self.task = task
        self.loop = loop
        self.held = 0
        self._deferred: list[anyio.CancelScope] = []

    def cancel(self, scope: anyio.CancelScope) -> None:
        """``scope.cancel()`` now, or when the task lets go of the guard (``release``)."""
        if self.held:
            self._deferred.append(scope)
        else:
            scope.cancel()

    def hold(self) -> None:
        self.held += 1

    def release(self) -> None:
        self.held -= 1
        if not self.held and self._deferred:
            deferred, self._deferred = self._deferred, []
            for scope in deferred:
                scope.cancel()


_GUARD: ContextVar[Guard | None] = ContextVar("batchmig_worker_guard", default=None)

def _running_task_reader() -> Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]:
    """``asyncio.current_task(loop)``, read from asyncio's dict of running tasks where it
    keeps one (3.11 to 3.13): there ``current_task`` is a function of Python's that cost
    about 3 µs per call inside a run, the dict's ``get`` 27 ns alone."""
    tasks = getattr(asyncio.tasks, "_current_tasks", None)
    return tasks.get if isinstance(tasks, dict) else asyncio.current_task


_running_task = _running_task_reader()


def current_guard() -> Guard | None:
    """The running worker's guard; None in any other task (one a job started inherits
    the worker's context, but not its guard)."""
    guard = _GUARD.get()
    if guard is not None and _running_task(guard.loop) is guard.task:
        return guard
    return None


class GuardedScope:
    """A cancel scope for a job in a worker, cancelled through the worker's guard (so
    never while a call of the job is on the wire); a plain one outside a worker."""

    __slots__ = ("_guard", "_scope", "cancel_called")

    def __init__(self) -> None:
        self._scope = cancel_scope()
        self._guard = current_guard()
        self.cancel_called = False

    def __enter__(self) -> GuardedScope:
        self._scope.__enter__()
        return self

    def __exit__(self, *exc: Any) -> bool:
        return self._scope.__exit__(*exc)

    def cancel(self) -> None:
        if not self.cancel_called:
            self.cancel_called = True
            if self._guard is None:
                self._scope.cancel()
            else:
                self._guard.cancel(self._scope)

    @property
    def cancelled_caught(self) -> bool:
        return self._scope.cancelled_caught


class Workers:
    """Run jobs in tasks of ``tg``, reusing the tasks that are done with theirs."""

    def __init__(self, tg: TaskGroup, name: str) -> None:
        self._tg = tg
        self._name = name
        self._parked: list[asyncio.Future[Job]] = []
        self._running: dict[Guard, anyio.CancelScope] = {}
        self._watched = False
        self._cancelled = False

    def start_soon(self, func: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """``tg.start_soon(func, *args)``, in a parked worker if there is one."""
        while self._parked:
            parked = self._parked.pop()
            if not parked.done():  # a worker cancelled while parked (the run's end) is gone
                parked.set_result((func, args))
                return
        if not self._watched:
            self._watched = True
            self._tg.start_soon(self._watch, name=f"{self._name} watcher")
        self._tg.start_soon(self._work, func, args, name=self._name)

    async def _watch(self) -> None:
        """Cancelled with the task group: cancel every worker through its guard."""
        try:
            await anyio.sleep_forever()
        finally:
            self._cancelled = True
            for guard, scope in list(self._running.items()):
                guard.cancel(scope)

    async def _work(self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        guard = Guard(task, loop)
        _GUARD.set(guard)
        scope = cancel_scope(shield=True)  # the task group's cancellation comes through ``_watch``
        self._running[guard] = scope
        try:
            with scope:
                if self._cancelled:  # started after the group was cancelled: its job stops at its first wait
                    scope.cancel()
                while True:
                    await func(*args)
                    parked: asyncio.Future[Job] = loop.create_future()
                    self._parked.append(parked)
                    func, args = await parked
        finally:
            del self._running[guard]
