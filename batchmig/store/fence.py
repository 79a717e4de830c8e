"""Self-fencing: a runner that cannot renew its leases stops sending before they expire.

Leases expire on the database's clock; a runner only knows when it last renewed them.
It started that renewal at ``t0`` on its own monotonic clock, and the database
stamped ``lease_until = now() + ttl`` after that, so the lease cannot expire before
``t0 + ttl``. The gate closes ``margin`` earlier (margin >= one call timeout): a call
sent while the gate is open is answered or timed out before another runner may take
the instance over. While the gate is closed every call waits — and must go through
the limiter again once it reopens, since the capacity it was admitted under may have
been handed to other runners meanwhile.

Which instances were lost is decided by the renewal (its epochs no longer match);
the engine cancels their tasks before the gate reopens, and the gate keeps their calls
in for good (``renewed(..., lost=...)``): a call already inside its shielded send (it
waited for a pooled connection, a connect or a token across the freeze) cannot be
cancelled, and would otherwise pass the reopened gate after the new owner reconciled
and sent the very same create. A call is judged by the instance's losses counted when
its intent was journaled (``losses``), so an instance this runner claims again later
sends its new calls, never a stale one.

The gate is looked at twice: when a call is admitted, and once more right before its
bytes leave (``last_look``, called by the transport). A runner that froze in between
(SIGSTOP, a pause of the machine) would otherwise send on waking a call it admitted
under a lease that may have passed to another runner meanwhile.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable

import anyio

from batchmig.errors import PermanentError
from batchmig.ratelimit import Clock, MonotonicClock


class LeaseLost(PermanentError):
    """This runner no longer holds the instance (another runner took it over)."""

    def __init__(self, message: str) -> None:
        super().__init__("LeaseLost", message)


class FenceClosed(Exception):
    """The gate closed between admitting a call and its bytes leaving: nothing was sent."""


class Fence:
    """The runner-wide gate in front of every call (see the module docstring)."""

    def __init__(self, ttl: float, margin: float, clock: Clock | None = None) -> None:
        if ttl < 2 * margin:
            raise ValueError(f"a lease of {ttl:g}s leaves no room for a self-fencing margin of {margin:g}s")
        self.ttl = ttl
        self.margin = margin
        self._clock = clock or MonotonicClock()
        self._deadline = -math.inf
        self._reopened = anyio.Event()
        self._dead: str | None = None
        self._losses: Counter[str] = Counter()
        self.closed_times = 0

    @property
    def deadline(self) -> float:
        """The local instant after which no call may be sent without a renewal."""
        return self._deadline

    def renewed(self, started: float, lost: Iterable[str] = ()) -> None:
        """A renewal that began at ``started`` (this runner's clock) succeeded; it found
        the leases of ``lost`` taken over: no call of theirs leaves any more."""
        self._losses.update(lost)
        self._deadline = max(self._deadline, started + self.ttl - self.margin)
        self._reopened.set()

    def is_open(self) -> bool:
        return self._dead is None and self._clock.now() < self._deadline

    def losses(self, instance: str) -> int:
        """How many times this runner has lost ``instance`` to another runner so far."""
        return self._losses[instance]

    def last_look(self, instance: str | None = None, losses: int = 0) -> None:
        """Right before a request leaves: raise ``FenceClosed`` to keep it in, or
        ``LeaseLost`` if it is a call of ``instance`` journaled when the instance had been
        lost ``losses`` times, and it has been lost again since."""
        if instance is not None and self._losses[instance] != losses:
            raise LeaseLost(f"another runner took {instance} over: its call was not sent")
        if not self.is_open():
            raise FenceClosed("this runner's leases may have run out since the call was admitted")

    def give_up(self, reason: str) -> None:
        """The runner stops for good: every waiting and later call fails with ``LeaseLost``."""
        self._dead = reason
        self._reopened.set()

    async def wait_open(self) -> bool:
        """Return at once (False) if open; else wait for a renewal and return True."""
        if self.is_open():
            return False
        self.closed_times += 1
        while not self.is_open():
            if self._dead is not None:
                raise LeaseLost(f"this runner stopped sending: {self._dead}")
            if self._reopened.is_set():
                self._reopened = anyio.Event()
            await self._reopened.wait()
        return True
