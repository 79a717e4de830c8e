"""A strict, FIFO-fair, throttle-adaptive rate limiter keyed per cloud action.

Clouds cap each API per second (Tencent: 20/s for most actions). A token bucket whose
burst equals the rate admits up to twice the rate within one second (a full bucket
plus a refill) and gets the fleet throttled; this limiter never admits more than
``floor(rate)`` calls in any sliding window of ``window`` seconds.

Algorithm: a sliding log of *reservations* with even spacing. A caller reserves the
earliest instant ``t >= now`` that is at least ``span / N`` after the previous
reservation and at least ``span`` after the N-th previous one (``span`` = one second
plus a margin). Callers take their turn to reserve in arrival order (one reserves
and sleeps until its slot, the next reserves once it is released), so they are served
first come, first served, each slot follows the key's state at that moment, and both
checks are O(1). This is GCRA with no burst (as in aiometer) plus the sliding-log
bound, which still holds if the rate changes between reservations.

Why even spacing rather than bursts of N: what counts is the server's clock. A call
released on time can arrive late (a loop stall, a new TCP connection); with bursts,
one late call of a burst lands in the next burst's second and the server sees N + 1.
Evenly spaced at ``(1 s + margin) / N``, a late call still fits as long as it is
late by less than the margin.

What a window needs beyond its second is measured, not assumed. The server counts a
call at some moment between the call leaving and its answer coming back. The pipeline
reports when each call really left (after signing, not when the limiter let it go) and
when its answer came back (``Release.left`` / ``Release.answered``), and the
sliding-log check becomes exact on the server's clock: a call may leave once a whole
window has passed since the latest answer among the calls N or more releases back (a
call among them still unanswered holds it back: it may reach the server any moment).
Whatever the server counted within each round trip, no second on its clock holds more
than the cap (the property test of ``tests/test_ratelimit.py``), and only the one call
N releases after a slow one waits for it. So each window costs the round trip of the
call it follows, no more: a quiet loopback (round trips of a millisecond or two) runs
at more than 99 % of the cap, a runner 20 ms from its cloud at about 98 %, and a
stalling machine or server — whose answers come late — slows down exactly as much as
its stalls before the cloud's second overflows. The even spacing adds only the
configured ``margin`` (1 ms) to the window: spaced by the average round trip as well
(as it was), a key paid a slow answer again in the average for the next ten or so
windows, and the slots reserved during a run's busy start kept that start's round
trips for a minute. A caller that reports nothing is counted from its release, with
the configured margin, as before. Measured on the mixed 1,000-instance benchmark: a
fixed 0.05 s margin (95 % of the cap) still drew 0 to 7 throttles per run on a loaded
machine; docs/benchmarks.md has the measured figures.

When the cloud still answers "throttled" (another client shares the account, or the
documented cap is wrong), ``penalize`` cuts the key's rate in half for every caller
and pauses it for ``retry_after``; the rate then climbs back by ``recovery`` calls
per second each second (additive increase, multiplicative decrease).

Keys are (provider, account, region, action). State lives in this process; the
``RateLimiter`` methods are the whole interface, so a shared backend (several
runners, one budget) can replace it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import anyio

SPACED_UP_TO = 200
"""Rates (per second) up to which releases are evenly spaced."""

MAX_MARGIN = 0.5
"""How long an unanswered call holds the key back at most (a call in flight for longer
is taken to have reached the server by then: a hung answer must not stop a key)."""

TRIP_WEIGHT = 0.1
"""Weight of the newest round trip in the average that spaces a key's calls."""

