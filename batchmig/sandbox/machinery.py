"""The parts every emulator shares: throttle, faults and the audit log.

* ``SlidingWindowThrottle`` admits at most the cap per (credential, region, action)
  in any sliding second, like a cloud gateway; over the cap the emulator answers in
  its own throttle dialect.
* ``FaultPlan`` injects failures by configuration: an error code with a probability
  or for the next N calls, added latency, a connection dropped *after* the server
  acted (the unknown outcome that idempotency has to survive), or a hang — before
  the server acts, or after it (``after_acting``: the answer is held back); and the
  eventual consistency of real clouds: lists that lag behind creates (``list_lag``),
  answers cut short (``truncate``); and an error that quotes the request back
  (``echo``, see ``batchmig.sandbox.echo``). A misspelt setting is refused, with its place.
  A rule can be ``name``d and another armed only ``after`` it has fired, to stage a
  sequence: e.g. lose one create's answer, then stall every request, so a client is
  caught (and can be killed) in the middle of finding out what became of it.
* ``AuditLog`` appends one JSON line per request, flushed at once, so tests can prove
  that no create or start call took effect twice, that no key was admitted more than
  its cap in any sliding second, and read back what the cloud saw. Each admitted or
  throttled request carries ``arrived`` (the host's monotonic clock when its handler
  started), ``decided`` (when the kernel received it: the stamp the throttle judged)
  and ``cap`` (the key's cap at that moment), so a benchmark can compare every key's
  worst second with its cap.
* ``received_at`` is when the kernel received a request's last byte: the moment a
  cloud's gateway counts, whatever the emulator's own event loop was doing then.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import math
import random
import socket
import struct
import threading
import time
import typing
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from batchmig.private_files import open_private

FaultKind = Literal["error", "throttle", "drop", "latency", "hang", "list_lag", "truncate", "echo"]
FAULT_KINDS: tuple[str, ...] = typing.get_args(FaultKind)


class SlidingWindowThrottle:
    """At most ``rate`` admissions per key in any window of ``window`` seconds.

    Exact for any order of stamps, not only increasing ones: admitting a request at
    ``now`` must keep *every* window that would contain it at or under the cap, both
    the one ending at ``now`` and those ending at later stamps already admitted (a
    check of ``(now - window, now]`` alone lets a late, older stamp overfill a window
    ending after it). Stamps are kept sorted for ``horizon`` seconds behind the newest
    (at least three windows, so rounding never drops one that matters), so a stamp up
    to that late is decided exactly; an older one (whose neighbours are gone) is
    refused rather than guessed. Membership is always tested as ``t - window < s <= t``,
    the same float expression the counts of the audit log use: ``s < t + window`` can
    round (1.0 + 5.6e-17 == 1.0) and let a stamp into a window it overfills. The host
    stamps each request with the moment the kernel received it (``received_at``), and
    an emulator short of CPU reads its connections in another order than their
    requests arrived, seconds late: stamps reach the throttle out of order, which is
    what the property test exercises.
    """

    def __init__(self, window: float = 1.0, horizon: float = 60.0) -> None:
        self.window = window
        self.horizon = max(horizon, 3 * window)
        self._stamps: dict[tuple[str, ...], list[float]] = {}
        self.rejected = 0

    def admit(self, key: tuple[str, ...], rate: float, now: float) -> bool:
        stamps = self._stamps.setdefault(key, [])
        if self._fits(stamps, int(rate), now):
            bisect.insort_right(stamps, now)
            del stamps[: bisect.bisect_right(stamps, stamps[-1] - self.horizon)]
            return True
        self.rejected += 1
        return False

    def _fits(self, stamps: list[float], cap: int, now: float) -> bool:
        if cap < 1 or (stamps and now <= stamps[-1] - self.horizon + self.window):
            return False
        window = self.window
        position = bisect.bisect_right(stamps, now)
        # The window ending at ``now``, then each window ending at a later stamp that holds ``now``.
        if position - bisect.bisect_right(stamps, now - window) + 1 > cap:
            return False
        later = position
        while later < len(stamps) and stamps[later] - window < now:
            if later - bisect.bisect_right(stamps, stamps[later] - window) + 2 > cap:
                return False
            later += 1
        return True


@dataclass
class FaultRule:
    """One fault: which calls it hits and what it does to them.

    ``action`` and ``emulator`` are names or ``*``; ``mutating_only`` restricts it to
    calls that change state. ``probability`` applies to each matching call;
    ``count`` (if set) limits how many calls it hits in all.

    Eventual consistency: ``list_lag`` makes a list answer leave out the resources
    created in the last ``seconds`` (the emulator's list actions honour
    ``RequestInfo.list_lag``; ``.inf`` hides them all: an empty page); ``truncate``
    answers with the body cut to its first ``keep_bytes`` bytes (0: an empty body).
    """

    kind: FaultKind
    action: str = "*"
    emulator: str = "*"
    code: str | None = None
    probability: float = 1.0
    count: int | None = None
    seconds: float = 0.0
    mutating_only: bool = False
    after_acting: bool = False
    """For latency/hang: act first, then hold the answer (an outcome the client cannot know yet)."""
    keep_bytes: int = 0
    """For truncate: how much of the answer's body survives."""
    name: str | None = None
    """Lets another rule say ``after: NAME``."""
    after: str | None = None
    """The rule is armed only once the rule named so has fired."""
    hits: int = 0

    def matches(self, emulator: str, action: str, mutating: bool) -> bool:
        return (
            (self.emulator in ("*", emulator))
            and (self.action in ("*", action))
            and (mutating or not self.mutating_only)
            and (self.count is None or self.hits < self.count)
        )


