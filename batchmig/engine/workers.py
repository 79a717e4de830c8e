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
18 µs per call inside a run (two `current_task()` lookups, a weak dictionary, set
bookkeeping; docs/benchmarks.md). A worker holds that back more cheaply: it lives in
one shielded scope, so nothing from outside reaches it but through its ``Guard``,
which defers every cancel while the task ``holds`` it (a send) and delivers it as the
send ends. An instance's scope (``GuardedScope``) is the worker's own scope cancelled
through the guard, its cancellation caught where the instance's scope ends; a worker
whose job was cancelled ends after it. When the task group is cancelled, a watcher
task of the workers cancels each worker through its guard.
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

    __slots__ = ("_deferred", "group_cancelled", "held", "loop", "scope", "task")

    def __init__(self, task: asyncio.Task[Any], loop: asyncio.AbstractEventLoop, scope: anyio.CancelScope) -> None:
        self.task = task
        self.loop = loop
        self.scope = scope
        """The worker's own scope, shielded: cancelled only through the guard."""
        self.held = 0
        self.group_cancelled = False
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
    never while a call of the job is on the wire); anyio's own outside a worker.

    In a worker it is no scope of anyio's (making, entering and leaving one cost about
    18 µs per instance inside a run, docs/benchmarks.md): cancelling it cancels the
    worker's own scope, the cancellation that reaches the job's code is caught here, and
    the worker ends after the job instead of taking the next one (``Workers._work``): a
    cancelled instance is rare (a stop, a step's deadline, a lost lease), a new worker
    costs about 30 µs. A cancel of the task group's (``Guard.group_cancelled``) is not
    caught: it goes on to the worker, as it went through anyio's scope."""

    __slots__ = ("_guard", "_scope", "_state", "cancel_called", "cancelled_caught")

    def __init__(self) -> None:
        self._guard = current_guard()
        self._scope = cancel_scope() if self._guard is None else None
        self._state = 0  # 0 not entered yet, 1 entered, 2 left
        self.cancel_called = False
        self.cancelled_caught = False

    def __enter__(self) -> GuardedScope:
        if self._scope is not None:
            self._scope.__enter__()
        self._state = 1
        if self.cancel_called and self._guard is not None:
            self._guard.cancel(self._guard.scope)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: Any) -> bool:
        self._state = 2
        if self._scope is not None:
            swallowed = self._scope.__exit__(exc_type, exc, tb)
            self.cancelled_caught = self._scope.cancelled_caught
            return swallowed
        assert self._guard is not None
        if self.cancel_called and isinstance(exc, asyncio.CancelledError) and not self._guard.group_cancelled:
            self.cancelled_caught = True
            return True
        return False

    def cancel(self) -> None:
        if self.cancel_called:
            return
        self.cancel_called = True
        if self._scope is not None:
            self._scope.cancel()
        elif self._state == 1:  # (before it is entered: when it is; once it is left, nothing to cancel)
            assert self._guard is not None
            self._guard.cancel(self._guard.scope)


class Workers:
    """Run jobs in tasks of ``tg``, reusing the tasks that are done with theirs."""

    def __init__(self, tg: TaskGroup, name: str) -> None:
        self._tg = tg
        self._name = name
        self._parked: list[asyncio.Future[Job]] = []
        self._running: set[Guard] = set()
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
            for guard in list(self._running):
                guard.group_cancelled = True
                guard.cancel(guard.scope)

    async def _work(self, func: Callable[..., Awaitable[Any]], args: tuple[Any, ...]) -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        scope = cancel_scope(shield=True)  # the task group's cancellation comes through ``_watch``
        guard = Guard(task, loop, scope)
        _GUARD.set(guard)
        self._running.add(guard)
        try:
            with scope:
                if self._cancelled:  # started after the group was cancelled: its job stops at its first wait
                    guard.group_cancelled = True
                    scope.cancel()
                while True:
                    await func(*args)
                    if scope.cancel_called:  # its job was cancelled (``GuardedScope``): the next goes to another
                        return
                    parked: asyncio.Future[Job] = loop.create_future()
                    self._parked.append(parked)
                    func, args = await parked
        finally:
            self._running.discard(guard)
