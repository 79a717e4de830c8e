"""Run a plan: waves, concurrency, canaries, failure budgets, cutover gates, stop.

One anyio task group per run. Instances get a task only when a concurrency slot is
free (10,000 instances do not mean 10,000 tasks), one that finished its last instance
if there is one (``engine/workers.py``); each runs its provider's steps in its own
cancel scope (a step's timeout is a timer that cancels it), so one instance's failure
never touches another, and a stop (SIGINT/SIGTERM) cancels waiting but not calls on
the wire — the scope is cancelled through its worker's guard, which the pipeline holds
while a call is on the wire (``engine/workers.py``).

Every instance ends in exactly one status: succeeded, failed (with the cloud's code,
message and request id), skipped (with the reason), awaiting_cutover, interrupted, or
needs_attention — batchmig cannot tell safely what the cloud did (a reconcile that
cannot settle whether a call took effect, a started job that can no longer be
watched), so it stops driving the instance, says why, and never re-sends blindly.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.lowlevel
import structlog

from batchmig import logs
from batchmig.engine.observer import RunObserver
from batchmig.engine.pipeline import Pipeline, read_answer
from batchmig.engine.polling import PollHub
from batchmig.engine.workers import GuardedScope, Workers
from batchmig.errors import Failure, JournalError, OutcomeUnsureError, ProviderError, UnknownOutcomeError
from batchmig.journal import (
    AWAITING_CUTOVER,
    FAILED,
    FINAL_STATUSES,
    INTERRUPTED,
    NEEDS_ATTENTION,
    PENDING,
    RUNNING,
    SKIPPED,
    SUCCEEDED,
)
from batchmig.plan.model import Plan, PlannedInstance, Wave
from batchmig.plugin import CallStep, Instance, Step, WaitItem, WaitStatus, WaitStep
from batchmig.ratelimit import Clock, MonotonicClock
from batchmig.registry import Registry
from batchmig.store.base import JournalStore
from batchmig.store.fence import LeaseLost

log = logs.get_logger("batchmig.engine")

CUTOVER_CHECK_SECONDS = 1.0


def instance_token(run_id: str, instance_id: str) -> str:
    return hashlib.sha256(f"{run_id}/{instance_id}".encode()).hexdigest()[:8]


def instance_view(plan_instance: PlannedInstance, run_id: str) -> Instance:
    return Instance(
        plan_instance.id,
        plan_instance.provider,
        plan_instance.connection,
        plan_instance.settings,
        plan_instance.cutover,
        instance_token(run_id, plan_instance.id),
    )


class StepFailed(Exception):
    """A step ended the instance: ``status`` is failed, or needs_attention."""

    def __init__(self, failure: Failure, status: str = FAILED) -> None:
        super().__init__(failure.message)
        self.failure = failure
        self.status = status


NOT_COUNTED_OK = frozenset({FAILED, NEEDS_ATTENTION})
"""Statuses a wave's failure budget counts."""


def needs_attention(step: str, code: str, message: str, request_id: str | None = None) -> StepFailed:
    return StepFailed(Failure(NEEDS_ATTENTION, code, message, request_id, step), NEEDS_ATTENTION)


@dataclass
class Progress:
    """Live counts for the progress view and the metrics."""

    total: int
    by_status: dict[str, int] = field(default_factory=dict)
    by_wave: dict[tuple[str, str], int] = field(default_factory=dict)
    """(wave, status) -> the plan's instances: kept as they move, so the monitor's metrics
    (every ``monitor.INTERVAL``) need not count every instance again — at 100,000
    instances that walk cost more per call than at 10,000 (docs/benchmarks.md)."""

    def move(self, old: str | None, new: str, wave: str | None = None) -> None:
        """One instance from ``old`` to ``new``; ``wave``: its wave, when the plan has it."""
        if old is not None:
            self.by_status[old] -= 1
        self.by_status[new] = self.by_status.get(new, 0) + 1
        if wave is not None:
            if old is not None:
                self.by_wave[(wave, old)] -= 1
            self.by_wave[(wave, new)] = self.by_wave.get((wave, new), 0) + 1

    def instances(self) -> dict[tuple[str, str], int]:
        """(wave, status) -> the plan's instances in it now."""
        return {key: count for key, count in self.by_wave.items() if count}


