"""The migration-task list's time window: formatted once a minute, the same texts as per reading."""

from __future__ import annotations

import time

from hypothesis import given
from hypothesis import strategies as st

from batchmig_alibabacloud.tasks import migrate_tasks

WEEK, DAY = 7 * 24 * 3600, 24 * 3600


def _text(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%MZ", time.gmtime(epoch))


def _window(now: float) -> tuple[str, str]:
    params = migrate_tasks("rm-window01", clock=lambda: now).page(0).params
    return params["StartTime"], params["EndTime"]


@given(readings=st.lists(st.floats(min_value=WEEK, max_value=4e9, allow_nan=False), min_size=1, max_size=20))
def test_the_window_is_a_week_back_and_a_day_ahead_of_every_reading(readings: list[float]) -> None:
    for now in readings:  # in any order: a clock that moves back must not get a later minute's window
        assert _window(now) == (_text(now - WEEK), _text(now + DAY))


def test_a_new_minute_moves_the_window() -> None:
    minute = 1_790_000_040.0  # a reading at the start of a minute
    assert _window(minute - 0.001) != _window(minute)
    assert _window(minute) == _window(minute + 59.999)
    assert _window(minute + 60) == (_text(minute + 60 - WEEK), _text(minute + 60 + DAY))
