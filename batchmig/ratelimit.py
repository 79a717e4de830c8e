"""A strict, FIFO-fair, throttle-adaptive rate limiter keyed per cloud action.

Clouds cap each API per second (Tencent: 20/s for most actions). A token bucket whose
burst equals the rate admits up to twice the rate within one second (a full bucket
plus a refill) and gets the fleet throttled; this limiter never admits more than
``floor(rate)`` calls in any sliding window of ``window`` seconds.

Algorithm: a sliding log of *reservations* with even spacing. A caller reserves the
earliest instant ``t >= now`` that is at least ``span / N`` after the previous
reservation and at least ``span`` after the N-th previous one (``span`` = one second
plus a margin). Reservations are handed out in arrival order and never move, so
callers are served first come, first served, and both checks are O(1). Then the
caller sleeps until ``t``. This is GCRA with no burst (as in aiometer) plus the
sliding-log bound, which still holds if the rate changes between reservations.

Why even spacing rather than bursts of N: what counts is the server's clock. A call
released on time can arrive late (a loop stall, a new TCP connection); with bursts,
one late call of a burst lands in the next burst's second and the server sees N + 1.
Evenly spaced at ``(1 s + margin) / N``, a late call still fits as long as it is
late by less than the margin.

The margin is measured, not assumed. The server counts a call at some moment between
the call leaving and its answer coming back, so how far its stamp can drift from the
moment the call left is bounded by the answer's round trip. The pipeline reports
when each call really left (after signing, not when the limiter let it go) and when
its answer came back (``Release.left`` / ``Release.answered``); each key keeps the
largest round trip of its last 2N answers and spaces calls by one second plus that
(never less than the configured ``margin``, never more than ``MAX_MARGIN``). The
sliding-log check counts calls from when they left, and a call of N calls ago still
unanswered holds the next one back. Wherever within its round trip the server
counted each call, no second on its clock holds more than the cap (the property test
of ``tests/test_ratelimit.py``). So a quiet loopback (round trips of a millisecond)
runs at more than 99 % of the cap, a runner 20 ms from its cloud at 98 %, and a
stalling machine or server — whose round trips grow first — spaces its calls out
before the cloud's second overflows. Measured on the mixed 1,000-instance benchmark:
a fixed 0.05 s margin (95 % of the cap) still drew 0 to 7 throttles per run on a
loaded machine; docs/benchmarks.md has the measured margin's figures.

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
"""The most the measured margin widens a key's second (a stall longer than this is
taken to have ended before the next window's calls arrive)."""

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
    """The widest measured margin the key used (seconds added to its window)."""

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


class Release:
    """One admitted call, as its pipeline reports it back (both optional: a caller that
    never reports keeps the configured margin and the release time)."""

    __slots__ = ("_clock", "_state", "answered_at", "at", "serial")

    def __init__(self, state: _KeyState, clock: Clock, at: float) -> None:
        self._state = state
        self._clock = clock
        self.serial = state.serial
        """Which of the key's releases this is (``released[-1]`` was the last one)."""
        self.at = at
        """When the call left (the release time until ``left`` is reported)."""
        self.answered_at: float | None = None

    def left(self, now: float | None = None) -> None:
        """The request is about to be written (signing and JSON are done): from now on
        the key's log counts it, and until its answer it is in flight."""
        if self.answered_at is None:
            self.at = max(self.at, self._clock.now() if now is None else now)
            self._state.moved(self.serial, self.at)
            self._state.in_flight[self.serial] = self.at

    def answered(self, now: float | None = None) -> None:
        """The answer (or the failure) came back: the round trip sizes the key's margin."""
        if self.answered_at is None:
            now = self._clock.now() if now is None else now
            self.answered_at = now
            self._state.in_flight.pop(self.serial, None)
            self._state.observe(now - self.at)


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
    recent: deque[float] = field(default_factory=deque)
    reduced_at: float | None = None
    reduced_to: float = 0.0
    paused_until: float = 0.0
    stats: KeyStats = field(init=False)
    margin: float = field(init=False)
    trips: deque[tuple[int, float]] = field(default_factory=deque)
    """A sliding maximum over the last ``2 N`` answers: (answer number, round trip), decreasing."""
    answers: int = 0

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

    def observe(self, trip: float) -> None:
        """One more round trip: the margin becomes the largest recent one."""
        self.answers += 1
        trips = self.trips
        while trips and trips[-1][1] <= trip:
            trips.pop()
        trips.append((self.answers, trip))
        while trips[0][0] <= self.answers - 2 * self.reservations.maxlen:  # type: ignore[operator]
            trips.popleft()
        self.margin = min(MAX_MARGIN, max(self.floor_margin, trips[0][1]))
        self.stats.margin = max(self.stats.margin, self.margin)


class RateLimiter:
    """Admit calls per key at no more than the key's rate in any sliding window."""

    def __init__(
        self,
        rate_for: Callable[[LimitKey], float],
        *,
        clock: Clock | None = None,
        window: float = 1.0,
        margin: float = 0.005,
        recovery: float = 1.0,
        min_rate: float = 1.0,
    ) -> None:
        """``margin`` is the least a key's window is widened by; the measured round trips
        widen it further (see the module's docstring)."""
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

    def reserve(self, key: LimitKey, now: float | None = None) -> float:
        """Reserve the next admission instant for ``key`` (>= now); FIFO by call order."""
        state = self._state(key)
        now = self._clock.now() if now is None else now
        allowed = max(1, math.floor(self.current_rate(key, now) + 1e-9))
        slot = max(now, state.paused_until)
        span = self._window + state.margin
        log = state.reservations
        if log:
            slot = max(slot, log[-1] + self._gap(allowed, span))  # even spacing; also keeps FIFO order
        if len(log) >= allowed:
            slot = max(slot, log[-allowed] + span)
        log.append(slot)
        stats = state.stats
        stats.admitted += 1
        if slot > now:
            stats.waited += 1
            stats.wait_seconds += slot - now
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
        """
        slot = self.reserve(key)
        while True:
            delay = slot - self._clock.now()
            if delay > 0:
                await self._clock.sleep(delay)
            later = self._release(key)
            if later is None:
                return Release(self._state(key), self._clock, self._clock.now())
            slot = later

    def _release(self, key: LimitKey) -> float | None:
        """Release a call of ``key`` now if the window allows it (None), else say when to retry."""
        state = self._state(key)
        now = self._clock.now()
        allowed = max(1, math.floor(self.current_rate(key, now) + 1e-9))
        released = state.released
        span = self._window + state.margin
        gap = self._gap(allowed, span)
        if gap and released and released[-1] + gap > now + 1e-9:
            return released[-1] + gap
        if len(released) >= allowed:
            edge = released[-allowed] + span
            left = state.in_flight.get(state.serial - allowed + 1)
            if left is not None and now < left + MAX_MARGIN + self._window:
                # Still unanswered: it may reach the server any moment; look again shortly.
                edge = max(edge, min(now + IN_FLIGHT_RECHECK, left + MAX_MARGIN + self._window))
            if edge > now + 1e-9:
                return edge
        released.append(now)
        state.serial += 1
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