@dataclass
class FaultPlan:
    rules: list[FaultRule] = field(default_factory=list)
    seed: int = 0

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        names = {rule.name for rule in self.rules if rule.name}
        unknown = sorted({rule.after for rule in self.rules if rule.after and rule.after not in names})
        if unknown:
            raise ValueError(f"fault rules armed after unknown names: {', '.join(unknown)}")

    @classmethod
    def from_config(cls, items: Sequence[Mapping[str, Any]], seed: int = 0) -> FaultPlan:
        """The plan of a ``faults:`` list; ``ValueError`` names the first bad entry."""
        if not isinstance(items, Sequence) or isinstance(items, str):
            raise ValueError("faults: expected a list of faults")
        return cls([_fault_rule(index, item) for index, item in enumerate(items)], seed)

    def pick(self, emulator: str, action: str, mutating: bool) -> list[FaultRule]:
        """The rules that act on this call, in order; only they count a hit (``count``, ``after``).

        An answering fault (error, throttle, echo) ends the list: the server answers it
        without acting, so a drop, a held answer, a lagging list or a cut answer drawn
        for the same call does not happen and has not fired — a staged "drop the next
        create" waits for a create that is carried out, instead of being spent on one
        a throttle turned away (and arming what comes ``after`` it for nothing).
        """
        drawn = []
        fired = {rule.name for rule in self.rules if rule.name and rule.hits}
        for rule in self.rules:
            if rule.after is not None and rule.after not in fired:
                continue
            if rule.matches(emulator, action, mutating) and self._rng.random() < rule.probability:
                drawn.append(rule)
        answering = next((index for index, rule in enumerate(drawn) if rule.kind in _ANSWERING), None)
        if answering is not None:
            before = [rule for rule in drawn[:answering] if rule.kind in ("latency", "hang") and not rule.after_acting]
            drawn = [*before, drawn[answering]]
        for rule in drawn:
            rule.hits += 1
        return drawn


_ANSWERING = {"error", "throttle", "echo"}
"""Faults the server answers instead of acting."""
_RULE_FIELDS = [name for name in FaultRule.__dataclass_fields__ if name != "hits"]
_RANGES = {"probability": (0.0, 1.0), "seconds": (0.0, math.inf), "count": (0, math.inf), "keep_bytes": (0, math.inf)}
_WHOLE = {"count", "keep_bytes"}
_FLAGS = {"mutating_only", "after_acting"}
_NAMES = {"action", "emulator", "code", "name", "after"}