IN_FLIGHT_RECHECK = 0.01
"""Seconds between looks at a call of one window ago that is still unanswered."""


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class MonotonicClock:
    """The real clock."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class LimitKey(NamedTuple):
    provider: str
    account: str
    region: str
    action: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.account}/{self.region}/{self.action}"


@dataclass
class KeyStats:
    """Counters for one key, as reported in report.json and the progress view."""

    cap: float
    admitted: int = 0
    waited: int = 0
    wait_seconds: float = 0.0
    throttled: int = 0
    max_in_window: int = 0
    margin: float = 0.0
    """The widest average round trip of the key's calls (about what the check on answers
    added to each of its windows)."""

    def as_dict(self) -> dict[str, float | int]:
        return {
            "cap": self.cap,
            "admitted": self.admitted,
            "waited": self.waited,
            "wait_seconds": round(self.wait_seconds, 3),
            "throttled": self.throttled,
            "max_in_window": self.max_in_window,
            "margin": round(self.margin, 4),
        }


class SlotMissed(Exception):
    """A call reached its write later than the slot it was admitted for allows
    (``Release.deadline``): nothing was sent, and it queues at the limiter again."""


class Release:
    """One admitted call, as its pipeline reports it back (both optional: a caller that
    never reports keeps the configured margin and the release time)."""

    __slots__ = ("_clock", "_state", "answered_at", "at", "deadline", "serial")

    def __init__(self, state: _KeyState, clock: Clock, at: float) -> None:
        self._state = state
        self._clock = clock
        self.serial = state.serial
        """Which of the key's releases this is (``released[-1]`` was the last one)."""
        self.at = at
        """When the call left (the release time until ``left`` is reported)."""
        self.answered_at: float | None = None
        self.deadline: float | None = None
        """The latest moment (on the limiter's clock) the call may still be written; set
        by a limiter whose slot is reserved elsewhere (the shared store's exact mode),
        which cannot see how late this runner sends."""

    def check_on_time(self) -> None:
        """Raise ``SlotMissed`` when the call is past its ``deadline`` (checked right
        before its bytes are written)."""
        if self.deadline is not None and self._clock.now() > self.deadline:
            raise SlotMissed(f"{self._clock.now() - self.deadline:.3f} s past the slot it was admitted for")

    def sending(self) -> None:
        """The caller will send this call, however late (a fence to pass, signing, a token
        to fetch, a starved event loop): until it is written (``left``), answered or
        ``abandoned``, it may reach the server any moment, so the call ``N`` releases
        later waits for it. Without this, a call is taken to have arrived a margin after
        its release, and one that leaves later than that shares a second with the call
        ``N`` after it."""
        if self.answered_at is None:
            self._state.sending(self.serial)

    def abandoned(self) -> None:
        """The call will not be sent after all (its bytes never left)."""
        if self.answered_at is None:
            self.answered_at = self._clock.now()
            self._state.settled(self.serial, self.answered_at)

    def left(self, now: float | None = None) -> None:
        """The request is about to be written (signing and JSON are done): from now on
        the key's log counts it, and until its answer it is in flight."""
        if self.answered_at is None:
            self.at = max(self.at, self._clock.now() if now is None else now)
            self._state.left(self.serial, self.at)

    def answered(self, now: float | None = None) -> None:
        """The answer (or the failure) came back: the server counted the call by now."""
        if self.answered_at is None:
            self.answered_at = self._clock.now() if now is None else now
            self._state.answered(self.serial, self.at, self.answered_at)


