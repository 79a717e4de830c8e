"""One rate budget per (provider, account, region, action), shared through the store.

The cap belongs to the cloud account, not to a process: every runner of a run and
every run on the same account draw from one budget. Two modes, both holding the cap
in every sliding second across all of them:

``shares`` (default)
    Each runner holds a leased *share* of each key's calls per window and enforces
    it with the strict local limiter of ``ratelimit.py``: a sum of strict per-runner
    bounds is a strict global bound. Shares are whole calls, recomputed from demand
    every second (and at once when a runner starts wanting a key, or hears of a
    throttle) by ``batchmig_rebalance`` in the database. Shrink before grow: a runner
    applies a smaller share before its transaction commits, and capacity given up —
    or held by a runner whose lease ran out — is handed to others only one window
    after it was last usable. When a share grows, the calls already queued at the
    old spacing are re-spaced at the new one. Costs about one transaction per key per
    second per runner, not one per call.

``exact``
    Every call reserves its slot in one SQL function (``batchmig_reserve``: the same
    evenly spaced sliding log as ``ratelimit.py``) with the database's
    ``clock_timestamp()``, read at the end, as the one clock; the runner sleeps for
    the delay it returns, and a call it cannot write soon enough after its slot
    (``SLOT_TOLERANCE``) takes a new one. One round trip per call; no share to wait for.

A throttle answered to any runner lowers the key for all (``batchmig_penalize``
halves the key's rate in its row and pauses it, and NOTIFY tells the others at once;
without LISTEN — PgBouncer in transaction mode — they see it at their next rebalance).
The rate then climbs back as the shared row says.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import structlog

from batchmig.errors import JournalError
from batchmig.ratelimit import Clock, LimitKey, RateLimiter, Release
from batchmig.store.postgres import (
    SharedJournal,
    StoreUnavailable,
    _psycopg,
    connection_kwargs,
    store_errors,
    transaction_guard,
)

log = structlog.get_logger("batchmig.sharedlimit")

LIMITER_MODES = ("shares", "exact")
REBALANCE_SECONDS = 1.0
"""How often a key whose demand moved, or that gets less than it wants, is rebalanced."""
REFRESH_SECONDS = 5.0
"""How often a key whose demand did not move is rebalanced anyway (others' changes reach
this runner by NOTIFY; without LISTEN, every ``REBALANCE_SECONDS``)."""
ECHO_SECONDS = 0.25
"""A NOTIFY this soon after this runner's own rebalance of a key that left it short is its
own (a starved rebalance notifies the others): not a reason to rebalance again."""
LISTEN_ENV = "BATCHMIG_STORE_LISTEN"
"""``off``: no LISTEN connection (PgBouncer in transaction mode); or a direct DSN for it."""


@dataclass
class _Share:
    share: int = 0
    waiting: int = 0
    generation: int = 0
    changed: anyio.Event = field(default_factory=anyio.Event)
    wanted: bool = False
    asked: int = -1
    """The demand of the last rebalance."""
    asked_at: float = -math.inf

    def bump(self) -> None:
        self.generation += 1
        self.changed.set()
        self.changed = anyio.Event()


class _SharedBase(RateLimiter):
    """What both modes share: the store, throttle broadcast, and the key strings."""

    mode = ""

    def __init__(self, rate_for: Callable[[LimitKey], float], journal: SharedJournal, *,
                 clock: Clock | None = None, **kwargs: Any) -> None:
        super().__init__(rate_for, clock=clock, **kwargs)
        self.journal = journal
        self._tasks: set[asyncio.Task[Any]] = set()

    def _cap(self, key: LimitKey) -> int:
        return max(1, math.floor(self._rate_for(key) + 1e-9))

    def penalize(self, key: LimitKey, retry_after: float | None = None, now: float | None = None) -> None:
        super().penalize(key, retry_after, now)
        self._spawn(self._penalize_shared(key, retry_after))

    async def _penalize_shared(self, key: LimitKey, retry_after: float | None) -> None:
        # Not written (the journal has logged why): the others see the throttle if they draw one.
        with contextlib.suppress(JournalError):
            await self.journal.execute(
                "SELECT batchmig_penalize(%s, %s, %s, %s, %s, %s, %s)",
                (str(key), self._cap(key), retry_after, self._window, self._span - self._window,
                 self._recovery, self._min_rate), fetch=False, purpose="throttles",
            )

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run(self) -> None:
        """Background work for the limiter (runs for the whole run)."""
        await anyio.sleep_forever()

    async def renew(self) -> None:
        """Called with every lease renewal."""

    async def aclose(self) -> None:
        for task in list(self._tasks):
            task.cancel()


class ExactLimiter(_SharedBase):
    """``--limiter exact``: one reservation in the database per call."""

    mode = "exact"

    async def acquire(self, key: LimitKey) -> Release | None:
        """Pass the local exact check, then reserve this call's slot among every runner's
        in the database and wait for it.

        The local check comes first: this runner may send late (a loaded machine wakes
        its tasks late), so its own calls also keep the window on the times they really
        left and were answered, as one runner's do (measured: 5 throttles in one
        200-instance run at load 8 without it); done after the reservation, its wait
        would make every call miss its slot. The slot is on the database's clock and
        others' calls take the slots after it, so the call must be written within
        ``SLOT_TOLERANCE`` of it or not at all (``Release.deadline``): a runner that
        wakes later takes a new slot (measured: 1 throttle with 3 runners at load 4
        without it)."""
        release = await super().acquire(key)
        if release is None:
            return None
        release.sending()  # it may leave any moment from now on, however long the reservation takes
        try:
            delay = 0.1
            while True:
                asked = self._clock.now()
                try:
                    rows = await self.journal.execute(
                        "SELECT batchmig_reserve(%s, %s, %s, %s, %s)",
                        (str(key), self._cap(key), self._window, self._span - self._window, self._recovery),
                        purpose="reservations",
                    )
                    break
                except StoreUnavailable:
                    await self._clock.sleep(delay)  # nothing is sent without a reservation
                    delay = min(2 * delay, 2.0)
            wait = float(rows[0][0])
            if wait > 0:
                stats = self._state(key).stats
                stats.waited += 1
                stats.wait_seconds += wait
                await self._clock.sleep(wait)
        except BaseException:
            release.abandoned()
            raise
        # The slot came after ``asked`` (the database read its clock later), so this
        # deadline is never later than the slot plus the tolerance.
        release.deadline = asked + max(wait, 0.0) + SLOT_TOLERANCE
        return release


class ShareLimiter(_SharedBase):
    """Capacity shares (the default): a strict local limiter at this runner's share."""

    mode = "shares"

    def __init__(self, rate_for: Callable[[LimitKey], float], journal: SharedJournal, **kwargs: Any) -> None:
        super().__init__(rate_for, journal, **kwargs)
        self._shares: dict[LimitKey, _Share] = {}
        self._wake = anyio.Event()
        self._listening = os.environ.get(LISTEN_ENV, "").lower() != "off"
        self.rebalances = 0

    def _share(self, key: LimitKey) -> _Share:
        share = self._shares.get(key)
        if share is None:
            share = self._shares[key] = _Share()
            state = self._state(key)
            state.rate = state.cap = 0.0
        return share

    def current_rate(self, key: LimitKey, now: float | None = None) -> float:
        state = self._state(key)
        if state.cap <= 0:
            return 0.0
        return super().current_rate(key, now)

    def cap(self, key: LimitKey) -> float:
        return float(self._cap(key))

    def demand(self, key: LimitKey) -> int:
        """Calls this runner wants per window: those waiting plus those released lately."""
        share = self._share(key)
        state = self._state(key)
        horizon = self._clock.now() - self._span
        recent = sum(1 for t in state.released if t > horizon)
        return min(self._cap(key), share.waiting + recent)

    def set_share(self, key: LimitKey, share: int, paused: float = 0.0) -> None:
        """Enforce ``share`` calls per window from now on (a shrink must come before its commit)."""
        entry = self._share(key)
        state = self._state(key)
        if paused > 0:
            state.paused_until = max(state.paused_until, self._clock.now() + paused)
        if share == entry.share:
            return
        entry.share = share
        state.cap = float(share)
        state.rate = min(state.rate, state.cap) if state.reduced_at is not None else state.cap
        if share > (state.reservations.maxlen or 0):
            state.reservations = deque(state.reservations, maxlen=share)
            state.released = deque(state.released, maxlen=share)
        # Calls queued at the old spacing reserve again at the new one, after the calls that
        # really left (not after the slots they held: those would push the queue back by its length).
        state.reservations.clear()
        state.reservations.extend(state.released)
        entry.bump()

    async def acquire(self, key: LimitKey) -> Release | None:
        entry = self._share(key)
        entry.waiting += 1
        try:
            while True:
                if entry.share <= 0:
                    self._want(entry)
                    await entry.changed.wait()
                    continue
                generation = entry.generation
                slot = reserved = self.reserve(key)
                try:
                    while entry.generation == generation:
                        delay = slot - self._clock.now()
                        if delay > 0:
                            with anyio.move_on_after(delay):
                                await entry.changed.wait()
                            continue
                        later = self._release(key)
                        if later is None:
                            return Release(self._state(key), self._clock, self._clock.now())  # margin measured
                        slot = later
                except BaseException:
                    # Cancelled (its instance handed back or stopped): its slot is free again,
                    # or every later call would queue behind it.
                    with contextlib.suppress(ValueError):
                        self._state(key).reservations.remove(reserved)
                    raise
        finally:
            entry.waiting -= 1

    def _want(self, entry: _Share) -> None:
        if not entry.wanted:
            entry.wanted = True
            self._wake.set()

    def hint(self, key_text: str) -> None:
        """Another runner changed this key (NOTIFY): rebalance now."""
        now = self._clock.now()
        for key, entry in self._shares.items():
            if str(key) == key_text:
                if entry.share < entry.asked and now - entry.asked_at < ECHO_SECONDS:
                    continue  # the NOTIFY of this runner's own short rebalance
                self._want(entry)

    def _due(self, entry: _Share, demand: int, now: float) -> bool:
        """Whether a key must be rebalanced now: asked to, its demand moved, it gets less
        than it wants (once a second), or it was not refreshed for a while."""
        if entry.wanted:
            return True
        if not (demand or entry.share):
            return False
        since = now - entry.asked_at + 0.05  # the loop wakes about once a period, not to the microsecond
        moved = demand != entry.asked or entry.share < demand
        return since >= (REBALANCE_SECONDS if moved or not self._listening else REFRESH_SECONDS)

    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._listen)
            while True:
                with anyio.move_on_after(REBALANCE_SECONDS):
                    await self._wake.wait()
                self._wake = anyio.Event()
                for key, entry in list(self._shares.items()):
                    demand = self.demand(key)
                    if self._due(entry, demand, self._clock.now()):
                        entry.wanted = False
                        # Failed (the journal logged it, and stops the runner if it must): the
                        # key keeps its share, due again at the next tick; a share not
                        # renewed in time closes the fence (the heartbeat), so nothing is
                        # sent under a share that may have returned to the others.
                        with contextlib.suppress(JournalError):
                            await self.rebalance(key, demand)

    async def rebalance(self, key: LimitKey, demand: int) -> int:
        """Ask for this runner's share of ``key``; shrink before commit, grow after it."""
        psycopg = _psycopg()
        journal = self.journal
        try:
            async with journal._pool.connection() as conn, conn.pipeline() as pipeline, conn.transaction():
                # Two round trips: BEGIN, the guard and the rebalance go out together (the
                # share is applied here before COMMIT is sent), then COMMIT.
                journal.trips["shares"] += 2
                journal.statements += 4
                await conn.execute(transaction_guard(conn) + ", set_config('lock_timeout', '2s', true)")
                cursor = await conn.execute(
                    "SELECT share, paused, rate FROM batchmig_rebalance(%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    (str(key), journal.runner, journal.run, self._cap(key), demand, journal.ttl,
                     self._window, self._span - self._window, self._recovery),
                )
                await pipeline.sync()
                row = await cursor.fetchone()
                assert row is not None
                share, paused = int(row[0]), float(row[1])
                if share < self._share(key).share:
                    self.set_share(key, share, paused)
            self.rebalances += 1
            entry = self._share(key)
            entry.asked, entry.asked_at = demand, self._clock.now()
        except psycopg.errors.LockNotAvailable:  # another runner holds the key's row: next time
            return self._share(key).share
        except store_errors() as exc:
            # Whatever failed, a shrink may be applied already and a grow is not: the share
            # in force is never more than the database's.
            raise journal.failed(exc) from None
        journal.store_usable()
        self.set_share(key, share, paused)
        return share

    async def renew(self) -> None:
        """Extend this runner's share leases; a share that already returned is dropped at once."""
        held = {str(key): key for key, entry in self._shares.items() if entry.share > 0}
        if not held:
            return
        rows = await self.journal.execute(
            "UPDATE batchmig_rate_shares SET lease_until = now() + make_interval(secs => %s) "
            "WHERE runner = %s RETURNING key", (self.journal.ttl, self.journal.runner), purpose="renewals")
        kept = {row[0] for row in rows}
        for text, key in held.items():
            if text not in kept:
                log.warning("limiter.share_lost", key=text)
                self.set_share(key, 0)

    async def _listen(self) -> None:
        target = os.environ.get(LISTEN_ENV, "")
        if target.lower() == "off":
            return
        psycopg = _psycopg()
        url = target or self.journal.store.url
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(url, **connection_kwargs()) as conn:
                    await conn.execute("LISTEN batchmig_rate")
                    async for note in conn.notifies():
                        self.hint(note.payload)
            except psycopg.Error:
                await anyio.sleep(1.0)


EXACT_MARGIN = 0.1
"""The exact mode's window margin: its slot is decided a database round trip before the
call leaves, with no local check of actual release times, so it keeps twice the margin."""
SLOT_TOLERANCE = EXACT_MARGIN / 2
"""How late after its slot an exact-mode call may still be written. Slots of a key are at
least a window plus ``EXACT_MARGIN`` apart every N calls; a runner that wakes late (a
loaded machine, measured: 1 throttle with 3 runners at load 4) would otherwise send its
call into the next calls' window. Later than this, the call takes a new slot. Half the
margin leaves the other half for the cloud's clock ticks and the network."""


def make_shared_limiter(mode: str, rate_for: Callable[[LimitKey], float], journal: SharedJournal) -> _SharedBase:
    if mode == "exact":
        return ExactLimiter(rate_for, journal, margin=EXACT_MARGIN)
    return ShareLimiter(rate_for, journal)
