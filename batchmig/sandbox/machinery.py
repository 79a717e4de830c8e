"""The parts every emulator shares: throttle, faults and the audit log.

* ``SlidingWindowThrottle`` counts admitted requests per (credential, region,
  action) in the last second, like a cloud gateway; over the cap the emulator
  answers in its own throttle dialect.
* ``FaultPlan`` injects failures by configuration: an error code with a probability
  or for the next N calls, added latency, a connection dropped *after* the server
  acted (the unknown outcome that idempotency has to survive), or a hang — before
  the server acts, or after it (``after_acting``: the answer is held back).
* ``AuditLog`` appends one JSON line per request, flushed at once, so tests can prove
  that no create or start call took effect twice, and read back what the cloud saw.
"""

from __future__ import annotations

import hashlib
import json
import random
import threading
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

FaultKind = Literal["error", "throttle", "drop", "latency", "hang"]


class SlidingWindowThrottle:
    """At most ``rate`` admitted requests per key in any window of ``window`` seconds."""

    def __init__(self, window: float = 1.0) -> None:
        self.window = window
        self._log: dict[tuple[str, ...], deque[float]] = {}
        self.rejected = 0

    def admit(self, key: tuple[str, ...], rate: float, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        log = self._log.setdefault(key, deque())
        while log and log[0] <= now - self.window:
            log.popleft()
        if len(log) >= int(rate):
            self.rejected += 1
            return False
        log.append(now)
        return True


@dataclass
class FaultRule:
    """One fault: which calls it hits and what it does to them.

    ``action`` and ``emulator`` are names or ``*``; ``mutating_only`` restricts it to
    calls that change state. ``probability`` applies to each matching call;
    ``count`` (if set) limits how many calls it hits in all.
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

    @classmethod
    def from_config(cls, items: Sequence[Mapping[str, Any]], seed: int = 0) -> FaultPlan:
        return cls([FaultRule(**dict(item)) for item in items], seed)

    def pick(self, emulator: str, action: str, mutating: bool) -> list[FaultRule]:
        chosen = []
        for rule in self.rules:
            if rule.matches(emulator, action, mutating) and self._rng.random() < rule.probability:
                rule.hits += 1
                chosen.append(rule)
        return chosen


def credential_fingerprint(credential: str) -> str:
    return hashlib.sha256(credential.encode()).hexdigest()[:12]


class AuditLog:
    """Append-only JSONL of every request the sandbox saw."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._file = open(path, "a", buffering=1, encoding="utf-8") if path else None  # noqa: SIM115
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
    """The most requests one (emulator, credential, action) had in any sliding window."""
    times: dict[tuple[str, str, str], list[float]] = {}
    for entry in entries:
        if entry.get("outcome") == "rejected":
            continue
        key = (entry["emulator"], entry.get("credential", ""), entry["action"])
        times.setdefault(key, []).append(entry["arrived"])
    result = {}
    for key, stamps in times.items():
        stamps.sort()
        best = start = 0
        for end, stamp in enumerate(stamps):
            while stamps[start] <= stamp - window:
                start += 1
            best = max(best, end - start + 1)
        result[key] = best
    return result