@dataclass
class _KeyState:
    cap: float
    rate: float
    floor_margin: float = 0.0
    reservations: deque[float] = field(init=False)
    released: deque[float] = field(init=False)
    """When the latest calls left (at most N), oldest first."""
    serial: int = 0
    """How many calls the key released in all (the serial of ``released[-1]``)."""
    in_flight: dict[int, float] = field(default_factory=dict)
    """Serial -> departure of the calls that left and are not answered yet."""
    unsent: set[int] = field(default_factory=set)
    """Serials of released calls their caller is still to send (``Release.sending``)."""
    arrivals: dict[int, float] = field(default_factory=dict)
    """Serial -> the latest the call can have reached the server (the answer's time; the
    release plus the configured margin for a call never reported), for the last N or so
    releases, in release order; ``math.inf`` while in flight."""
    horizon: float = -math.inf
    """The latest arrival among the calls older than those in ``arrivals``."""
    recent: deque[float] = field(default_factory=deque)
    reduced_at: float | None = None
    reduced_to: float = 0.0
    paused_until: float = 0.0
    stats: KeyStats = field(init=False)
    margin: float = field(init=False)
    """The average round trip, at least the configured margin (a throttled key pauses a
    window plus this when the cloud says nothing of how long)."""
    trip: float = 0.0
    turn_taken: bool = False
    """A caller of the key is reserving or waiting for its slot (``RateLimiter.acquire``)."""
    queue: deque[anyio.Event] = field(default_factory=deque)
    """The callers waiting for their turn to reserve, first come first."""

    def __post_init__(self) -> None:
        self.stats = KeyStats(cap=self.cap)
        self.margin = self.floor_margin
        # The N-th most recent reservation decides the next slot; N never exceeds the cap.
        self.reservations = deque(maxlen=max(1, math.floor(self.cap + 1e-9)))
        self.released = deque(maxlen=max(1, math.floor(self.cap + 1e-9)))

    def moved(self, serial: int, at: float) -> None:
        """A released call left later than it was released: the log keeps the later time."""
        back = self.serial - serial + 1
        if back <= len(self.released):
            self.released[-back] = max(self.released[-back], at)

    def released_now(self, now: float) -> None:
        self.released.append(now)
        self.serial += 1
        self.arrivals[self.serial] = now + self.floor_margin
        oldest = self.serial - 2 * (self.released.maxlen or 1)
        while self.arrivals:
            first = next(iter(self.arrivals))
            if first > oldest:
                break
            arrival = self.arrivals.pop(first)
            if arrival < math.inf:  # an unanswered one stays in ``in_flight``
                self.horizon = max(self.horizon, arrival)

    def sending(self, serial: int) -> None:
        self.unsent.add(serial)
        if serial in self.arrivals:
            self.arrivals[serial] = math.inf

    def settled(self, serial: int, at: float) -> None:
        """The call reached the server by ``at`` (its answer), or never will (abandoned)."""
        self.unsent.discard(serial)
        self.in_flight.pop(serial, None)
        if serial in self.arrivals:
            self.arrivals[serial] = at
        else:
            self.horizon = max(self.horizon, at)

    def left(self, serial: int, at: float) -> None:
        self.unsent.discard(serial)
        self.moved(serial, at)
        self.in_flight[serial] = at
        if serial in self.arrivals:
            self.arrivals[serial] = math.inf

    def answered(self, serial: int, left: float, at: float) -> None:
        self.settled(serial, at)
        self.trip += TRIP_WEIGHT * (at - left - self.trip)
        self.margin = min(MAX_MARGIN, max(self.floor_margin, self.trip))
        self.stats.margin = max(self.stats.margin, self.margin)

    def latest_arrival(self, serial: int, now: float, scan: bool) -> float | None:
        """The latest moment a call up to ``serial`` can reach (or have reached) the server;
        None while one of them is in flight and may arrive any moment. ``scan``: look at
        every tracked call, not only ``serial`` itself (exact; costs N at high rates)."""
        if self.unsent and min(self.unsent) <= serial:
            return None  # released, not yet written: it may leave any moment
        latest = self.horizon
        if scan:
            for tracked, arrival in self.arrivals.items():
                if tracked > serial:
                    break
                if arrival < math.inf:
                    latest = max(latest, arrival)
        else:
            arrival = self.arrivals.get(serial, -math.inf)
            latest = max(latest, arrival if arrival < math.inf else -math.inf)
        for flying, left in self.in_flight.items():
            if flying <= serial:
                if now < left + MAX_MARGIN:
                    return None
                latest = max(latest, left + MAX_MARGIN)
        return latest