def _fault_rule(index: int, item: Any) -> FaultRule:
    """One checked fault of a configuration (``faults[index]`` in messages)."""
    where = f"faults[{index}]"
    if not isinstance(item, Mapping):
        raise ValueError(f"{where}: expected a mapping such as {{kind: drop, probability: 0.1}}")
    unknown = sorted(set(item) - set(_RULE_FIELDS))
    if unknown:
        raise ValueError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(_RULE_FIELDS)})")
    if item.get("kind") not in FAULT_KINDS:
        raise ValueError(f"{where}: kind must be one of {', '.join(FAULT_KINDS)}, not {item.get('kind')!r}")
    for name, value in item.items():
        if name in _RANGES and not (name == "count" and value is None):
            low, high = _RANGES[name]
            number_type = int if name in _WHOLE else (int, float)
            if isinstance(value, bool) or not isinstance(value, number_type) or not low <= value <= high:
                expected = "a whole number" if name in _WHOLE else "a number"
                raise ValueError(f"{where}: {name} must be {expected} from {low:g} to {high:g}, not {value!r}")
        elif name in _FLAGS and not isinstance(value, bool):
            raise ValueError(f"{where}: {name} must be true or false, not {value!r}")
        elif name in _NAMES and value is not None and not isinstance(value, str):
            raise ValueError(f"{where}: {name} must be a name, not {value!r}")
    if item["kind"] == "list_lag" and not item.get("seconds"):
        raise ValueError(f"{where}: list_lag needs seconds (how long new resources stay out of lists)")
    return FaultRule(**dict(item))


_TCP_INFO = getattr(socket, "TCP_INFO", None)
_LAST_DATA_RECV = struct.Struct("=I")
_LAST_DATA_RECV_OFFSET = 52
"""``tcpi_last_data_recv`` in Linux's ``struct tcp_info``: milliseconds since data last
arrived on the connection (8 one-byte fields, then 32-bit ones; it is the 12th)."""


STALLED_TICKS = 6
"""Ticks the kernel's jiffies can lag the clock: a tick whose CPU's timer is late (a VM's
vCPU held by its host) is made up by another CPU only after five of its own ticks
(Linux's ``MAX_STALLED_JIFFIES``), plus the tick the receipt fell in."""


_CLOCK_MONOTONIC_COARSE = 6
"""Linux's id of the coarse monotonic clock (Python's ``time`` does not name it)."""


def _kernel_tick() -> float:
    """One jiffy, in seconds: the resolution of Linux's tick-driven coarse clock (1/HZ);
    HZ = 100, Linux's coarsest, where it cannot be read."""
    try:
        return time.clock_getres(_CLOCK_MONOTONIC_COARSE)
    except OSError:
        return 0.010


RECEIVE_ALLOWANCE = STALLED_TICKS * _kernel_tick()
"""How much later than the kernel's receive time a stamp is moved, so it is never early:
24 ms at HZ = 250 (this project's machines)."""


def received_at(sock: Any, clock: Callable[[], float] = time.monotonic) -> float:
    """When the kernel received the last byte on ``sock``, on ``clock``, never too early.

    A cloud counts a request when it reaches its gateway. An emulator stamping the
    moment its own event loop gets round to a request would, when starved of CPU (a
    small CI machine running runners, PostgreSQL and the sandbox at once), turn a
    backlog of evenly spaced requests into a burst no client sent. The kernel's
    receive time does not depend on that: Linux keeps it per connection, in jiffies.
    An HTTP/1.1 client sends nothing more on a connection until it has the answer, so
    once a request has been read the last data received is its last byte.

    Jiffies are not the clock. They advance a tick at a time, and they can fall
    several ticks behind it: when the CPU that keeps them is held up (a VM whose host
    runs something else), they catch up only at its next tick or after five ticks of
    another CPU. A request received then is given a jiffy from before it was sent, and
    judged by that stamp an exact client limiter (a call leaves a window after the
    answer to the call N before) has N + 1 calls in one second: measured here, the
    tick-driven clock lagged by up to 13.8 ms in ten minutes at HZ = 250, and the fleet
    benchmark drew a throttle about one run in thirteen while the stamp added one tick
    of 10 ms. So the stamp is moved ``RECEIVE_ALLOWANCE`` later — never before the
    request truly arrived — and never past ``clock`` read now (the request has arrived
    by then): it always lies between the client's sending and its reading the answer,
    where a client's limiter must expect the cloud to count it. A handler that gets to
    a request within the allowance stamps it with its own time; only a backlog longer
    than that (a starved emulator) is stamped earlier than it was read. Elsewhere, or
    without a socket, ``clock`` now.
    """
    if _TCP_INFO is None or sock is None:
        return clock()
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, _LAST_DATA_RECV_OFFSET + 4)
    except OSError:
        return clock()
    now = clock()  # read after the kernel's clock, so the elapsed time is not overstated
    if len(info) < _LAST_DATA_RECV_OFFSET + 4:
        return now
    elapsed_ms: int = _LAST_DATA_RECV.unpack_from(info, _LAST_DATA_RECV_OFFSET)[0]
    return min(now, now - elapsed_ms / 1000.0 + RECEIVE_ALLOWANCE)


