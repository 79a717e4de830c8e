"""engine/deadlines.py: many deadlines on one timer of the loop fire as timers of their own would."""

from __future__ import annotations

import asyncio

import pytest

from batchmig.engine.deadlines import COMPACT_SLACK, Deadlines

pytestmark = pytest.mark.anyio


async def test_deadlines_fire_in_order_and_cancelled_ones_never() -> None:
    deadlines = Deadlines()
    fired: list[str] = []
    done = asyncio.Event()
    now = asyncio.get_running_loop().time()
    deadlines.at(now + 0.03, fired.append, "c")
    deadlines.at(now + 0.01, fired.append, "a")
    dropped = deadlines.at(now + 0.02, fired.append, "dropped")
    deadlines.at(now + 0.02, fired.append, "b")
    deadlines.at(now + 0.04, done.set)
    dropped.cancel()
    dropped.cancel()  # a second cancel is a no-op
    await done.wait()
    assert fired == ["a", "b", "c"]


async def test_a_deadline_added_earlier_than_the_armed_one_fires_first() -> None:
    deadlines = Deadlines()
    fired: list[str] = []
    done = asyncio.Event()
    deadlines.after(0.05, fired.append, "late")
    deadlines.after(0.06, done.set)
    deadlines.after(0.0, fired.append, "early")
    await done.wait()
    assert fired == ["early", "late"]


async def test_a_callback_may_add_a_deadline_and_cancel_another() -> None:
    deadlines = Deadlines()
    fired: list[str] = []
    done = asyncio.Event()
    victim = deadlines.after(0.03, fired.append, "cancelled by the first")

    def first() -> None:
        fired.append("first")
        victim.cancel()
        deadlines.after(0.0, fired.append, "added by the first")
        deadlines.after(0.01, done.set)

    deadlines.after(0.0, first)
    await done.wait()
    await asyncio.sleep(0.03)
    assert fired == ["first", "added by the first"]


async def test_cancelled_deadlines_do_not_pile_up() -> None:
    deadlines = Deadlines()
    live = [deadlines.after(3600, lambda: None) for _ in range(10)]
    for _ in range(20 * COMPACT_SLACK):
        deadlines.after(3600, lambda: None).cancel()
    assert len(deadlines._heap) <= 2 * len(live) + COMPACT_SLACK + 1
    for deadline in live:
        deadline.cancel()
    assert deadlines._timer is None or len(deadlines._heap) <= COMPACT_SLACK
    deadlines.close()
    assert deadlines._timer is None and not deadlines._heap


async def test_close_drops_every_deadline() -> None:
    deadlines = Deadlines()
    fired: list[str] = []
    deadlines.after(0.01, fired.append, "never")
    deadlines.close()
    await asyncio.sleep(0.03)
    assert fired == []
