"""One runner among several on a run in the shared store.

The single-runner ``Engine`` walks its plan's waves and starts every instance itself.
Here the instances are *claimed* from the store (``batchmig_claim``: wave order,
``FOR UPDATE SKIP LOCKED``, concurrency limits and failure budgets counted across all
runners), held by a lease renewed every ttl/3, and released when their task ends.
A wave is done when no instance of it is pending or running in any runner; only
then does any runner move to the next one, so waves, canaries, failure budgets and
manual cutovers hold across runners exactly as for one. A runner stays until the
last wave is settled, ready to take over the instances of a runner that dies.

Takeover needs nothing special: a claimed instance comes with its journaled step,
outputs and unresolved calls, and the instance task reconciles a call whose effect
is not known before sending anything, exactly as ``batchmig resume`` does.

The heartbeat runs until every instance task has ended and its lease is released
(stopping it before the drain would make live work look dead); the fence closes the
runner's calls if it cannot renew in time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import Any

import anyio
import structlog

from batchmig.engine.pipeline import Pipeline
from batchmig.engine.runner import Engine
from batchmig.errors import JournalError
from batchmig.journal import AWAITING_CUTOVER, PENDING
from batchmig.plan.model import Plan, Wave
from batchmig.registry import Registry
from batchmig.sharedlimit import ShareLimiter
from batchmig.store.fence import Fence
from batchmig.store.postgres import Claim, SharedJournal, StoreUnavailable

log = structlog.get_logger("batchmig.engine")

CLAIM_SECONDS = 0.5
"""How often an idle runner looks for work (and for runners that died)."""
LOOK_SECONDS = 0.2
"""The shortest time between two wave checks of a runner."""
HAND_BACK_SLACK = 8
"""A runner hands instances back only when it holds more than its fair share by an
eighth of it: a little imbalance costs nothing, moving work costs a share transfer."""


def max_failures(wave: Wave) -> int:
    """The most failed instances the wave's failure budget tolerates."""
    total = len(wave.instances)
    budget = wave.failure_budget
    if budget is None:
        return total
    allowed = 0
    while allowed < total and budget.allows(allowed + 1, total):
        allowed += 1
    return allowed


