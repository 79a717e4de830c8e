"""Steps' deadlines on one timer of the loop (``runner._Deadlines``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from batchmig.engine.runner import _Deadlines


class _Fired:
    def __init__(self) -> None:
        self.at: dict[str, float] = {}

    def __call__(self, iid: str, scope: Any) -> None:
        assert iid not in self.at, "a deadline fires once"
        self.at[iid] = asyncio.get_running_loop().time()


@pytest.mark.anyio
async def test_deadlines_fire_when_due_soonest_first_and_not_once_disarmed() -> None:
    fired = _Fired()
    deadlines = _Deadlines(fired)
    loop = asyncio.get_running_loop()
    start = loop.time()
    deadlines.arm("late", 0.30, None)  # type: ignore[arg-type]
    deadlines.arm("ended", 0.05, None)  # type: ignore[arg-type]
    deadlines.arm("soon", 0.10, None)  # type: ignore[arg-type]  (sooner than the timer was set for)
    deadlines.disarm("ended")  # its step ended first: the timer goes off for nothing and looks again
    await asyncio.sleep(0.2)
    assert list(fired.at) == ["soon"]
    deadlines.arm("later", 0.05, None)  # type: ignore[arg-type]
    await asyncio.sleep(0.25)
    assert list(fired.at) == ["soon", "later", "late"]
    assert 0.10 - _Deadlines.EARLY <= fired.at["soon"] - start < 0.18
    assert 0.30 - _Deadlines.EARLY <= fired.at["late"] - start < 0.38


@pytest.mark.anyio
async def test_a_deadline_disarmed_in_time_never_fires_and_leaves_no_timer_behind() -> None:
    fired = _Fired()
    deadlines = _Deadlines(fired)
    for n in range(100):
        deadlines.arm(f"i-{n}", 0.05, None)  # type: ignore[arg-type]
        deadlines.disarm(f"i-{n}")
    await asyncio.sleep(0.1)
    assert fired.at == {} and deadlines._timer is None
