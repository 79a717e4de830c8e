"""The limiter never admits more than the rate in any sliding second, serves FIFO, adapts."""

from __future__ import annotations

import time
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from loopback import loopback_server

from batchmig.engine.pipeline import Pipeline
from batchmig.engine.transport import HttpTransport
from batchmig.plugin import Call, Connection, HttpRequest, HttpResponse
from batchmig.ratelimit import MAX_MARGIN, LimitKey, RateLimiter, Release, SlotMissed
from batchmig.sandbox.machinery import max_per_window
from batchmig.testing import FakeClock

KEY = LimitKey("p", "acct", "r1", "Create")


def most_in_window(times: list[float], window: float = 1.0) -> int:
    times = sorted(times)
    best = start = 0
    for end, t in enumerate(times):
        while times[start] <= t - window:
            start += 1
        best = max(best, end - start + 1)
    return best


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=70),
    gaps=st.lists(st.floats(min_value=0, max_value=0.5, allow_nan=False), min_size=1, max_size=400),
)
def test_no_sliding_window_holds_more_than_the_rate(rate: int, gaps: list[float]) -> None:
    limiter = RateLimiter(lambda key: float(rate), margin=1e-6)
    now, slots = 0.0, []
    for gap in gaps:
        now += gap
        slots.append(limiter.reserve(KEY, now))
    assert most_in_window(slots) <= rate
    assert slots == sorted(slots), "reservations must be served first come, first served"
    assert all(slot >= arrival for slot, arrival in zip(slots, _arrivals(gaps), strict=True))


def _arrivals(gaps: list[float]) -> list[float]:
    out, now = [], 0.0
    for gap in gaps:
        now += gap
        out.append(now)
    return out


def test_a_burst_is_spread_not_doubled() -> None:
    """200 callers at once: evenly spaced, 20 in any second (a token bucket with burst
    20 would admit 40 within the first second)."""
    limiter = RateLimiter(lambda key: 20.0, margin=1e-6)
    slots = [limiter.reserve(KEY, 0.0) for _ in range(200)]
    assert most_in_window(slots) == 20
    assert slots[1] == pytest.approx(0.05, abs=1e-5) and slots[20] == pytest.approx(1.0, abs=1e-4)
    assert limiter.stats()[str(KEY)].max_in_window == 20
    assert max(slots) == pytest.approx(9.95, abs=1e-3)


@settings(max_examples=200, deadline=None)
@given(
    rate=st.integers(min_value=1, max_value=40),
    trips=st.lists(st.tuples(st.floats(min_value=0, max_value=0.3), st.floats(min_value=0, max_value=1)),
                   min_size=1, max_size=150),
    lag=st.sampled_from([0.0, 0.07, 0.3]),
    at_once=st.booleans(),
)
def test_arrivals_within_the_measured_round_trips_never_exceed_the_cap(
    rate: int, trips: list[tuple[float, float]], lag: float, at_once: bool
) -> None:
    """The server stamps each call somewhere between its leaving and its answer. With
    every round trip reported, no server second holds more than the cap, wherever in
    the round trip the server counted — also when wake-ups come late, and when every
    caller asks at once (then they are served first come, first served)."""
    clock = LaggyClock(lag)
    limiter = RateLimiter(lambda key: float(rate), clock=clock)
    arrivals: list[float] = []
    order: list[int] = []

    async def send(n: int, trip: float, where: float) -> None:
        release = await limiter.acquire(KEY)
        assert release is not None
        order.append(n)
        left = clock.now() + 0.0002  # signing
        release.left(left)
        arrivals.append(left + trip * where)
        release.answered(left + trip)

    async def send_all() -> None:
        async with anyio.create_task_group() as tg:
            for n, (trip, where) in enumerate(trips):
                if at_once:
                    tg.start_soon(send, n, trip, where)
                else:
                    await send(n, trip, where)

    anyio.run(send_all)
    assert most_in_window(arrivals) <= rate
    assert order == sorted(order)


@pytest.mark.anyio
async def test_a_call_of_one_window_ago_still_in_flight_holds_the_next_back() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(lambda key: 2.0, clock=clock)
    first = await limiter.acquire(KEY)
    first.left(clock.now())
    (await limiter.acquire(KEY)).answered(clock.now())
    await limiter.acquire(KEY)
    assert clock.now() >= 1.0 + MAX_MARGIN, "an unanswered call may still reach the server"


@pytest.mark.anyio
async def test_a_slow_answer_delays_the_key_once_by_its_lateness() -> None:
    clock = FakeClock(0.0)
    limiter = RateLimiter(lambda key: 10.0, clock=clock)
    departures, answers = [], []
    for trip in [0.001] * 12 + [0.3] + [0.001] * 20:
        release = await limiter.acquire(KEY)
        departures.append(clock.now())
        release.left()
        answers.append(clock.now() + trip)
        release.answered(answers[-1])
    slow = 12
    assert departures[slow + 10] >= answers[slow] + 1.0, "counted at its answer, the slow call fills its window"
    assert departures[slow + 10] < answers[slow] + 1.0 + 0.01
    pace = (departures[-1] - departures[slow + 10]) / (len(departures) - slow - 11)
    assert pace == pytest.approx(1.001 / 10, abs=0.0002), "the calls after it keep the pace: the delay is paid once"
    assert limiter.stats()[str(KEY)].margin < 0.05, "the average round trip follows the typical one, not the slowest"


