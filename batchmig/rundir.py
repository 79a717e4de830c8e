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
from typing import TYPE_CHECKING

from batchmig.errors import JournalError, JournalUnusableError, UsageError
from batchmig.private_files import open_private_fd

if TYPE_CHECKING:  # `status` and `report` never load a plan's models
    from batchmig.plan.model import Plan

JOURNAL_NAME = "journal.sqlite"
LATEST = ("latest", "@last")
"""References to the newest run under the runs root."""
RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,79}$")


def make_run_id(plan: Plan) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "-", plan.name).strip("-")[:40] or "run"
    return f"{slug}-{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def check_run_id(run_id: str) -> str:
    """A run id given on the command line (``--run-id``), checked: it names a directory
    and seeds every name the run gives what it creates."""
    if not RUN_ID.match(run_id) or run_id in LATEST:
        raise UsageError(f"invalid run id {run_id!r}",
                         "use letters, digits, '.', '_' and '-' (at most 80), starting with a letter or digit")
    return run_id


def find_run_dir(reference: str, runs_root: Path) -> Path:
    """A run directory from a path to one, a run id in ``runs_root`` (a unique prefix is enough),
    or ``latest``/``@last`` for the newest run under ``runs_root``.

    A reference is never a pattern: ``*`` or ``[a-z]`` are looked up literally, and an
    id is matched against the names in ``runs_root`` only, so nothing outside it is
    reached except by a path the operator wrote. Every failure is a ``UsageError``.
    """
    if reference in LATEST:
        return latest_run_dir(runs_root)
    shown = repr(reference)  # control characters and terminal escapes stay inert
    if not reference.strip() or "\0" in reference:
        raise UsageError(f"{shown} is not a run id or run directory", "pass a run id, a prefix of one, or a path")
    try:
        as_path = Path(reference).expanduser()
        if (as_path / JOURNAL_NAME).exists():  # what it is, the journal's open says
            return as_path
        if os.sep in reference or reference in (".", "..") or reference.startswith("~"):
            return _not_a_run_dir(as_path, shown)
        names = [entry.name for entry in runs_root.iterdir() if entry.name.startswith(reference)]
        candidates = sorted(runs_root / name for name in names if (runs_root / name / JOURNAL_NAME).exists())
    except FileNotFoundError:
        raise UsageError(f"no run {shown}: {runs_root} does not exist", "pass --runs-root or a run directory") from None
    except (OSError, RuntimeError) as exc:  # too long, not a directory, not readable, ~nosuchuser...
        raise UsageError(f"cannot look up the run {shown}: {getattr(exc, 'strerror', None) or exc}",
                         "pass a run id, a prefix of one, or a path") from None
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise UsageError(f"no run {shown} (looked in {runs_root})", "`ls` the runs directory or pass a path")
    names = [path.name for path in candidates]
    raise UsageError(f"{shown} matches several runs: {', '.join(names[:5])}" + (" ..." if len(names) > 5 else ""),
                     "give more of the run id")


def _not_a_run_dir(path: Path, shown: str) -> Path:
    if not path.exists():
        raise UsageError(f"no run directory {shown}: it does not exist", "pass a run id or a run directory")
    what = "a directory without" if path.is_dir() else "not a directory, so it has no"
    raise UsageError(f"{shown} is not a run directory: it is {what} {JOURNAL_NAME}",
                     "pass a run id or a run directory")


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
            journal = Journal.open(path / JOURNAL_NAME, read_only=True)
        except (JournalError, JournalUnusableError):  # a damaged run is not the latest of anything
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
        fd = open_private_fd(run_dir / "run.lock", os.O_RDWR)
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
    """Whether a runner holds the run's lock (read-only: works on a read-only run directory)."""
    try:
        fd = os.open(run_dir / "run.lock", os.O_RDONLY)  # flock does not need write access
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