class RateLimiter:
    """Admit calls per key at no more than the key's rate in any sliding window."""

    def __init__(
        self,
        rate_for: Callable[[LimitKey], float],
        *,
        clock: Clock | None = None,
        window: float = 1.0,
        margin: float = 0.001,
        recovery: float = 1.0,
        min_rate: float = 1.0,
    ) -> None:
        """``margin`` widens the window of the even spacing (and of a call never reported);
        the check on reported answers widens each window by what it really needs."""
        self._rate_for = rate_for
        self._clock = clock or MonotonicClock()
        self._span = window + margin
        self._window = window
        self._recovery = recovery
        self._min_rate = min_rate
        self._keys: dict[LimitKey, _KeyState] = {}

    def _state(self, key: LimitKey) -> _KeyState:
        state = self._keys.get(key)
        if state is None:
            cap = self._rate_for(key)
            state = self._keys[key] = _KeyState(cap=cap, rate=cap, floor_margin=self._span - self._window)
        return state

    def _gap(self, allowed: int, span: float) -> float:
        """The even spacing between releases; above SPACED_UP_TO per second a timer per
        call costs more than spacing buys, and the sliding-log bound alone applies."""
        return span / allowed if allowed <= SPACED_UP_TO else 0.0

    def current_rate(self, key: LimitKey, now: float | None = None) -> float:
        state = self._state(key)
        now = self._clock.now() if now is None else now
        if state.reduced_at is not None:
            state.rate = min(state.cap, state.reduced_to + self._recovery * max(0.0, now - state.reduced_at))
            if state.rate >= state.cap:
                state.reduced_at = None
        return state.rate

    def reserve(self, key: LimitKey, now: float | None = None, arrived: float | None = None) -> float:
        """Reserve the next admission instant for ``key`` (>= now); FIFO by call order.
        ``arrived``: when the caller asked (its wait is counted from then; default now)."""
        state = self._state(key)
        now = self._clock.now() if now is None else now
        arrived = now if arrived is None else arrived
        allowed = max(1, math.floor(self.current_rate(key, now) + 1e-9))
        slot = max(now, state.paused_until)
        span = self._span
        log = state.reservations
        if log:
            slot = max(slot, log[-1] + self._gap(allowed, span))  # even spacing; also keeps FIFO order
        if len(log) >= allowed:
            slot = max(slot, log[-allowed] + span)
        log.append(slot)
        stats = state.stats
        stats.admitted += 1
        if slot > arrived:
            stats.waited += 1
            stats.wait_seconds += slot - arrived
        recent = state.recent
        recent.append(slot)
        while recent and recent[0] <= slot - self._window:
            recent.popleft()
        stats.max_in_window = max(stats.max_in_window, len(recent))
        return slot

    async def acquire(self, key: LimitKey) -> Release | None:
        """Wait until a call for ``key`` may be sent; report its departure and answer on
        the ``Release`` returned (the margin is measured from them; a limiter that
        measures nothing returns None).

        The reservation orders callers; the check after waking enforces the window on
        the times calls really left. Under load a task wakes later than its slot, and a
        late batch followed by an on-time one would otherwise put more than the cap
        into one second on the server's clock.

        A key spaced evenly (up to SPACED_UP_TO per second) has one caller at a time
        reserve and wait for its slot; the others queue for their turn. A slot is thus
        reserved when the call before it goes, on the key's state then (a pause after a
        throttle, a lower rate), and when the calls fall behind their slots (each window
        waits for an answer) one caller wakes per release, not every caller past its slot.
        """
        state = self._state(key)
        arrived = self._clock.now()
        queued = state.cap <= SPACED_UP_TO
        if queued:
            await self._take_turn(state)
        try:
            slot = self.reserve(key, arrived=arrived)
            while True:
                delay = slot - self._clock.now()
                if delay > 0:
                    await self._clock.sleep(delay)
                later = self._release(key)
                if later is None:
                    return Release(state, self._clock, self._clock.now())
                slot = later
        finally:
            if queued:
                self._pass_turn(state)

    @staticmethod
    async def _take_turn(state: _KeyState) -> None:
        """Wait until every earlier caller of the key was released (or gave up)."""
        if not state.turn_taken:
            state.turn_taken = True
            return
        turn = anyio.Event()
        state.queue.append(turn)
        try:
            await turn.wait()
        except BaseException:
            if turn.is_set():  # handed the turn as it was cancelled: hand it on
                RateLimiter._pass_turn(state)
            else:
                state.queue.remove(turn)
            raise

    @staticmethod
    def _pass_turn(state: _KeyState) -> None:
        if state.queue:
            state.queue.popleft().set()
        else:
            state.turn_taken = False

    def _release(self, key: LimitKey) -> float | None:
        """Release a call of ``key`` now if the window allows it (None), else say when to retry."""
        state = self._state(key)
        now = self._clock.now()
        allowed = max(1, math.floor(self.current_rate(key, now) + 1e-9))
        released = state.released
        span = self._span
        gap = self._gap(allowed, span)
        # Woken at its reserved slot, a call goes unless it would follow the previous one
        # by less than half the spacing: a task that woke late catches up instead of
        # pushing every later call back (the window check below is what keeps the cap).
        if gap and released and released[-1] + gap / 2 > now + 1e-9:
            return released[-1] + gap / 2
        if len(released) >= allowed:
            latest = state.latest_arrival(state.serial - allowed + 1, now, scan=allowed <= SPACED_UP_TO)
            if latest is None:  # still unanswered: it may reach the server any moment; look again shortly
                return now + IN_FLIGHT_RECHECK
            if latest + self._window > now + 1e-9:
                return latest + self._window
        state.released_now(now)
        return None

    def penalize(self, key: LimitKey, retry_after: float | None = None, now: float | None = None) -> None:
        """The cloud throttled a call of ``key``: slow every caller of the key down."""
        state = self._state(key)
        now = self._clock.now() if now is None else now
        state.stats.throttled += 1
        current = self.current_rate(key, now)
        if state.reduced_at is None or now - state.reduced_at > self._span:
            state.reduced_to = max(self._min_rate, current / 2)
            state.reduced_at = now
            state.rate = state.reduced_to
        pause = retry_after if retry_after else self._window + state.margin
        state.paused_until = max(state.paused_until, now + pause)

    def stats(self) -> dict[str, KeyStats]:
        return {str(key): state.stats for key, state in self._keys.items()}

    def rates(self) -> dict[str, float]:
        """Each key's rate now (its cap, or less while it recovers from a throttle)."""
        now = self._clock.now()
        return {str(key): self.current_rate(key, now) for key in list(self._keys)}

    def cap(self, key: LimitKey) -> float:
        return self._state(key).cap
