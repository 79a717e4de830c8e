"""Calls, throttles and retries per limiter key over time, for reports and metrics.

The limiter's counters say how many calls a key admitted in all; the HTML report and
the dashboard also show *when*: calls per second against the cap, and where the
throttles and retries fell. The pipeline counts every call into one bucket per second
(a dict lookup and an increment: nothing that shows in the per-call cost). A long run
keeps its memory flat: past ``MAX_BUCKETS`` buckets every series merges pairs of
buckets and the bucket width doubles, so a ten-hour run still has a few hundred.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from batchmig.ratelimit import LimitKey
from batchmig.report.model import TrafficSeries, moment

MAX_BUCKETS = 720

CALL, THROTTLE, RETRY = 0, 1, 2


@dataclass
class _Series:
    counts: tuple[list[int], list[int], list[int]] = field(default_factory=lambda: ([], [], []))


class Traffic:
    """Per-key counts of calls, throttles and retries in equal time buckets."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._start = clock()
        self._wall_start = wall()
        self._width = 1.0
        self._series: dict[str, _Series] = {}
        self.totals: dict[str, list[int]] = {}
        """Key -> [calls, throttled, retries] over the whole process."""

    def add(self, key: LimitKey, kind: int) -> None:
        """Count one event of ``kind`` (CALL, THROTTLE or RETRY) for ``key`` now."""
        name = str(key)
        series = self._series.get(name)
        if series is None:
            series = self._series[name] = _Series()
            self.totals[name] = [0, 0, 0]
        self.totals[name][kind] += 1
        index = int((self._clock() - self._start) / self._width)
        while index >= MAX_BUCKETS:
            self._coarsen()
            index //= 2
        row = series.counts[kind]
        if index >= len(row):
            row.extend([0] * (index + 1 - len(row)))
        row[index] += 1

    def _coarsen(self) -> None:
        self._width *= 2
        for series in self._series.values():
            for row in series.counts:
                row[:] = [sum(row[i:i + 2]) for i in range(0, len(row), 2)]

    def series(self) -> dict[str, TrafficSeries]:
        """Every key's series, all of one length (from the start to the last bucket with an event)."""
        length = max((len(row) for s in self._series.values() for row in s.counts), default=0)
        start = moment(self._wall_start)
        return {
            name: TrafficSeries(start, self._width, *(tuple(row + [0] * (length - len(row))) for row in s.counts))
            for name, s in self._series.items()
        }
