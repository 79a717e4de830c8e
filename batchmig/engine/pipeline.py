"""The one call pipeline every API call of every provider goes through.

    limiter (provider, account, region, action)
      → journal intent (mutating calls only; once admitted, and durable before sending)
      → Connection.prepare (sign, fresh each attempt) → HTTP → Connection.parse
      → retry policy: throttle / transient retry with backoff and jitter within the
        per-call attempts and the run's retry budget; permanent errors fail; an unknown
        outcome of a mutating call is reconciled (looked up), never blindly re-sent —
        unless its step is idempotent (a client token), then the same call is re-sent
      → journal outcome (with the answer's request id)

A mutating step whose earlier call has no resolved outcome — the process died with
it on the wire, or while it reconciled a lost answer — is reconciled before anything
is sent. A reconcile that cannot settle it (``OutcomeUnsureError``, or its own reads
failing for good) stops the instance as needs attention; nothing is re-sent.

HTTP is ``engine/transport.py``: one boundary where transport failures become the
same errors for every provider, and where the pipeline's last look (``LAST_LOOK``)
runs right before a request's first byte is written.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from batchmig.engine.traffic import CALL, RETRY, THROTTLE, Traffic
from batchmig.engine.transport import LAST_LOOK, TIMEOUT
from batchmig.engine.workers import cancel_scope, current_guard
from batchmig.errors import (
    Failure,
    NotSentError,
    OutcomeUnsureError,
    PermanentError,
    ProviderError,
    ThrottleError,
    TransientError,
    UnknownOutcomeError,
)
from batchmig.journal import InvocationLedger, Journal
from batchmig.plugin import Answer, Call, CallStep, Connection, HttpRequest, HttpResponse, Outputs
from batchmig.ratelimit import Clock, LimitKey, MonotonicClock, RateLimiter, Release, SlotMissed
from batchmig.store.base import JournalStore
from batchmig.store.fence import Fence, FenceClosed, LeaseLost

log = structlog.get_logger("batchmig.pipeline")

@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 8
    budget: int = 10000
    base_delay: float = 0.5
    max_delay: float = 60.0
    settle_after_timeout: float = 0.0
    """Seconds a mutating call that timed out is left to the cloud before the step looks
    it up and sends it again (runs use the call timeout): a cloud can still act on a
    request it is late to answer, and a look at once would miss it and create twice."""

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full-jitter exponential backoff for retry number ``attempt`` (1-based)."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (attempt - 1))
        return ceiling / 2 + rng.uniform(0, ceiling / 2)


class RetryBudgetExhausted(PermanentError):
    pass


@dataclass
class CallStats:
    sent: Counter[str] = field(default_factory=Counter)
    retries: int = 0
    throttled: int = 0
    unknown_outcomes: int = 0
    reconciled: int = 0
    errors: Counter[str] = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        return {
            "calls": sum(self.sent.values()),
            "calls_by_action": dict(sorted(self.sent.items())),
            "retries": self.retries,
            "throttled": self.throttled,
            "unknown_outcomes": self.unknown_outcomes,
            "reconciled": self.reconciled,
            "errors_by_code": dict(sorted(self.errors.items())),
        }


def _before_write(fence: Fence | None, release: Release | None, intent: _Intent | None) -> Callable[[], None] | None:
    """What the transport does right before writing one call's bytes.

    The limiter counts an unanswered call as having reached the cloud at most
    ``MAX_MARGIN`` after it left; "left" must be the write, not the moment the pipeline
    handed the request over: a request can wait for one of the pool's connections, or
    the event loop can stall, for longer than that on a starved machine, and a call
    that reaches the cloud later than the limiter assumes can fill a second beyond the
    cap (seen once in the scale-out soak: 21 polls in a second at a cap of 20). A call
    past the deadline of the slot it was admitted for is not written (``SlotMissed``),
    nor a mutating call (``intent``) of an instance whose lease another runner took over
    since its intent was journaled.
    """
    if fence is None and release is None:
        return None

    def look() -> None:
        if fence is not None:
            if intent is not None:
                fence.last_look(intent.instance, intent.losses)
            else:
                fence.last_look()
        if release is not None:
            release.check_on_time()
            release.left()

    return look


Send = Callable[[HttpRequest], Awaitable[HttpResponse]]


class Pipeline:
    """Sends calls for all instances of a run through limiter, retries and journal."""

    def __init__(
        self,
        connections: Mapping[str, tuple[str, Connection]],
        limiter: RateLimiter,
        send: Send,
        *,
        journal: JournalStore | None = None,
        invocation: InvocationLedger | None = None,
        retry: RetryPolicy | None = None,
        clock: Clock | None = None,
        seed: int | None = None,
        read_only: bool = False,
        fence: Fence | None = None,
    ) -> None:
        """``invocation`` (this runner process's row in the journal) makes the retry
        budget the run's: what earlier invocations spent is taken off it, and every
        retry is journaled before it is made."""
        self._connections = connections  # config name -> (provider name, connection)
        self.limiter = limiter
        self._send = send
        self._journal = journal
        self._invocation = invocation
        self.retry = retry or RetryPolicy()
        self.clock = clock or MonotonicClock()
        self._rng = random.Random(seed)
        self._retries_left = invocation.retries_left(self.retry.budget) if invocation else self.retry.budget
        self.read_only = read_only
        self.fence = fence  # with a shared store: no call while this runner's leases may have run out
        self.stats = CallStats()
        self.traffic = Traffic(self.clock.now)
        self._intent_in_send = isinstance(journal, Journal)
        """The SQLite journal's intent is awaited inside the send's shielded scope (one
        scope per mutating call, not two); another store's intent (PostgreSQL's waits for
        a late lease renewal, which a stop must be able to interrupt) before it."""
        self.admitting: set[str] = set()
        """Instances whose mutating call waits to be admitted (limiter, fence): nothing of
        it has left, and its intent is journaled only once it is admitted. Cancelled now,
        it sends nothing and leaves nothing to reconcile (an intent journaled for an
        earlier admission — the fence closed after it — is journaled ``unsent``)."""

    def key(self, connection: str, action: str) -> LimitKey:
        provider, conn = self._connections[connection]
        return LimitKey(provider, conn.account, conn.region, action)

    async def _attempt(
        self, connection: str, call: Call, wanted: Callable[[], bool] | None = None, intent: _Intent | None = None
    ) -> Answer:
        """One admitted request: limiter, sign, send, parse. Shielded once sent.

        ``wanted`` (polls of several instances) says whether anyone still waits for the
        answer: after a closed fence reopens, a poll for lost instances is not sent.
        ``intent`` (a mutating call's) is journaled once the call is admitted, before
        it leaves: a call still queued at the limiter when the runner dies has no intent,
        so whoever goes on with its instance has nothing to reconcile (a lookup that
        can cost seconds of lagging lists per instance). Its instance is in
        ``admitting`` until then.
        """
        provider, conn = self._connections[connection]
        key = LimitKey(provider, conn.account, conn.region, call.action)
        while True:
            if intent is not None:
                self.admitting.add(intent.instance)
            release = await self._admit(key)
            try:
                if self.fence is not None:
                    while await self.fence.wait_open():
                        # The fence was closed: the capacity this call was admitted under may
                        # belong to another runner now, so it queues at the limiter again.
                        if release is not None:
                            release.abandoned()
                        release = await self._admit(key)
                    if wanted is not None and not wanted():
                        raise LeaseLost("nobody waits for this call any more")
                in_send: _Intent | None = None
                if intent is not None:
                    self.admitting.discard(intent.instance)
                    if self._intent_in_send:
                        in_send = intent
                    else:
                        await intent.write(self.fence)  # durable before the request leaves (a no-op once written)
                token = LAST_LOOK.set(_before_write(self.fence, release, intent))
                try:
                    return await self._send_admitted(key, conn, call, release, in_send)
                except (FenceClosed, SlotMissed):
                    # Nothing left: admitted again (once the fence reopens; at a new slot).
                    self.stats.sent[call.action] -= 1
                except LeaseLost:
                    self.stats.sent[call.action] -= 1  # kept in by the last look: another runner has it
                    raise
                finally:
                    LAST_LOOK.reset(token)
            finally:
                if release is not None:
                    release.abandoned()  # a no-op once answered: only a call that never left

    async def _admit(self, key: LimitKey) -> Release | None:
        """The limiter's release, counted as on its way from this moment (``Release.sending``)."""
        release = await self.limiter.acquire(key)
        if release is not None:
            release.sending()
        return release

    async def _send_admitted(
        self, key: LimitKey, conn: Connection, call: Call, release: Release | None, intent: _Intent | None = None
    ) -> Answer:
        """Sign, send, parse: shielded, so a call on the wire finishes and is accounted;
        ``intent`` (the SQLite journal's) is made durable first, in the same shield.

        In a worker (``engine/workers.py``) the shield is its guard, held for the send: every
        cancellation of a worker's task goes through it and waits until the send is over.
        Anywhere else, anyio's shielded scope."""
        guard = current_guard()
        if guard is not None:
            guard.hold()
            try:
                return await self._send_now(key, conn, call, release, intent)
            finally:
                guard.release()
        with cancel_scope(shield=True):
            return await self._send_now(key, conn, call, release, intent)
        raise AssertionError("unreachable: the shielded block returns or raises")

    async def _send_now(
        self, key: LimitKey, conn: Connection, call: Call, release: Release | None, intent: _Intent | None
    ) -> Answer:
        """``_send_admitted``'s work, inside its shield."""
        if intent is not None:
            await intent.write_shielded(self.fence)
        request = await conn.prepare(call)
        self.stats.sent[call.action] += 1
        self.traffic.add(key, CALL)
        if release is not None:
            release.left()  # the limiter counts the call from now, and sizes its margin by the answer
        try:
            try:
                response = await self._send(request)
            finally:
                if release is not None:
                    release.answered()
            return conn.parse(call, response)
        except ThrottleError as exc:
            self.stats.throttled += 1
            self.traffic.add(key, THROTTLE)
            self.limiter.penalize(key, exc.retry_after)
            raise
        except ProviderError as exc:
            self.stats.errors[exc.code] += 1
            if isinstance(exc, UnknownOutcomeError):
                self.stats.unknown_outcomes += 1
            raise

    async def _backoff(self, attempt: int, error: ProviderError, key: LimitKey) -> None:
        if attempt >= self.retry.max_attempts:
            raise error
        if self._retries_left <= 0:
            raise RetryBudgetExhausted(
                "RetryBudgetExhausted", f"the run's retry budget is spent; last error {error.code}: {error.message}",
                request_id=error.request_id,
            ) from error
        self._retries_left -= 1
        self.stats.retries += 1
        self.traffic.add(key, RETRY)
        log.debug("call.retry", code=error.code, attempt=attempt)
        if self._invocation is not None:  # spent before it is made, across kills
            self.record_invocation()
            await self._invocation.flush()
        await self.clock.sleep(self.retry.delay(attempt, self._rng))

    def record_invocation(self, **final: Any) -> None:
        """Queue this invocation's counters (``final``: ended, exit_code, stop_reason)."""
        if self._invocation is not None:
            self._invocation.record(self.stats.as_dict(), **final)

    async def read(
        self, connection: str, call: Call, wanted: Callable[[], bool] | None = None
    ) -> Answer:
        """A read-only call with retries. Refuses mutating calls."""
        if call.mutating:
            raise PermanentError("MutatingCallRefused", f"{call.action} changes state; only steps may send it")
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._attempt(connection, call, wanted)
            except (ThrottleError, TransientError, UnknownOutcomeError) as exc:
                await self._backoff(attempt, exc, self.key(connection, call.action))

    async def mutate(
        self,
        connection: str,
        instance: str,
        step_index: int,
        step: CallStep,
        outputs: Outputs,
        unresolved: Sequence[int] = (),
        built: Call | None = None,
    ) -> tuple[Outputs, str | None]:
        """Send a step's mutating call exactly once in effect; return (outputs, request id).

        ``built`` is ``step.build(outputs)`` if the caller made it already (the engine
        does, to see whether the step's call mutates): the first attempt sends it rather
        than building the same call again.

        ``unresolved`` are the journal ids of earlier calls of this step whose effect
        nobody knows (the process died before it found out, or another runner did): the
        step is reconciled before anything is sent — unless it is idempotent, then the
        same call (same client token) is simply sent again. Raises ``OutcomeUnsureError``
        when that cannot be settled, and whatever the cloud answered when it refused the
        call.

        After an unknown outcome the step looks the resource up only after the backoff
        (after a timeout, also ``settle_after_timeout``), right before sending again: a
        request that timed out may still be queued at the cloud and act late, and
        looking at once would miss it and create twice. A later attempt refused outright
        (a start answered "already started") is looked up once more before the step
        fails, since the earlier attempt may be what changed the state.
        """
        if self.read_only:
            raise PermanentError("MutatingCallRefused", f"read-only run: {step.name} was not sent")
        assert self._journal is not None
        uncertain = list(unresolved)  # calls of this step that may have taken effect
        lost_answer: str | None = None  # the request id of the last call whose answer was lost
        attempt = 0
        while True:
            attempt += 1
            if uncertain and not step.idempotent:
                found = await self._reconcile(connection, instance, step, outputs, uncertain)
                if found is not None:
                    return found, lost_answer
            call = built if built is not None and attempt == 1 else step.build(outputs)
            intent = _Intent(self._journal, instance, step_index, call)
            try:
                answer = await self._attempt(connection, call, intent=intent)
                call_id = intent.written()
                result = read_answer(step, answer)
            except anyio.get_cancelled_exc_class():
                if instance in self.admitting:  # cancelled before it left: it never will
                    self.admitting.discard(instance)
                    if intent.id is not None:
                        self._journal.outcome(intent.id, "unsent")
                raise
            except (ThrottleError, NotSentError) as exc:  # refused before acting, or never sent: send again
                state = "throttled" if isinstance(exc, ThrottleError) else "unsent"
                self._journal.outcome(intent.written(), state, error=Failure.from_error(exc), request_id=exc.request_id)
                await self._backoff(attempt, exc, self.key(connection, call.action))
                continue
            except (UnknownOutcomeError, TransientError) as exc:
                # The server may have acted (an InternalError after a commit, a lost answer):
                # look before sending again — or, for an idempotent call, send the very same
                # call (same client token) again, whose answer settles this one too.
                call_id = intent.written()
                self._journal.outcome(call_id, "unknown", error=Failure.from_error(exc), request_id=exc.request_id)
                if step.idempotent:
                    uncertain.append(call_id)
                else:
                    uncertain = [call_id]
                lost_answer = exc.request_id
                if exc.code == TIMEOUT:
                    await self.clock.sleep(self.retry.settle_after_timeout)
                try:
                    await self._backoff(attempt, exc, self.key(connection, call.action))
                except ProviderError:  # no attempt left: what became of this one decides
                    if step.idempotent:
                        raise OutcomeUnsureError(
                            exc.code, f"{step.name} may have taken effect ({exc.message}); resume sends the same "
                            "call (same client token) again", request_id=exc.request_id,
                            http_status=exc.http_status,
                        ) from exc
                    found = await self._reconcile(connection, instance, step, outputs, uncertain)
                    if found is not None:
                        return found, exc.request_id
                    raise
                continue
            except LeaseLost:
                raise  # nothing was sent, and the instance's journal is another runner's now
            except ProviderError as exc:
                if intent.id is None:  # refused before it was admitted (a lost lease): nothing was sent
                    raise
                self._journal.outcome(intent.id, "failed", error=Failure.from_error(exc), request_id=exc.request_id)
                if uncertain and not step.idempotent:
                    # Refused now — perhaps because an earlier call of this step did take
                    # effect after all (a start refused as "already running"): look once more.
                    found = await self._reconcile(connection, instance, step, outputs, uncertain)
                    if found is not None:
                        return found, exc.request_id
                raise
            self._journal.outcome(call_id, "done", outputs=result, request_id=answer.request_id)
            if uncertain and step.idempotent:  # the repeat answered for the same client token: one effect
                self._journal.resolve(instance, uncertain, "reconciled", result)
            return result, answer.request_id

    async def _reconcile(
        self, connection: str, instance: str, step: CallStep, outputs: Outputs, calls: Sequence[int]
    ) -> Outputs | None:
        """Did the step's call take effect? Its outputs if so, None if surely not.

        A provider that cannot tell yet (``OutcomeUnsureError``: e.g. a list that lags
        behind the write) is asked again after a backoff, within the call's attempts
        and the run's retry budget; still unsure then, or its lookups failing for good
        (after the reads' own retries), the error is raised: the instance needs
        attention. Journals the verdict on ``calls``.
        """
        assert step.reconcile is not None, f"mutating step {step.name} has no reconcile"
        assert self._journal is not None
        attempt = 0
        while True:
            attempt += 1
            try:
                found = await step.reconcile(ReadCaller(self, connection), outputs)
                break
            except LeaseLost:
                raise
            except OutcomeUnsureError as exc:
                unsure = exc
            except ProviderError as exc:
                raise OutcomeUnsureError(
                    exc.code, f"could not find out whether {step.name} took effect: {exc.message}",
                    request_id=exc.request_id, http_status=exc.http_status,
                ) from exc
            try:
                await self._backoff(attempt, unsure, self.key(connection, step.build(outputs).action))
            except RetryBudgetExhausted:
                raise unsure from None
        self._journal.resolve(instance, list(calls), "absent" if found is None else "reconciled", found)
        if found is not None:
            self.stats.reconciled += 1
            log.info("call.reconciled", step=step.name)
        return found


class _Intent:
    """A mutating call's intent, journaled once (``write``): when the call is admitted."""

    __slots__ = ("_call", "_journal", "_step", "id", "instance", "losses")

    def __init__(self, journal: JournalStore, instance: str, step: int, call: Call) -> None:
        self._journal = journal
        self.instance = instance
        self._step = step
        self._call = call
        self.id: int | None = None
        self.losses = 0
        """The instance's losses to other runners (``Fence.losses``) when it was journaled."""

    async def write(self, fence: Fence | None) -> None:
        if self.id is None:
            self.losses = fence.losses(self.instance) if fence is not None else 0
            self.id = await self._journal.intent(self.instance, self._step, self._call.action, self._call.resource)

    async def write_shielded(self, fence: Fence | None) -> None:
        """``write`` for the SQLite journal, from inside a shielded scope (the send's)."""
        if self.id is None:
            assert isinstance(self._journal, Journal)
            self.losses = fence.losses(self.instance) if fence is not None else 0
            call_id, durable = self._journal.queue_intent(self.instance, self._step, self._call.action,
                                                          self._call.resource)
            await durable
            self.id = call_id

    def written(self) -> int:
        """Its journal id (the call was sent, so it was journaled)."""
        assert self.id is not None, "a mutating call left without its intent"
        return self.id


def read_answer(step: CallStep, answer: Answer) -> dict[str, Any]:
    """``step.read(answer)``; an answer without the fields it needs is an unknown outcome."""
    try:
        return dict(step.read(answer))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise UnknownOutcomeError(
            "MalformedAnswer", f"the answer to {step.name} lacks what batchmig needs ({type(exc).__name__}: {exc})",
            request_id=answer.request_id,
        ) from exc


class ReadCaller:
    """The ``Caller`` handed to providers: read-only calls on one connection."""

    def __init__(self, pipeline: Pipeline, connection: str, wanted: Callable[[], bool] | None = None) -> None:
        self._pipeline = pipeline
        self._connection = connection
        self._wanted = wanted

    async def read(self, call: Call) -> Answer:
        return await self._pipeline.read(self._connection, call, self._wanted)

    async def sleep(self, seconds: float) -> None:
        await self._pipeline.clock.sleep(seconds)
