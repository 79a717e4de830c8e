"""Run directories: naming, finding and locking them.

A run lives in ``./.batchmig/runs/<run-id>/`` (or ``--run-dir``); see
``batchmig.operations`` for what it holds. The lock (``run.lock``, flock) keeps two
runners off one run and tells ``batchmig cutover`` whether a runner is working on it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from batchmig.errors import JournalError, UsageError
from batchmig.plan.model import Plan

JOURNAL_NAME = "journal.sqlite"
LATEST = ("latest", "@last")
"""References to the newest run under the runs root."""


def make_run_id(plan: Plan) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", plan.name).strip("-")[:40] or "run"
    return f"{slug}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def find_run_dir(reference: str, runs_root: Path) -> Path:
    """A run directory from a path, a run id (a unique prefix is enough), or
    ``latest``/``@last`` for the newest run under ``runs_root``."""
    if reference in LATEST:
        return latest_run_dir(runs_root)
    path = Path(reference)
    if (path / "journal.sqlite").exists():
        return path
    candidates = sorted(p for p in runs_root.glob(f"{reference}*") if (p / "journal.sqlite").exists())
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UsageError(f"no run {reference!r} (looked in {runs_root})", "`ls` the runs directory or pass a path")
    names = ", ".join(p.name for p in candidates[:5])
    raise UsageError(f"{reference!r} matches several runs: {names}")


def run_directories(runs_root: Path) -> list[Path]:
    """The run directories directly under ``runs_root`` (those holding a journal)."""
    try:
        return [entry for entry in runs_root.iterdir() if (entry / JOURNAL_NAME).exists()]
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise UsageError(f"cannot list the runs in {runs_root}: {exc.strerror or exc}") from None


def latest_run_dir(runs_root: Path) -> Path:
    """The run created last under ``runs_root`` (by the time in its journal)."""
    from batchmig.journal import Journal  # journal imports nothing from here; keep the module light

    newest: tuple[str, Path] | None = None
    for path in run_directories(runs_root):
        try:
            journal = Journal.open(path / JOURNAL_NAME)
        except JournalError:
            continue
        try:
            created = journal.meta().get("created", "")
        finally:
            journal.close()
        if newest is None or (created, path.name) > (newest[0], newest[1].name):
            newest = (created, path)
    if newest is None:
        raise UsageError(f"no run in {runs_root} yet", "start one with `batchmig run PLAN`, or pass --runs-root")
    return newest[1]


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run's lock; a second runner on the same run is refused."""
    try:
        fd = os.open(run_dir / "run.lock", os.O_CREAT | os.O_RDWR, 0o600)
    except OSError as exc:  # not writable: like a journal that cannot be written, resumable once fixed
        raise JournalError(f"cannot lock the run {run_dir}: {exc.strerror or exc}") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UsageError(f"another batchmig process is working on {run_dir}") from None
        yield
    finally:
        os.close(fd)


def run_is_active(run_dir: Path) -> bool:
    try:
        fd = os.open(run_dir / "run.lock", os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