class SharedEngine(Engine):
    def __init__(
        self, plan: Plan, registry: Registry, pipeline: Pipeline, journal: SharedJournal, run_id: str, *,
        fence: Fence, **kwargs: Any,
    ) -> None:
        super().__init__(plan, registry, pipeline, journal, run_id, **kwargs)
        self.shared = journal
        self.fence = fence
        journal.on_lost = self._lost
        journal.on_failure = self._store_failed
        self._changed = anyio.Event()
        self._running_here = 0
        self._fresh: dict[str, int] = {}  # claimed pending here -> its step, until it moves on
        self._handing_back: set[str] = set()
        self.claimed = 0
        self.taken_over = 0
        self.handed_back = 0

    # ------------------------------------------------------------ leases

    def _lost(self, iid: str) -> None:
        scope = self._scopes.get(iid)
        if scope is not None:
            scope.cancel()

    def _store_failed(self, error: JournalError) -> None:
        """The store refused a statement, or was unusable past the runner's patience."""
        self._fatal = error
        self.fence.give_up(str(error))
        self.stop(str(error))

    async def _heartbeat(self) -> None:
        limiter = self.pipeline.limiter
        while True:
            started = self.clock.now()
            try:
                lost = await self.shared.renew()
                if isinstance(limiter, ShareLimiter):
                    await limiter.renew()
            except StoreUnavailable:
                await anyio.sleep(min(1.0, self.fence.ttl / 6))  # the fence closes if this lasts
                continue
            except JournalError:
                return  # refused for good: the journal stopped the runner (``_store_failed``)
            for iid in lost:
                log.warning("lease.lost", instance=iid)
                self._lost(iid)  # cancelled before the fence reopens: nothing is sent for them
            self.fence.renewed(started, lost)  # not even a call already in its (shielded) send
            await anyio.sleep(self.fence.ttl / 3)

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._heartbeat)
            limiter_run = getattr(self.pipeline.limiter, "run", None)
            if limiter_run is not None:
                tg.start_soon(limiter_run)
            try:
                await super().run()
            finally:
                tg.cancel_scope.cancel()

    # ------------------------------------------------------------- waves

    async def _store(self, work: Callable[[], Any]) -> Any:
        """Retry a store read or claim while the store is briefly unusable; None once the
        runner stops (a refused statement stops it: ``_store_failed``)."""
        while True:
            try:
                return await work()
            except StoreUnavailable:
                if self.stopping:
                    return None
                await anyio.sleep(1.0)
            except JournalError:
                return None

    async def _run_waves(self, tg: anyio.abc.TaskGroup) -> None:
        for index, wave in enumerate(self.plan.waves):
            if not await self._drive_wave(index, wave):
                return
        await self._claim_released()

    async def _drive_wave(self, index: int, wave: Wave) -> bool:
        """Claim and run instances of the wave until it is settled in every runner.

        Returns whether later waves may start.
        """
        limit = self.plan.document.run.max_concurrency
        wave_cap = min(wave.max_concurrency or limit, limit)
        max_failed = max_failures(wave)
        members = set(wave.instances)
        log.info("wave.started", wave=wave.name, instances=len(wave.instances))
        while not self.stopping:
            checked = self.clock.now()
            state = await self._store(partial(self.shared.wave_state, index))
            if state is None:
                return False
            reason = state.blocked or ""
            if not reason and state.canaries_done and not state.canaries_ok:
                reason = f"canary {state.bad_canary} of wave {wave.name} did not succeed"
                log.error("wave.canary_failed", wave=wave.name, instance=state.bad_canary)
            if not reason and state.failed > max_failed:
                reason = f"failure budget of wave {wave.name} exhausted ({state.failed} failed)"
                log.error("wave.budget_exhausted", wave=wave.name, failed=state.failed)
            if reason and not state.blocked:
                await self._store(partial(self.shared.block, reason, index, index))
            # Each runner works its part of what is left, so a runner that dies strands
            # little; what it held is taken over, by any runner with room, once its lease
            # has run out. A runner alone claims everything; when others join, it hands
            # them what it has not sent anything for yet.
            mine = sum(1 for iid in self._scopes
                       if iid in members and iid not in self._at_cutover and iid not in self._handing_back)
            fair = math.ceil(min(state.unsettled, wave_cap) / state.runners)
            if mine > fair + max(2, fair // HAND_BACK_SLACK) and not reason:
                self._hand_back(mine - fair)
            free = min(limit - self._running_here, max(fair - mine, state.orphaned), state.claimable)
            if free > 0:
                claims = await self._store(partial(self.shared.claim, index, free, wave_cap, limit, max_failed)) or []
                for claim in claims:
                    self._launch(claim)
                if claims:
                    continue
            if state.unsettled == 0 and not self._running_in_wave(wave):
                return not reason
            await self._next_look(checked)
        return False

    async def _next_look(self, checked: float) -> None:
        """Until something changed here (an instance settled) or ``CLAIM_SECONDS`` passed,
        but no sooner than ``LOOK_SECONDS`` after the last look (``checked``): instances
        that settle together are looked at with one wave check."""
        with anyio.move_on_after(CLAIM_SECONDS):
            await self._changed.wait()
        self._changed = anyio.Event()
        await anyio.sleep(max(0.0, checked + LOOK_SECONDS - self.clock.now()))

    def _hand_back(self, count: int) -> None:
        """Let go of up to ``count`` instances claimed pending here that have sent nothing
        and wait for their first call to be admitted, latest in plan order first (they
        would wait longest here): cancelled before anything left (the pipeline journals
        their intents ``unsent``), they are pending again and others claim them."""
        waiting = [iid for iid, step in self._fresh.items()
                   if iid in self.pipeline.admitting and iid not in self._handing_back]
        waiting.sort(key=lambda iid: self.plan.instance(iid).index, reverse=True)
        for iid in waiting[:count]:
            scope = self._scopes.get(iid)
            if scope is not None:
                self._handing_back.add(iid)
                scope.cancel()

    def _interrupted(self, iid: str, step: int) -> None:
        if iid in self._handing_back:
            self._set(iid, PENDING)  # as it was claimed: its step and outputs did not change
            self.handed_back += 1
            log.info("instance.handed_back", step=step)
            return
        super()._interrupted(iid, step)

    def _set(self, iid: str, status: str, **fields: Any) -> None:
        step = fields.get("step")
        if step is not None and self._fresh.get(iid, step) != step:
            del self._fresh[iid]  # it moved on: no longer handed back
        super()._set(iid, status, **fields)

    def _running_in_wave(self, wave: Wave) -> bool:
        members = set(wave.instances)
        return any(iid in members and iid not in self._at_cutover for iid in self._scopes)

    async def _claim_released(self) -> None:
        """After the last wave: run released cutovers; with --wait-for-cutover, wait for them all."""
        limit = self.plan.document.run.max_concurrency
        while not self.stopping:
            free = max(limit - self._running_here, 0)
            claims = await self._store(partial(self.shared.claim, -1, free, limit, limit, 0)) or []
            for claim in claims:
                self._launch(claim)
            if not self.wait_for_cutover:
                return
            counts = await self._store(self.shared.run_unsettled)
            if counts is None or (counts == (0, 0) and self._active == 0):
                return
            with anyio.move_on_after(CLAIM_SECONDS * 2):
                await self._changed.wait()
            self._changed = anyio.Event()

    def _launch(self, claim: Claim) -> None:
        """Run a claimed instance in a reused task of the run (``Engine._workers``), as the
        engine of a runner alone does: spawning a task per instance costs ten times as much."""
        iid = claim.record.id
        known = self._records.get(iid)
        if known is not None and claim.record.status not in ("pending",):
            self.taken_over += 1
            log.info("instance.claimed", instance=iid, status=claim.record.status, step=claim.record.step,
                     unresolved_calls=len(claim.unresolved))
        self.claimed += 1
        self._records[iid] = claim.record
        self._unresolved[iid] = list(claim.unresolved)
        old = self.status.get(iid)
        if old != claim.record.status:
            self.progress.move(old, claim.record.status,
                               self.plan.instance(iid).wave if self.plan.has_instance(iid) else None)
            self.status[iid] = claim.record.status
        if claim.record.status == AWAITING_CUTOVER:
            self._released.add(iid)
        if claim.record.status == PENDING:
            self._fresh[iid] = claim.record.step
        self._active += 1
        self._running_here += 1
        settled = False

        def settle() -> None:
            nonlocal settled
            if not settled:
                settled = True
                self._running_here -= 1
                self._changed.set()

        async def task() -> None:
            try:
                await self._run_instance(self.plan.instance(iid), settle)
            finally:
                settle()
                self._fresh.pop(iid, None)
                self._handing_back.discard(iid)
                self.shared.release(iid)
                self._active -= 1
                self._idle.set()
                self._changed.set()

        self._workers.start_soon(task)

    async def final_counts(self) -> dict[str, int]:
        """The whole run's counts from the store (this runner saw only its own instances
        change); none if the store cannot say."""
        try:
            return await self.shared.status_counts()
        except JournalError:
            return {}

    # ----------------------------------------------------------- refresh

    async def _watch_cutovers(self) -> None:
        while True:
            await anyio.sleep(1.0)
            if not self._release_events:
                continue
            try:
                released = await self.shared.released_now()
            except JournalError:  # unusable now (a refusal has stopped the runner): next second
                continue
            for iid in released - self._released:
                self._released.add(iid)
                event = self._release_events.pop(iid, None)
                if event is not None:
                    event.set()


def lease_margin(call_timeout: float) -> float:
    """The self-fencing margin: one call timeout plus a second for the journal write."""
    return call_timeout + 1.0


def default_lease_ttl(call_timeout: float) -> float:
    return max(30.0, math.ceil(3 * lease_margin(call_timeout)))
