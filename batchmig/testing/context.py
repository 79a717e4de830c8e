"""A sandbox context for testing one emulator directly: in-memory state, a hand-moved clock.

The sandbox host gives every emulator a ``SandboxContext`` whose clock is the wall
clock. A test of an emulator's timed transitions wants to say "ten minutes later"
instead of waiting: ``FakeSandboxContext`` starts at the real time (so signatures
stamped with the real clock are accepted) and moves only when ``advance`` is called.
Its store is the sandbox's own SQLite store, in memory, so an emulator under test
keeps state exactly as it does in ``batchmig sandbox serve``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Mapping
from typing import Any

from batchmig.emulator import StateStore
from batchmig.sandbox.store import StateFile


def memory_store(emulator: str = "emulator") -> StateStore:
    """An empty in-memory ``StateStore`` (the sandbox's store, without a file)."""
    return StateFile(None).store(emulator)


class FakeSandboxContext:
    """A ``SandboxContext`` whose clock moves only when told to.

    ``now()`` starts at the real time (rounded down to a second) and moves by
    ``advance(seconds)``; ``cloud_seconds_since`` scales by ``time_scale`` as the
    host does. ``random()`` is seeded, so a test sees the same draws every time.
    """

    def __init__(
        self,
        *,
        options: Mapping[str, Any] | None = None,
        credentials: Mapping[str, str] | None = None,
        time_scale: float = 1.0,
        seed: int = 7,
        store: StateStore | None = None,
    ) -> None:
        self.store: StateStore = store if store is not None else memory_store()
        self.time_scale = time_scale
        self.options: Mapping[str, Any] = dict(options or {})
        self.credentials: Mapping[str, str] = dict(credentials or {})
        self.clock = float(int(time.time()))
        self._random = random.Random(seed)

    def now(self) -> float:
        return self.clock

    def advance(self, seconds: float) -> None:
        """Move the clock ``seconds`` (wall seconds; cloud time moves ``time_scale`` times as far)."""
        self.clock += seconds

    def cloud_seconds_since(self, wall_time: float) -> float:
        return max(0.0, (self.clock - wall_time) * self.time_scale)

    def random(self) -> float:
        return self._random.random()