@pytest.mark.anyio
async def test_slow_answers_at_the_start_do_not_stretch_the_later_windows() -> None:
    """A run's first calls answer slowly (its start is busy), then 40 callers queue. Each
    slow answer delays the one call a window after it; the calls after that keep the
    cap's pace: the queue is not spaced by the slow round trips of the start."""
    clock = LaggyClock()
    limiter = RateLimiter(lambda key: 5.0, clock=clock)
    departures: list[float] = []

    async def send(trip: float) -> None:
        release = await limiter.acquire(KEY)
        assert release is not None
        departures.append(clock.now())
        release.left()
        release.answered(clock.now() + trip)

    for _ in range(5):
        await send(0.2)
    async with anyio.create_task_group() as tg:
        for _ in range(40):
            tg.start_soon(send, 0.001)
    assert departures[5] == pytest.approx(departures[0] + 1.2, abs=0.01), "a slow answer holds back its window"
    pace = (departures[-1] - departures[10]) / (len(departures) - 11) * 5  # seconds per 5 calls
    assert pace == pytest.approx(1.002, abs=0.002)


@pytest.mark.anyio
async def test_a_caller_cancelled_in_the_queue_hands_on_its_turn() -> None:
    clock = LaggyClock()
    limiter = RateLimiter(lambda key: 2.0, clock=clock)
    released: list[int] = []

    async def send(n: int, scope: anyio.CancelScope | None = None) -> None:
        with scope or anyio.CancelScope():
            await limiter.acquire(KEY)
            released.append(n)

    async with anyio.create_task_group() as tg:
        for n in range(3):
            tg.start_soon(send, n)
        await anyio.lowlevel.checkpoint()
        cancelled = anyio.CancelScope()
        tg.start_soon(send, 99, cancelled)  # queued behind the three, then cancelled
        for n in range(3, 6):
            tg.start_soon(send, n)
        await anyio.lowlevel.checkpoint()
        cancelled.cancel()
    assert released == [0, 1, 2, 3, 4, 5]


def test_keys_are_independent() -> None:
    limiter = RateLimiter(lambda key: 2.0 if key.action == "Create" else 5.0, margin=1e-6)
    other = KEY._replace(action="Describe")
    assert [limiter.reserve(KEY, 0.0) for _ in range(3)] == pytest.approx([0.0, 0.5, 1.0], abs=1e-5)
    assert [limiter.reserve(other, 0.0) for _ in range(5)] == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8], abs=1e-5)


def test_throttle_halves_the_rate_pauses_and_recovers() -> None:
    limiter = RateLimiter(lambda key: 20.0, margin=1e-6, recovery=2.0)
    limiter.reserve(KEY, 0.0)
    limiter.penalize(KEY, retry_after=None, now=0.0)
    assert limiter.current_rate(KEY, 0.0) == 10.0
    assert limiter.reserve(KEY, 0.0) >= 1.0, "a throttled key pauses for a window"
    assert limiter.current_rate(KEY, 2.5) == pytest.approx(15.0)
    assert limiter.current_rate(KEY, 10.0) == 20.0
    stats = limiter.stats()[str(KEY)]
    assert stats.throttled == 1


def test_throttle_storm_does_not_drive_rate_below_minimum() -> None:
    limiter = RateLimiter(lambda key: 20.0, margin=1e-6, min_rate=1.0)
    for second in range(20):
        limiter.penalize(KEY, now=second * 2.0)
    assert limiter.current_rate(KEY, 40.0) >= 1.0


@settings(max_examples=50, deadline=None)
@given(throttle_at=st.lists(st.integers(min_value=0, max_value=300), max_size=10))
def test_window_bound_holds_while_rate_changes(throttle_at: list[int]) -> None:
    limiter = RateLimiter(lambda key: 20.0, margin=1e-6, recovery=5.0)
    slots = []
    for i in range(300):
        now = i * 0.01
        if i in throttle_at:
            limiter.penalize(KEY, now=now)
        slots.append(limiter.reserve(KEY, now))
    assert most_in_window(slots) <= 20


@pytest.mark.anyio
async def test_acquire_sleeps_until_the_reserved_slot(fake_clock: FakeClock) -> None:
    limiter = RateLimiter(lambda key: 2.0, clock=fake_clock, margin=1e-6)
    for _ in range(5):
        await limiter.acquire(KEY)
    assert fake_clock.slept == [pytest.approx(0.5, abs=1e-5)] * 4


def test_audit_window_helper_counts_like_the_limiter() -> None:
    entries = [{"emulator": "e", "credential": "c", "action": "A", "arrived": t} for t in (0, 0.5, 0.99, 1.0, 1.5)]
    assert max_per_window(entries) == {("e", "c", "A"): 3}


