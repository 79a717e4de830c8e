"""Drive one instance's steps against an emulator, the way the engine does, minus the run.

``StepDriver`` is the engine for one instance at a time, without limiter, journal or
scheduler, so a plugin's tests can exercise its steps and emulator directly: build →
``Connection.prepare`` → real HTTP → ``Connection.parse`` → ``read``; wait steps poll
with ``WaitItem``s (moving a ``FakeSandboxContext``'s clock between polls); mutating
calls whose answer is lost are reconciled — or, for an idempotent step, sent again —
exactly as the pipeline does. It is also the read-only ``Caller`` handed to
``reconcile``, pollers and ``preflight``.

``run(..., lose={"create-job"})`` makes the server act but throws its answer away:
the step's ``reconcile`` must then recover what ``read`` would have produced (a value
no lookup can recover may come back None), and an idempotent step's repeat must carry
the same client token. Either failure is an ``AssertionError`` naming the step.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from batchmig.engine.transport import HttpTransport
from batchmig.errors import ThrottleError, TransientError, UnknownOutcomeError
from batchmig.plugin import (
    Answer,
    Call,
    CallStep,
    Connection,
    HttpRequest,
    HttpResponse,
    Instance,
    Outputs,
    Provider,
    Step,
    WaitItem,
    WaitStatus,
    WaitStep,
)

Send = Callable[[HttpRequest], Awaitable[HttpResponse]]


@contextlib.asynccontextmanager
async def http_client(timeout: float = 30.0) -> AsyncIterator[Send]:
    """The engine's HTTP transport (real sockets, its error mapping) as a ``send`` function;
    also the ``HttpFetch`` a provider's ``connect`` takes."""
    async with HttpTransport(timeout) as transport:
        yield transport.send


class _Advancing(Protocol):
    def advance(self, seconds: float) -> None: ...


@dataclass
class StepRun:
    """Where a ``StepDriver.run`` ended.

    ``state`` is ``succeeded``, ``failed`` (``step`` and ``status`` say which wait
    and why), ``stopped`` (at ``stop_before``) or ``awaiting_cutover`` (at the
    cutover step, when not approved); pass it as ``resume=`` to go on from there.
    ``waits`` counts the polls of every wait step.
    """

    state: Literal["succeeded", "failed", "stopped", "awaiting_cutover"]
    instance: Instance
    steps: Sequence[Step]
    outputs: dict[str, Any]
    step: str | None = None
    status: WaitStatus | None = None
    waits: dict[str, int] = field(default_factory=dict)

    def item(self, step: str | None = None) -> WaitItem:
        """The ``WaitItem`` a poller gets for the wait step ``step`` (default: where the run stopped)."""
        wait = wait_step(self.steps, step or self.step or "")
        return WaitItem(self.instance, dict(self.outputs), wait.context)


def call_step(steps: Sequence[Step], name: str) -> CallStep:
    """The call step called ``name``."""
    [step] = [step for step in steps if step.name == name]
    assert isinstance(step, CallStep), f"{name} is not a CallStep"
    return step


def wait_step(steps: Sequence[Step], name: str) -> WaitStep:
    """The wait step called ``name``."""
    [step] = [step for step in steps if step.name == name]
    assert isinstance(step, WaitStep), f"{name} is not a WaitStep"
    return step


def assert_same_outputs(step: str, recovered: Outputs, read: Outputs) -> None:
    """What ``reconcile`` recovered equals what ``read`` gave (None: a value no lookup can recover)."""
    assert recovered.keys() == read.keys(), f"{step}: reconcile gave {dict(recovered)}, read gave {dict(read)}"
    for key, value in recovered.items():
        assert value is None or value == read[key], f"{step}.{key}: reconcile {value!r} != read {read[key]!r}"


