"""Catch a runner in the unknown-outcome window and SIGKILL it there.

The window: the cloud carried out a mutating call, its answer was lost, the runner
journaled the call's outcome as ``unknown`` and is now finding out (reconciling)
whether it took effect. A runner killed there must, on resume, look before it sends
anything again. ``lost_answer_faults(emulator, action)`` stages the window in the
sandbox: the next ``action`` is carried out and its connection dropped, and from
then on every request to that emulator stalls before the emulator acts, so the
reconcile cannot finish until the runner is killed. ``wait_in_window`` watches the
journal (read-only) and the audit log until the runner is caught there.

Used by the conformance suite (every mutating action of a provider) and by the
crash campaigns (``tests/campaigns``).
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LOST = "lost-answer"
STALL_SECONDS = 3600.0
"""How long the stalled requests wait: longer than any test, and they never act."""
STEADY = 0.3
"""How long a call must stay ``unknown`` before the runner counts as caught in the window."""


def lost_answer_faults(emulator: str, action: str) -> list[dict[str, Any]]:
    """Sandbox faults: act on the next ``action`` and drop its answer, then stall ``emulator``."""
    return [
        {"kind": "drop", "emulator": emulator, "action": action, "mutating_only": True, "count": 1, "name": LOST},
        {"kind": "hang", "emulator": emulator, "seconds": STALL_SECONDS, "after": LOST},
    ]


def calls_in_state(run_dir: Path, state: str, action: str | None = None, since: int = 0) -> dict[int, str]:
    """Journal id -> action of the calls in ``state`` (of ``action``, newer than id ``since``);
    read-only, so it works while a runner writes."""
    path = run_dir / "journal.sqlite"
    if not path.exists():
        return {}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        rows = db.execute("SELECT id, action FROM calls WHERE state = ? AND id > ?", (state, since)).fetchall()
    except sqlite3.OperationalError:  # the runner has not created its tables yet
        return {}
    finally:
        db.close()
    return {row[0]: row[1] for row in rows if action is None or row[1] == action}


def last_call_id(run_dir: Path) -> int:
    """The newest call id in the journal (0 if none): calls made after it are new."""
    path = run_dir / "journal.sqlite"
    if not path.exists():
        return 0
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return int(db.execute("SELECT coalesce(max(id), 0) FROM calls").fetchone()[0])
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def dropped_since(audit_path: Path, offset: int, action: str) -> dict[str, Any] | None:
    """The first audit entry after line ``offset`` of a mutating ``action`` whose answer was dropped."""
    if not audit_path.exists():
        return None
    with open(audit_path, "rb") as handle:
        for number, line in enumerate(handle):
            if number >= offset and b'"dropped"' in line:
                try:
                    entry: dict[str, Any] = json.loads(line)
                except ValueError:
                    continue
                if entry.get("outcome") == "dropped" and entry.get("mutating") and entry.get("action") == action:
                    return entry
    return None


def audit_length(audit_path: Path) -> int:
    return audit_path.read_bytes().count(b"\n") if audit_path.exists() else 0


@dataclass(frozen=True)
class Caught:
    """Where a runner was caught: the unresolved call's journal id and action, and
    the sandbox's audit entry of the dropped answer (None when a fault on the same
    call answered an error instead: the runner is in the window all the same)."""

    call_id: int
    action: str
    dropped: dict[str, Any] | None


def wait_in_window(
    proc: subprocess.Popen[bytes], run_dir: Path, audit_path: Path, offset: int, action: str | None,
    timeout: float = 90.0, since: int = 0,
) -> Caught:
    """Wait until the runner has held a call (of ``action``; None: any) newer than id
    ``since`` as ``unknown`` for ``STEADY`` seconds: stalled while it reconciles, not
    a reconcile about to finish. Raises AssertionError if the runner ends (or
    ``timeout`` passes) first, e.g. because the run never sent ``action``.
    """
    seen: dict[int, float] = {}
    found: list[Caught] = []

    def caught() -> bool:
        now = time.monotonic()
        unknown = calls_in_state(run_dir, "unknown", action, since)
        for call_id in [i for i in seen if i not in unknown]:
            del seen[call_id]
        for call_id, called in unknown.items():
            if now - seen.setdefault(call_id, now) >= STEADY:
                found.append(Caught(call_id, called, dropped_since(audit_path, offset, called)))
                return True
        return False

    wait_until(caught, timeout, f"the runner to journal a lost {action or 'mutating'} answer", proc)
    return found[0]


def wait_until(
    condition: Callable[[], bool], timeout: float, what: str, proc: subprocess.Popen[bytes] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the runner ended (exit {proc.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.02)