class LaggyClock(FakeClock):
    """Every other sleep overshoots by ``lag`` seconds, like a loaded event loop; a sleep
    lets the other tasks run (the callers queued behind the sleeping one)."""

    def __init__(self, lag: float = 0.0) -> None:
        super().__init__(0.0)
        self.lag = lag
        self.sleeps = 0

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        await super().sleep(seconds + (self.lag if self.sleeps % 2 else 0.0))
        await anyio.lowlevel.checkpoint()


@pytest.mark.anyio
async def test_late_wakeups_cannot_squeeze_two_batches_into_one_second() -> None:
    clock = LaggyClock(lag=0.3)
    limiter = RateLimiter(lambda key: 5.0, clock=clock, margin=1e-6)
    released = []
    for _ in range(40):
        await limiter.acquire(KEY)
        released.append(clock.now())
    assert most_in_window(released) <= 5


class _PostConnection(Connection):
    account, region = "acct", "r1"

    def __init__(self, url: str, slow_first: float = 0.0) -> None:
        self.url, self.slow_first = url, slow_first

    async def prepare(self, call: Call) -> HttpRequest:
        if self.slow_first:  # the first call takes long to prepare (a token to fetch, say)
            delay, self.slow_first = self.slow_first, 0.0
            await anyio.sleep(delay)
        return HttpRequest("POST", self.url, {"Content-Type": "application/json"}, b"{}")

    def parse(self, call: Call, response: HttpResponse) -> dict[str, Any]:
        return {"status": response.status}


@pytest.mark.anyio
async def test_a_call_is_counted_from_its_write_not_from_its_hand_over() -> None:
    """The runner stalls after handing a request to the transport and before writing it
    (a starved machine, a pool without a free connection): the limiter must count the
    call from the write, or an unanswered call held in flight for ``MAX_MARGIN`` could
    reach the cloud after the limiter took it to have arrived."""
    arrived: list[float] = []
    releases: list[Release] = []

    class Recording(RateLimiter):
        async def acquire(self, key: LimitKey) -> Release | None:
            release = await super().acquire(key)
            assert release is not None
            releases.append(release)
            return release

    async with loopback_server(arrived) as url, HttpTransport(5.0) as transport:
        async def stalled(request: HttpRequest) -> HttpResponse:
            time.sleep(MAX_MARGIN + 0.3)  # the whole loop stops between hand-over and write
            return await transport.send(request)

        pipeline = Pipeline({"c": ("p", _PostConnection(url))}, Recording(lambda key: 100.0), stalled)
        handed = time.monotonic()
        await pipeline.read("c", Call("Describe", {}))
    assert len(releases) == 1 and len(arrived) == 1
    assert handed + MAX_MARGIN + 0.3 <= releases[0].at <= arrived[0]


@pytest.mark.anyio
async def test_a_call_released_but_not_yet_sent_holds_back_the_call_a_cap_later() -> None:
    """At a cap of 1, the first call is released and then takes 1.2 s to prepare; the
    second, released a window later, must not reach the server within a window of the
    first (it once went at once: the first was taken to have arrived at its release)."""
    arrived: list[float] = []
    async with loopback_server(arrived) as url, HttpTransport(5.0) as transport:
        pipeline = Pipeline({"c": ("p", _PostConnection(url, slow_first=1.2))}, RateLimiter(lambda key: 1.0),
                            transport.send)
        async with anyio.create_task_group() as tg:
            tg.start_soon(pipeline.read, "c", Call("Describe", {}))
            await anyio.sleep(0.05)
            tg.start_soon(pipeline.read, "c", Call("Describe", {}))
    assert len(arrived) == 2 and arrived[1] - arrived[0] >= 1.0


@pytest.mark.anyio
async def test_a_call_past_its_slot_deadline_is_not_written_and_queues_again() -> None:
    """A limiter whose slots are reserved elsewhere (the shared store's exact mode) gives
    each release a deadline. The first release here is already past it (a runner that
    woke late): its bytes must not leave; the call is admitted again and sent once."""
    arrived: list[float] = []
    releases: list[Release] = []

    class Late(RateLimiter):
        async def acquire(self, key: LimitKey) -> Release | None:
            release = await super().acquire(key)
            assert release is not None
            release.deadline = time.monotonic() - (0.01 if not releases else -5.0)
            releases.append(release)
            return release

    async with loopback_server(arrived) as url, HttpTransport(5.0) as transport:
        pipeline = Pipeline({"c": ("p", _PostConnection(url))}, Late(lambda key: 100.0), transport.send)
        await pipeline.read("c", Call("Describe", {}))
    assert len(releases) == 2 and len(arrived) == 1
    assert releases[0].answered_at is not None and releases[0].answered_at < releases[1].at  # abandoned
    assert pipeline.stats.sent["Describe"] == 1


@pytest.mark.anyio
async def test_a_release_checks_its_deadline() -> None:
    clock = FakeClock(10.0)
    release = await RateLimiter(lambda key: 5.0, clock=clock).acquire(KEY)
    assert release is not None
    release.check_on_time()  # no deadline: always on time
    release.deadline = clock.now() + 0.5
    clock.advance(0.5)
    release.check_on_time()
    clock.advance(0.01)
    with pytest.raises(SlotMissed):
        release.check_on_time()