def credential_fingerprint(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()[:12]


class AuditLog:
    """Append-only JSONL of every request the sandbox saw."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file = open_private(path, "a", buffering=1, encoding="utf-8") if path else None
        if path is not None and self._file is not None and _ends_mid_line(path):
            # A sandbox killed while writing left half a line: end it, so that the next
            # entry is not glued to it and lost with it when the log is read.
            self._file.write("\n")
        self.entries: list[dict[str, Any]] | None = [] if path is None else None

    def write(self, entry: dict[str, Any]) -> None:
        entry = {"ts": round(time.time(), 6), **entry}
        if self._file is not None:
            with self._lock:
                self._file.write(json.dumps(entry, separators=(",", ":")) + "\n")
        elif self.entries is not None:
            self.entries.append(entry)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


def _ends_mid_line(path: Path) -> bool:
    with open(path, "rb") as handle:
        if handle.seek(0, 2) == 0:
            return False
        handle.seek(-1, 2)
        return handle.read(1) != b"\n"


def read_audit(path: Path) -> Iterator[dict[str, Any]]:
    """The entries of an audit log, skipping a last line cut off by a crash."""
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            try:
                yield json.loads(line)
            except json.JSONDecodeError:
                continue


def duplicate_effects(entries: Iterator[dict[str, Any]] | list[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
    """(emulator, action, resource) that changed state more than once -> count."""
    seen: dict[tuple[str, str, str], int] = {}
    for entry in entries:
        if entry.get("changed") and entry.get("resource"):
            key = (entry["emulator"], entry["action"], entry["resource"])
            seen[key] = seen.get(key, 0) + 1
    return {key: count for key, count in seen.items() if count > 1}


def max_per_window(entries: list[dict[str, Any]], window: float = 1.0) -> dict[tuple[str, str, str], int]:
    """The most requests one (emulator, credential, action) *sent* in any sliding window.

    Counted at the stamp the throttle decides on (``decided``: when the kernel received
    the request), throttled requests included: the client's own pace as the cloud
    sees it, which a client-side limiter keeps at the cap. Over the cap here means the
    sandbox answered "throttled" at least once."""
    times: dict[tuple[str, str, str], list[float]] = {}
    for entry in entries:
        if entry.get("outcome") == "rejected":
            continue
        key = (entry["emulator"], entry.get("credential", ""), entry["action"])
        times.setdefault(key, []).append(entry.get("decided", entry["arrived"]))
    return {key: _most_in_window(stamps, window) for key, stamps in times.items()}


def max_admitted_per_window(
    entries: list[dict[str, Any]], window: float = 1.0
) -> dict[tuple[str, str, str, str], int]:
    """The most requests the sandbox *admitted* per throttle key (emulator, credential,
    region, action) in any sliding window, by the stamp its throttle decided on
    (``decided``). The sandbox's promise is that this never exceeds the key's cap."""
    times: dict[tuple[str, str, str, str], list[float]] = {}
    for entry in entries:
        if "decided" in entry and entry.get("outcome") != "throttled":
            key = (entry["emulator"], entry.get("credential", ""), entry.get("region", ""), entry["action"])
            times.setdefault(key, []).append(entry["decided"])
    return {key: _most_in_window(stamps, window) for key, stamps in times.items()}


def _most_in_window(stamps: list[float], window: float) -> int:
    """The largest number of stamps in any window ``(t - window, t]``."""
    stamps = sorted(stamps)
    best = start = 0
    for end, stamp in enumerate(stamps):
        while stamps[start] <= stamp - window:
            start += 1
        best = max(best, end - start + 1)
    return best