class Engine:
    def __init__(
        self,
        plan: Plan,
        registry: Registry,
        pipeline: Pipeline,
        journal: JournalStore,
        run_id: str,
        *,
        clock: Clock | None = None,
        wait_for_cutover: bool = False,
        poll_scale: float = 1.0,
        observer: RunObserver | None = None,
    ) -> None:
        """``poll_scale`` divides the providers' poll intervals: a sandbox whose time
        runs 60 times faster is polled 60 times as often (a plan's ``run.poll_interval``
        is taken as given)."""
        self.plan = plan
        self.registry = registry
        self.pipeline = pipeline
        self.journal = journal
        self.run_id = run_id
        self.clock = clock or MonotonicClock()
        self.wait_for_cutover = wait_for_cutover
        self.poll_scale = poll_scale
        self.observer = observer or RunObserver()
        self.stopping = False
        self.stop_reason = ""
        records = journal.instances()
        self.status = {iid: rec.status for iid, rec in records.items()}
        self._records = records
        self._unresolved = journal.unresolved_calls()
        self.progress = Progress(total=len(plan.instances))
        self._failed: dict[str, int] = {}  # wave -> failed instances, kept by _set
        for iid, status in self.status.items():
            wave = plan.instance(iid).wave if plan.has_instance(iid) else None
            self.progress.move(None, status, wave)
            if status in NOT_COUNTED_OK and wave is not None:
                self._failed[wave] = self._failed.get(wave, 0) + 1
        self._scopes: dict[str, GuardedScope] = {}
        self._timed_out: set[str] = set()  # instances whose step's deadline passed (``_time_out``)
        self._deadlines = _Deadlines(self._time_out)
        self._settle: dict[str, Callable[[], None]] = {}
        self._at_cutover: set[str] = set()  # instance tasks waiting for a cutover release
        self._released: set[str] = journal.released_cutovers()
        self._release_events: dict[str, anyio.Event] = {}
        self._active = 0
        self._idle = anyio.Event()
        self._fatal: BaseException | None = None

    # ------------------------------------------------------------- status

    def _set(self, iid: str, status: str, **fields: Any) -> None:
        old = self.status.get(iid)
        self.status[iid] = status
        self.journal.set_instance(iid, status, **fields)
        if old != status:
            wave = self.plan.instance(iid).wave
            self.progress.move(old, status, wave)
            if (old in NOT_COUNTED_OK) != (status in NOT_COUNTED_OK):
                self._failed[wave] = self._failed.get(wave, 0) + (1 if status in NOT_COUNTED_OK else -1)
            self.observer.instance_changed(iid, wave, old, status, fields.get("error"))

    def stop(self, reason: str = "interrupted") -> None:
        """Start no new call; let calls on the wire finish; end the run resumable."""
        if self.stopping:
            return
        self.stopping = True
        self.stop_reason = reason
        log.warning("run.stopping", reason=reason)
        for scope in list(self._scopes.values()):
            scope.cancel()
        self._idle.set()

    # ---------------------------------------------------------------- run

    async def run(self) -> None:
        log.info("run.started", run=self.run_id, instances=len(self.plan.instances))
        self.observer.run_started(self.run_id, len(self.plan.instances))
        async with anyio.create_task_group() as tg:
            self._hub = PollHub(self.pipeline, self.clock, tg, self.plan.document.run.poll_interval, self.poll_scale)
            self._workers = Workers(tg, "instance")
            tg.start_soon(self._watch_cutovers)
            await self._run_waves(tg)
            await self._wait_until_idle()
            tg.cancel_scope.cancel()  # only the cutover watcher, poll queues and parked workers are left
        if self._fatal is not None:
            raise self._fatal
        await self.journal.flush()
        counts = await self.final_counts()
        log.info("run.finished", run=self.run_id, **counts)
        self.observer.run_finished(counts, self.stop_reason)

    async def final_counts(self) -> dict[str, int]:
        """The run's instances by status, as ``run.finished`` reports them."""
        return {k: v for k, v in self.progress.by_status.items() if v}

    async def _wait_until_idle(self) -> None:
        """Return when no instance task is left; let go of cutover waiters unless told to wait."""
        while self._active:
            if not self.stopping and not self.wait_for_cutover and self._active == len(self._at_cutover):
                for scope in list(self._scopes.values()):
                    scope.cancel()
            self._idle = anyio.Event()
            await self._idle.wait()

    async def _run_waves(self, tg: anyio.abc.TaskGroup) -> None:
        blocked = ""
        global_slots = anyio.Semaphore(self.plan.document.run.max_concurrency)
        for wave in self.plan.waves:
            if self.stopping:
                return
            if blocked:
                self._skip_all(wave.instances, blocked)
                continue
            blocked = await self._run_wave(wave, global_slots)
            if not self.stopping:
                counts: dict[str, int] = {}
                for iid in wave.instances:
                    counts[self.status[iid]] = counts.get(self.status[iid], 0) + 1
                self.observer.wave_finished(wave.name, counts)

    def _skip_all(self, ids: tuple[str, ...] | list[str], reason: str) -> None:
        for iid in ids:
            if self.status.get(iid) not in FINAL_STATUSES:
                self._set(iid, SKIPPED, error=Failure("skipped", "Skipped", reason))

    async def _run_wave(self, wave: Wave, global_slots: anyio.Semaphore) -> str:
        """Run one wave; return why later waves must not start ('' if they may)."""
        slots = anyio.Semaphore(wave.max_concurrency or 1_000_000)
        settled = _Countdown()
        log.info("wave.started", wave=wave.name, instances=len(wave.instances))
        self.observer.wave_started(wave.name, len(wave.instances))

        def failed_count() -> int:
            return self._failed.get(wave.name, 0)

        canaries = [iid for iid in wave.instances[: wave.canary] if self.status.get(iid) != SUCCEEDED]
        if canaries:
            done = _Countdown()
            for iid in canaries:
                await self._start(iid, slots, global_slots, settled, done)
            await done.wait()
            if self.stopping:
                return "stopped"
            bad = [iid for iid in canaries if self.status.get(iid) != SUCCEEDED]
            if bad:
                reason = f"canary {bad[0]} of wave {wave.name} did not succeed ({self.status.get(bad[0])})"
                log.error("wave.canary_failed", wave=wave.name, instance=bad[0])
                self.observer.canary_failed(wave.name, bad[0], reason)
                self._skip_all(list(wave.instances), reason)
                return reason
        budget = wave.failure_budget

        def exhausted() -> str:
            if budget is not None and not budget.allows(failed_count(), len(wave.instances)):
                return f"failure budget of wave {wave.name} exhausted ({failed_count()} failed)"
            return ""

        for iid in wave.instances[wave.canary:]:
            if self.stopping:
                return "stopped"
            if self.status.get(iid) in FINAL_STATUSES:
                continue
            started = await self._start(iid, slots, global_slots, settled, None, exhausted)
            if not started and not self.stopping:
                log.error("wave.budget_exhausted", wave=wave.name, failed=failed_count())
                self.observer.budget_exhausted(wave.name, failed_count(), exhausted())
                self._skip_all([i for i in wave.instances if self.status.get(i) in (PENDING, INTERRUPTED)],
                               exhausted())
                break
        await settled.wait()
        return "stopped" if self.stopping else exhausted()

    async def _start(
        self,
        iid: str,
        slots: anyio.Semaphore,
        global_slots: anyio.Semaphore,
        settled: _Countdown,
        finished: _Countdown | None,
        refuse: Callable[[], str] = lambda: "",
    ) -> bool:
        """Start ``iid`` once a slot is free; False if stopping or ``refuse`` says why not."""
        waited = await _acquire(slots)
        waited = await _acquire(global_slots) or waited
        # One plain turn of the loop per start (not a shielded one per semaphore): the
        # instances started so far run up to their first wait, so one that fails at once
        # counts against the wave's budget before the next starts. A start that waited
        # for a slot had its turn already (the loop ran until an instance freed one):
        # once the run is at its concurrency, that is every start.
        if not waited:
            await anyio.lowlevel.checkpoint()
        if self.stopping or refuse():
            slots.release()
            global_slots.release()
            return False
        settled.add()
        if finished is not None:
            finished.add()
        self._active += 1
        released = False

        def settle() -> None:
            nonlocal released
            if not released:
                released = True
                slots.release()
                global_slots.release()
                settled.done()

        async def task() -> None:
            try:
                await self._run_instance(self.plan.instance(iid), settle)
            finally:
                settle()
                if finished is not None:
                    finished.done()
                self._active -= 1
                self._idle.set()

        self._workers.start_soon(task)
        return True

    @property
    def polls_by_poller(self) -> dict[str, int]:
        hub = getattr(self, "_hub", None)
        return dict(hub.polls_by_poller) if hub else {}

    # ------------------------------------------------------------ instance

    async def _run_instance(self, pinst: PlannedInstance, settle: Callable[[], None]) -> None:
        iid = pinst.id
        self._settle[iid] = settle
        provider = self.registry.provider(pinst.provider)
        view = instance_view(pinst, self.run_id)
        steps = list(provider.steps(view))
        record = self._records.get(iid)
        index = record.step if record else 0
        outputs: dict[str, Any] = dict(record.outputs) if record else {}
        unresolved = self._unresolved.pop(iid, [])
        # The outputs this task last wrote to the instance's journal row: a step that
        # added none (most do not) writes none, the row keeps them (each write masks and
        # encodes the whole dict again).
        journaled: dict[str, Any] | None = None
        scope = GuardedScope()  # cancelled through its worker's guard: never while a call is on the wire
        self._scopes[iid] = scope
        # The instance's task runs in a context of its own: bound here, nothing needs
        # restoring when it ends (``bound_contextvars`` would save and restore them).
        structlog.contextvars.bind_contextvars(instance=iid, provider=pinst.provider)
        try:
            with scope:
                if self.stopping:
                    scope.cancel()
                _check_journaled_step(steps, index, record.step_name if record else None)
                self._set(iid, RUNNING, step=index, step_name=steps[index].name if index < len(steps) else None)
                log.info("instance.started", step=index)
                while index < len(steps):
                    step = steps[index]
                    earlier = [call.id for call in unresolved if call.step == index]
                    outputs = await self._run_step(pinst, view, index, step, outputs, earlier, scope)
                    index += 1
                    if index < len(steps):  # after the last step, the one write below says it all
                        self._set(iid, RUNNING, step=index, step_name=steps[index].name,
                                  outputs=None if outputs is journaled else outputs)
                        journaled = outputs
                self._set(iid, SUCCEEDED, step=index, outputs=None if outputs is journaled else outputs)
                log.info("instance.succeeded")
            if scope.cancelled_caught and self.status.get(iid) != AWAITING_CUTOVER:
                self._interrupted(iid, index)
        except StepFailed as exc:
            self._set(iid, exc.status, error=exc.failure)
            log.error("instance.needs_attention" if exc.status == NEEDS_ATTENTION else "instance.failed",
                      **exc.failure.as_dict())
        except LeaseLost:
            log.warning("instance.lease_lost", step=index)  # another runner goes on with it
        except JournalError as exc:
            self._fatal = exc
            self.stop("the journal cannot be written")
        except Exception as exc:  # a provider bug must not take the run down
            self._set(iid, FAILED, error=Failure("internal", type(exc).__name__, f"provider error: {exc}"))
            log.exception("instance.crashed", step=index)
        finally:
            self._scopes.pop(iid, None)
            self._settle.pop(iid, None)
            self._timed_out.discard(iid)
            self.pipeline.admitting.discard(iid)
            settle()

    def _interrupted(self, iid: str, step: int) -> None:
        """The instance's task was cancelled (the run stops): it goes on at ``step`` next time."""
        self._set(iid, INTERRUPTED)
        log.info("instance.interrupted", step=step)

    async def _run_step(
        self, pinst: PlannedInstance, view: Instance, index: int, step: Step, outputs: dict[str, Any],
        unresolved: list[int], scope: GuardedScope,
    ) -> dict[str, Any]:
        iid = pinst.id
        started = time.time()
        timeout = pinst.timeout(step.name)
        self.observer.step_started(iid, pinst.provider, step.name)
        # The step's deadline cancels its instance's scope (``_time_out``): not a cancel
        # scope of its own per step (creating, entering and leaving one cost about 4% of
        # the runner's CPU), nor a timer of the loop's per step (``_Deadlines``).
        self._deadlines.arm(iid, timeout, scope)
        try:
            try:
                if isinstance(step, CallStep):
                    if step.cutover and pinst.cutover == "manual":
                        await self._await_cutover(iid, step.name)
                    new = await self._call(pinst, index, step, outputs, unresolved)
                else:
                    new = await self._wait(pinst, view, step, outputs)
            finally:
                self._deadlines.disarm(iid)
            if iid in self._timed_out:  # it ended as its time ran out: its instance's scope is cancelled
                raise TimeoutError
        except (TimeoutError, anyio.get_cancelled_exc_class()) as exc:
            if not isinstance(exc, TimeoutError) and iid not in self._timed_out:
                raise  # a stop, a lost lease: the instance is interrupted, not failed
            self._step_done(pinst, index, step.name, started, FAILED)
            seen = self._hub.last_seen.pop(iid, None) if isinstance(step, WaitStep) else None
            last = f"; last seen: {_describe(seen)}" if seen is not None else ""
            message = f"step {step.name} did not finish within {_human(timeout)}{last}"
            raise StepFailed(Failure("timeout", "StepTimeout", message, step=step.name)) from None
        except LeaseLost:
            raise  # not a failure of the instance: another runner goes on with it
        except OutcomeUnsureError as exc:
            self._step_done(pinst, index, step.name, started, NEEDS_ATTENTION)
            raise needs_attention(step.name, exc.code, exc.message, exc.request_id) from exc
        except ProviderError as exc:
            self._step_done(pinst, index, step.name, started, FAILED)
            raise StepFailed(Failure.from_error(exc, step.name)) from exc
        except StepFailed as exc:
            self._step_done(pinst, index, step.name, started, exc.status)
            raise
        self._step_done(pinst, index, step.name, started, SUCCEEDED)
        return {**outputs, **new} if new else outputs  # the same dict: nothing new to journal

    def _time_out(self, iid: str, scope: GuardedScope) -> None:
        """A step's deadline passed: cancel its instance's scope, unless something else
        (a stop, a lost lease) already did — then the instance is interrupted, as before
        a step's own deadline scope would have let it be."""
        if not scope.cancel_called:
            self._timed_out.add(iid)
            scope.cancel()

    def _step_done(self, pinst: PlannedInstance, index: int, name: str, started: float, status: str) -> None:
        self.journal.step_finished(pinst.id, index, name, started, status)
        self.observer.step_finished(pinst.id, pinst.provider, name, time.time() - started, status)

    async def _wait(
        self, pinst: PlannedInstance, view: Instance, step: WaitStep, outputs: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            status = await self._hub.wait(pinst.connection, step.poller, WaitItem(view, dict(outputs), step.context),
                                          step.name)
        except LeaseLost:
            raise
        except ProviderError as exc:
            # The cloud's work was started and may well still run: giving up on it
            # silently would orphan it, and "failed" would be a guess.
            raise needs_attention(
                step.name, exc.code,
                f"stopped watching {step.name} (the cloud's work may still be running): {exc.message}",
                exc.request_id,
            ) from exc
        if status.state == "failed":
            raise StepFailed(Failure("failed", status.code or "JobFailed", status.message, status.request_id,
                                     step.name))
        return dict(status.outputs)

    async def _call(
        self, pinst: PlannedInstance, index: int, step: CallStep, outputs: dict[str, Any], unresolved: list[int]
    ) -> dict[str, Any]:
        call = step.build(outputs)
        if call.mutating:
            result, _ = await self.pipeline.mutate(pinst.connection, pinst.id, index, step, outputs, unresolved, call)
            return dict(result)
        for attempt in range(1, self.pipeline.retry.max_attempts + 1):
            answer = await self.pipeline.read(pinst.connection, call)
            try:
                return read_answer(step, answer)
            except UnknownOutcomeError:
                if attempt == self.pipeline.retry.max_attempts:
                    raise
        raise AssertionError("unreachable")

    # ------------------------------------------------------------- cutover

    async def _await_cutover(self, iid: str, step_name: str) -> None:
        if iid not in self._released and iid in await self.journal.released_now():
            self._released.add(iid)  # released while this runner worked: a pre-approval
        if iid in self._released:
            return
        self._set(iid, AWAITING_CUTOVER)
        log.info("cutover.awaiting", step=step_name)
        event = self._release_events.setdefault(iid, anyio.Event())
        self._settle[iid]()  # the wave may go on while this instance waits for its operator
        self._at_cutover.add(iid)
        self._idle.set()
        try:
            await event.wait()
        finally:
            self._at_cutover.discard(iid)
        log.info("cutover.released", step=step_name)
        self._set(iid, RUNNING)

    async def _watch_cutovers(self) -> None:
        while True:
            await anyio.sleep(CUTOVER_CHECK_SECONDS)
            if not self._release_events:
                continue
            released = await self.journal.released_now()
            for iid in released - self._released:
                self._released.add(iid)
                event = self._release_events.pop(iid, None)
                if event is not None:
                    event.set()


async def _acquire(slots: anyio.Semaphore) -> bool:
    """``slots.acquire()`` without its shielded turn of the event loop when a slot is free;
    True if it had to wait for one."""
    try:
        slots.acquire_nowait()
    except anyio.WouldBlock:
        await slots.acquire()
        return True
    return False


class _Deadlines:
    """The running steps' deadlines, on one timer of the event loop.

    A timer per step (``loop.call_at`` and its ``cancel``) cost about 2.3 µs alone with
    a thousand pending, and uvloop closes each one in a later pass of its loop; arming a
    deadline here is a dictionary entry. The one timer is set for the earliest deadline
    when a sooner one comes in; when it goes off, the deadlines that passed fire and it
    is set for the earliest left (a step that ended took its deadline with it: the timer
    then finds nothing due, and looks again). Timeouts are minutes to hours, most steps
    end long before theirs: the timer rarely goes off.
    """

    EARLY = 0.002
    """A deadline this close is due now: the loop's timers may go off a millisecond early
    (uvloop counts whole milliseconds)."""

    def __init__(self, fire: Callable[[str, GuardedScope], None]) -> None:
        self._fire = fire
        self._due: dict[str, tuple[float, GuardedScope]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._armed = math.inf

    def arm(self, iid: str, seconds: float, scope: GuardedScope) -> None:
        """``fire(iid, scope)`` in ``seconds``, unless ``disarm(iid)`` comes first."""
        loop = asyncio.get_running_loop()
        when = loop.time() + seconds
        self._due[iid] = (when, scope)
        if when < self._armed:
            self._set(loop, when)

    def disarm(self, iid: str) -> None:
        self._due.pop(iid, None)

    def _set(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._armed = when
        self._timer = loop.call_at(when, self._expire, loop) if when != math.inf else None

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer, self._armed = None, math.inf
        due = loop.time() + self.EARLY
        passed = [(iid, scope) for iid, (when, scope) in self._due.items() if when <= due]
        for iid, scope in passed:
            del self._due[iid]
            self._fire(iid, scope)
        if self._due:
            self._set(loop, min(when for when, _ in self._due.values()))


class _Countdown:
    """Wait until as many ``done()`` as ``add()`` calls have happened."""

    def __init__(self) -> None:
        self.pending = 0
        self.event = anyio.Event()

    def add(self) -> None:
        self.pending += 1

    def done(self) -> None:
        self.pending -= 1
        if self.pending <= 0:
            self.event.set()

    async def wait(self) -> None:
        if self.pending > 0:
            self.event = anyio.Event() if self.event.is_set() else self.event
            await self.event.wait()


def _check_journaled_step(steps: list[Step], index: int, journaled: str | None) -> None:
    """Refuse to go on when the provider's steps no longer match the journal (a plugin
    changed under a run): an index past the end would otherwise read as "all done"."""
    current = steps[index].name if index < len(steps) else None
    if index > len(steps) or (journaled is not None and journaled != current):
        raise needs_attention(
            journaled or f"step {index}", "StepsChanged",
            f"the journal says step {index} ({journaled or 'the end'}) is next, but the provider's steps are now "
            f"{[step.name for step in steps]}; batchmig will not guess where this instance stands",
        )


def _describe(status: WaitStatus) -> str:
    text = status.message or status.state
    return f"{text} (a status batchmig does not know: {status.unrecognised})" if status.unrecognised else text


def _human(seconds: float) -> str:
    if seconds >= 3600:
        return f"{seconds / 3600:g}h"
    if seconds >= 60:
        return f"{seconds / 60:g}m"
    return f"{math.ceil(seconds)}s"