class StepDriver:
    """The engine for one instance at a time (see the module docstring).

    ``send`` is the HTTP client (``http_client()``'s, or the ``http_send``
    fixture); ``provider`` gives the steps when ``run`` is not handed any;
    ``clock`` is moved ``poll_step`` seconds between polls and by ``sleep`` (a
    ``FakeSandboxContext``, or None to poll without moving time). ``calls`` lists
    the actions sent, in order.
    """

    def __init__(
        self,
        connection: Connection,
        send: Send,
        *,
        provider: Provider | None = None,
        clock: _Advancing | None = None,
        poll_step: float = 30.0,
        max_polls: int = 1000,
        attempts: int = 5,
    ) -> None:
        self.connection = connection
        self.provider = provider
        self._send = send
        self.clock = clock
        self.poll_step = poll_step
        self.max_polls = max_polls
        self.attempts = attempts
        self.calls: list[str] = []

    # --------------------------------------------------------------- Caller

    async def send(self, call: Call) -> Answer:
        """One attempt: prepare, send over real HTTP, parse (mutating calls too)."""
        self.calls.append(call.action)
        request = await self.connection.prepare(call)
        return self.connection.parse(call, await self._send(request))

    async def read(self, call: Call) -> Answer:
        """A read with the pipeline's retries (throttle, transient, unknown outcome)."""
        assert not call.mutating, f"a Caller refuses mutating calls ({call.action})"
        for attempt in range(1, self.attempts + 1):
            try:
                return await self.send(call)
            except (ThrottleError, TransientError, UnknownOutcomeError):
                if attempt == self.attempts:
                    raise
        raise AssertionError("unreachable")

    async def sleep(self, seconds: float) -> None:
        if self.clock is not None:
            self.clock.advance(seconds)

    # ----------------------------------------------------------------- steps

    async def run(
        self,
        instance: Instance,
        steps: Sequence[Step] | None = None,
        outputs: Outputs | None = None,
        *,
        lose: Iterable[str] = (),
        stop_before: str | None = None,
        approve_cutover: bool = True,
        resume: StepRun | None = None,
    ) -> StepRun:
        """Run ``steps`` of ``instance`` in order (from ``resume``'s stop, if given);
        without ``steps``, all of them (``provider.steps(instance)``)."""
        if steps is None:
            assert self.provider is not None, "pass steps, or give the StepDriver a provider"
            steps = self.provider.steps(instance)
        lost = set(lose)
        run = StepRun("succeeded", instance, steps, dict(resume.outputs if resume else outputs or {}))
        if resume is not None:
            run.waits = dict(resume.waits)
        start = [step.name for step in steps].index(resume.step) if resume and resume.step else 0
        for index, step in enumerate(steps[start:]):
            resumed_here = resume is not None and index == 0
            if step.name == stop_before and not resumed_here:
                return StepRun("stopped", instance, steps, run.outputs, step.name, waits=run.waits)
            if isinstance(step, CallStep):
                if step.cutover and not approve_cutover and not resumed_here:
                    return StepRun("awaiting_cutover", instance, steps, run.outputs, step.name, waits=run.waits)
                run.outputs |= await self.call(step, run.outputs, lose=step.name in lost)
                continue
            status, polls = await self.wait(step, WaitItem(instance, dict(run.outputs), step.context))
            run.waits[step.name] = polls
            if status.state == "failed":
                return StepRun("failed", instance, steps, run.outputs, step.name, status, run.waits)
            run.outputs |= status.outputs
        return run

    async def call(self, step: CallStep, outputs: Outputs, *, lose: bool = False) -> Outputs:
        """One call step, with the pipeline's handling of refusals and lost answers."""
        call = step.build(outputs)
        if not call.mutating:
            return step.read(await self.read(call))
        for _ in range(self.attempts):
            try:
                answer = await self.send(call)
            except ThrottleError:  # refused before acting: safe to send again
                continue
            except (UnknownOutcomeError, TransientError):
                if not step.idempotent:
                    found = await self.reconcile(step, outputs)
                    if found is not None:
                        return found
                call = step.build(outputs)
                continue
            read = step.read(answer)
            if lose:
                return await self._recover(step, outputs, call, read)
            return read
        raise AssertionError(f"{step.name}: no answer after {self.attempts} attempts")

    async def _recover(self, step: CallStep, outputs: Outputs, sent: Call, read: Outputs) -> Outputs:
        """The answer to ``sent`` was lost: recover as the engine would, and compare."""
        if step.idempotent:
            again = step.build(outputs)
            assert again.client_token == sent.client_token, (
                f"{step.name}: the client token changed between attempts ({sent.client_token} -> {again.client_token})"
            )
            repeated = step.read(await self.send(again))
            assert_same_outputs(step.name, repeated, read)
            return repeated
        recovered = await self.reconcile(step, outputs)
        assert recovered is not None, f"{step.name}: the call took effect but reconcile did not find it"
        assert_same_outputs(step.name, recovered, read)
        return recovered

    async def reconcile(self, step: CallStep, outputs: Outputs) -> Outputs | None:
        """``step.reconcile`` with this driver as the caller."""
        assert step.reconcile is not None, f"{step.name} is mutating but has no reconcile"
        return await step.reconcile(self, outputs)

    async def wait(self, step: WaitStep, item: WaitItem) -> tuple[WaitStatus, int]:
        """Poll ``item`` alone until it is no longer running; returns (status, polls)."""
        for polls in range(1, self.max_polls + 1):
            [status] = await step.poller.poll(self, [item])
            if status.state != "running":
                return status, polls
            await self.sleep(self.poll_step)
        raise AssertionError(f"{step.name} still running after {self.max_polls} polls")

    async def poll(self, step: WaitStep, items: Sequence[WaitItem]) -> list[WaitStatus]:
        """One poll of a batch, as the engine's poll queue makes it."""
        return list(await step.poller.poll(self, items))

