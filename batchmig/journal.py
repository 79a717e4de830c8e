"""The run journal: what happened, durably, so a killed run resumes without repeats.

One SQLite file (WAL mode) per run holds the plan and its hash, every instance's
state and journaled outputs (remote ids), the steps with their times, and for every
mutating call an *intent* written before the request is sent and an *outcome* after.
A resume therefore never repeats a call whose outcome is final, and reconciles
(looks up) every call without one — an intent the process died on, or an outcome
``unknown`` whose reconcile it did not live to finish. It also keeps one row per
runner invocation (who ran, when, and what it spent), so counters and the retry
budget belong to the run, not to one process.

The engine's writes are queued and committed in batches (group commit): a thousand
concurrent intents cost a handful of commits, not a thousand; under a steady stream
of writes the journal commits at most every ``COMMIT_LINGER_SECONDS``. Only
``intent`` waits for its commit — it must be durable before the request leaves —
while other writes are ordered behind it in the same queue, and join the next commit
somebody waits for (``UNWAITED_COMMIT_SECONDS``). A queued write is a statement and
its values, not a function: each statement's rows of a batch run at once
(``executemany``). The journal numbers the calls itself (the runner holding the run
is their only writer), so an intent reads nothing back.

Who commits depends on what a commit costs the disk:

* ``--durable`` (``synchronous=FULL``): every commit syncs the WAL to disk, so a
  writer thread drains the queue and commits (the event loop never waits for an
  fsync), and wakes each waiting event loop once per commit.
* by default (``synchronous=NORMAL``): a commit only writes the WAL (it survives a
  killed process; the disk is synced at checkpoints), so the event loop commits
  itself, in a callback of its own (``_tick``), and sets its waiters' futures there.
  Handing every write to a thread cost more than SQLite's work on it: in a
  10,000-instance run the writer thread spent a third of its CPU waking up, waiting
  for the GIL and waking the loop (docs/benchmarks.md). The WAL's checkpoints (which
  sync the disk) run in a thread of their own (``_Checkpointer``).

Keep this class's public methods as the journal's whole interface: a later backend
(PostgreSQL, shared by several runners) implements the same methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import itertools
import json
import math
import os
import queue
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from operator import itemgetter
from pathlib import Path
from typing import Any, Literal, NamedTuple

import anyio
import orjson

from batchmig import journal_file
from batchmig.errors import Failure, JournalError
from batchmig.private_files import create_private_file, make_private_dir
from batchmig.redaction import REDACTOR

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instances (
    id TEXT PRIMARY KEY, position INTEGER NOT NULL, provider TEXT NOT NULL, wave TEXT NOT NULL,
    status TEXT NOT NULL, step INTEGER NOT NULL DEFAULT 0, step_name TEXT,
    outputs TEXT NOT NULL DEFAULT '{}', error TEXT, updated REAL NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}', cutover TEXT
);
CREATE TABLE IF NOT EXISTS steps (
    instance TEXT NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL,
    started REAL, ended REAL, status TEXT NOT NULL, PRIMARY KEY (instance, step)
);
CREATE TABLE IF NOT EXISTS calls (
    id INTEGER PRIMARY KEY, instance TEXT NOT NULL, step INTEGER NOT NULL, action TEXT NOT NULL,
    resource TEXT, state TEXT NOT NULL, sent REAL NOT NULL, finished REAL,
    outputs TEXT, request_id TEXT, error TEXT
);
DROP INDEX IF EXISTS calls_open;
CREATE TABLE IF NOT EXISTS cutovers (instance TEXT PRIMARY KEY, released REAL NOT NULL);
CREATE TABLE IF NOT EXISTS requests (
    id INTEGER PRIMARY KEY, kind TEXT NOT NULL, at REAL NOT NULL, user TEXT NOT NULL, host TEXT NOT NULL,
    selection TEXT NOT NULL, instances TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS definitions (instance TEXT PRIMARY KEY, sha256 TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS invocations (
    id INTEGER PRIMARY KEY, command TEXT NOT NULL, started REAL NOT NULL, ended REAL,
    host TEXT NOT NULL, pid INTEGER NOT NULL, version TEXT NOT NULL,
    calls TEXT NOT NULL DEFAULT '{}', retries INTEGER NOT NULL DEFAULT 0,
    throttled INTEGER NOT NULL DEFAULT 0, unknown_outcomes INTEGER NOT NULL DEFAULT 0,
    reconciled INTEGER NOT NULL DEFAULT 0, errors TEXT NOT NULL DEFAULT '{}',
    exit_code INTEGER, stop_reason TEXT
);
"""

# ``calls_open`` (an index on calls by instance, step and state, in journals of earlier
# versions) is dropped: no read used it (``unresolved_calls`` scans the calls and looks up
# each one's instance by id), yet every intent and outcome updated it — a leaf page at
# a random place per call, written to the WAL at each commit: a fifth of the writer's
# CPU (docs/benchmarks.md). Older batchmig versions recreate it when they open the
# journal, which is harmless.

COMMIT_LINGER_SECONDS = 0.005
"""The writer commits at most once per this many seconds: a write that finds the last
commit older goes at once, one that comes sooner waits for the rest of the interval
with whatever else arrives meanwhile. Without it the writer woke and committed for
almost every write (1,100-1,800 commits for 12,000 writes at 1,000 instances: a
third of its CPU); with it a few hundred, and an intent waits at most this long
more before its request may leave."""

UNWAITED_COMMIT_SECONDS = 0.05
"""Writes nobody waits for (outcomes, steps, instance changes) are committed with the
next write somebody waits for (an intent, a read, a flush), or this long after the
first of them at the latest. A fifth of the commits of a run held nothing but such
writes, and a commit costs the writer more than its rows (docs/benchmarks.md). They
are not what a resume trusts to avoid a repeat — the intent is — so the only cost is
that ``status`` may show them this much later, and a runner killed meanwhile
reconciles the calls whose outcomes it lost (looks them up) instead of reading them."""

# Instance statuses. Final ones end an instance for good; resume restarts the others.
PENDING = "pending"
RUNNING = "running"
SUCCEEDED = "succeeded"
FAILED = "failed"
SKIPPED = "skipped"
AWAITING_CUTOVER = "awaiting_cutover"
INTERRUPTED = "interrupted"
NEEDS_ATTENTION = "needs_attention"
"""batchmig cannot tell safely what the cloud did (a reconcile that cannot rule a call
in or out, a job it can no longer watch). The runner leaves the instance alone for
the rest of the invocation; ``resume`` looks again (reconciling first, never sending
blindly). Never counted as succeeded."""
ABANDONED = "abandoned"
"""Removed from the plan by ``resume --accept-changed-plan``; whatever it started in
the cloud is left as it is (the report keeps its remote ids)."""
FINAL_STATUSES = frozenset({SUCCEEDED, FAILED, SKIPPED, ABANDONED})

# Call states. A call is *resolved* once batchmig knows whether it took effect.
INTENT = "intent"
"""Journaled before sending; the process may have died with the call on the wire."""
UNKNOWN = "unknown"
"""Sent, but the answer was lost: the call may or may not have taken effect."""
RESOLVED_CALL_STATES = frozenset({"done", "failed", "throttled", "unsent", "reconciled", "absent"})
"""done/failed: the cloud answered; throttled: refused before acting; unsent: never
sent (no connection, or cancelled before it left); reconciled: looked up and found (it took effect); absent:
looked up and not found."""
UNRESOLVED_SQL = "state NOT IN (" + ", ".join(f"'{state}'" for state in sorted(RESOLVED_CALL_STATES)) + ")"
"""The same rule in SQL, for every store (the states are constants: nothing is interpolated from outside)."""
UNRESOLVED_CALL_SQL = f"(c.{UNRESOLVED_SQL} OR (c.state IN ('done', 'reconciled') AND c.step = i.step))"
"""SQL (calls ``c`` joined to their instance ``i``): the calls a step reconciles before
sending anything — every unresolved one, and also one that took effect (``done``,
``reconciled``) while its instance still stands at that call's step: the outcome was
committed but the step's advance was not (the process died between two commits), so
the step finds the effect and its outputs instead of sending again."""


class PlannedRow(NamedTuple):
    """What the journal keeps of an instance's plan: enough for ``status`` and the report
    (which never load the plan again), not its settings (their fingerprint is kept)."""

    id: str
    position: int
    provider: str
    wave: str
    tags: Mapping[str, str] = {}
    cutover: str | None = None
    """auto or manual (None: not known, e.g. in a journal from before schema version 2)."""


class InstanceRecord(NamedTuple):
    """An instance as journaled (a tuple: a 100,000-instance report reads 100,000 of them)."""

    id: str
    position: int
    provider: str
    wave: str
    status: str
    step: int
    step_name: str | None
    outputs: dict[str, Any]
    error: Failure | None
    updated: float
    tags: dict[str, str] | None = None
    """The plan's tags (None: not journaled, in a journal from before schema version 2)."""
    cutover: str | None = None
    """The plan's cutover policy, auto or manual (None: not journaled)."""


@dataclass(frozen=True)
class UnresolvedCall:
    """A mutating call that was (maybe) sent and may or may not have taken effect."""

    id: int
    instance: str
    step: int
    action: str
    resource: str | None
    state: str


@dataclass(frozen=True)
class Invocation:
    """One runner process working on the run (``run``, ``resume``, ``cutover``...).

    ``ended`` is None while it runs, and for good when it was killed; its counters
    are then those of its last periodic record (a fraction of a second old).
    """

    id: int
    command: str
    started: float
    ended: float | None
    host: str
    pid: int
    version: str
    calls_by_action: dict[str, int]
    retries: int
    throttled: int
    unknown_outcomes: int
    reconciled: int
    errors_by_code: dict[str, int]
    exit_code: int | None
    stop_reason: str | None

    @property
    def calls(self) -> int:
        return sum(self.calls_by_action.values())


@dataclass(frozen=True)
class Requester:
    """Who asks for a cutover or a retry: the audit trail of operator actions."""

    user: str
    host: str

    @classmethod
    def current(cls) -> Requester:
        """The operating-system user of this process, on this machine."""
        try:
            user = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
            user = f"uid {os.getuid()}"
        return cls(user, socket.gethostname())


@dataclass(frozen=True)
class OperatorRequestRow:
    """One journaled operator request (``batchmig cutover`` or ``batchmig retry``).

    ``instances`` maps each instance it applied to onto its status at that moment.
    """

    id: int
    kind: Literal["cutover", "retry"]
    at: float
    user: str
    host: str
    selection: str
    instances: dict[str, str]


class InvocationLedger:
    """This runner process's row among the run's invocations: where the pipeline keeps
    its counters, and spends the run's retry budget (``Journal.start_invocation``)."""

    def __init__(self, journal: Journal, invocation_id: int) -> None:
        self.journal = journal
        self.id = invocation_id

    def retries_left(self, budget: int) -> int:
        """What the run's ``budget`` still allows, after every invocation's retries."""
        return budget - self.journal.retries_spent()

    def record(self, counters: Mapping[str, Any], **final: Any) -> None:
        """Queue the counters (``CallStats.as_dict()``); ``final``: ended, exit_code, stop_reason."""
        self.journal.record_invocation(self.id, counters, **final)

    async def flush(self) -> None:
        await self.journal.flush()


def _private_json(value: Mapping[str, Any] | None) -> str | None:
    """An error or outputs as journaled: every registered secret masked, in every form.

    Error messages come from the cloud, and some clouds quote the request they refuse
    — a database password, a signed header. Outputs are remote ids, which never hold
    a secret; should a cloud put one there, it is masked like anywhere else.
    """
    if value is None:
        return None
    if not value:  # a call that answered no outputs (4 in 10 in the overhead run): nothing to walk
        return "{}"
    return _json(REDACTOR.redact_tree(value))


def _json(value: Mapping[str, Any]) -> str:
    """Compact JSON as journaled (orjson: the journal's share of runner CPU per call)."""
    return orjson.dumps(value).decode()


def _nothing(db: sqlite3.Connection) -> None:
    """``flush``'s operation: its commit is what it waits for."""


_position = itemgetter(1)
"""An instance row's position in the plan (``instances``' second column)."""


def _json_object(path: Path, row: Any, index: int, column: str, table: str = "instances") -> dict[str, Any]:
    try:
        value = orjson.loads(row[index])
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise journal_file.damaged(path, f"{table} row {row[0]!r}: {column} is not a JSON object")
    return value


_Write = tuple["str | Callable[[sqlite3.Connection], Any]", Any, "asyncio.Future[Any] | None"]
"""A queued write: an SQL statement and its parameters (or an operation of its own, with
None), and the future of whoever waits for its commit (None: nobody waits)."""

_Operation = Callable[[sqlite3.Connection], Any]
_Rows = dict[str, list[tuple[Any, ...]]]


class _Batch:
    """The writes of one commit, grouped as the commit runs them, as they are queued: each
    statement's rows in the order they came (one ``executemany`` each), and an operation
    of its own (a read, a flush) after every write queued before it. Grouping each write
    when it is queued, not each batch's writes again when it commits, saves the commit a
    pass over them (docs/benchmarks.md)."""

    __slots__ = ("operations", "rows", "waiting")

    def __init__(self) -> None:
        self.rows: _Rows = {}
        """The statements' rows queued since the last operation (or the batch's start)."""
        self.operations: list[tuple[_Rows, _Operation, asyncio.Future[Any] | None]] = []
        """Each operation, after the statements' rows queued before it (and after the one before)."""
        self.waiting: list[asyncio.Future[Any]] = []
        """The futures of the statements somebody waits for (intents): their result is None."""

    def __bool__(self) -> bool:
        return bool(self.rows or self.operations)

    def row(self, sql: str, params: tuple[Any, ...]) -> None:
        rows = self.rows.get(sql)
        if rows is None:
            self.rows[sql] = [params]
        else:
            rows.append(params)

    def add(self, op: str | _Operation, params: Any, future: asyncio.Future[Any] | None) -> None:
        if isinstance(op, str):
            self.row(op, params)
            if future is not None:
                self.waiting.append(future)
        else:
            self.operations.append((self.rows, op, future))
            self.rows = {}

    @property
    def waited(self) -> bool:
        """Whether somebody waits for a write of this batch."""
        return bool(self.waiting) or any(future is not None for _, _, future in self.operations)

    def futures(self) -> Iterator[asyncio.Future[Any]]:
        yield from self.waiting
        yield from (future for _, _, future in self.operations if future is not None)


# The engine's writes: one text per table and kind, so that the writer can run each
# text's rows of a batch at once, in the order they came. Statements of different
# texts never touch the same row within a batch, so their order there does not
# matter: every change of an instance is a _SET_INSTANCE, and a call's row is inserted
# in a commit of its own (``intent`` waits for it) before any _SET_CALL of it is queued.
_SET_INSTANCE = (
    "UPDATE instances SET status = ?1, updated = ?2, error = ?3, step = coalesce(?4, step), "
    "step_name = CASE WHEN ?4 IS NULL THEN step_name ELSE ?5 END, outputs = coalesce(?6, outputs) WHERE id = ?7"
)
_INSERT_STEP = "INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?, ?, ?)"
_INSERT_CALL = (
    "INSERT INTO calls (id, instance, step, action, resource, state, sent) VALUES (?, ?, ?, ?, ?, 'intent', ?)"
)
_SET_CALL = (
    "UPDATE calls SET state = ?, finished = ?, outputs = ?, request_id = coalesce(?, request_id), "
    "error = coalesce(?, error) WHERE id = ?"
)
"""An outcome, or a reconcile's verdict (which keeps the answer's request id and error)."""


CHECKPOINT_COMMITS = 64
"""In the default mode the loop's connection never checkpoints (``wal_autocheckpoint=0``:
a checkpoint syncs the disk); every this many commits, the checkpointer thread does,
without waiting for anybody. A commit of a 10,000-instance run writes some 20-30 pages,
so the WAL is checkpointed about as often as SQLite's own 1,000 pages would."""


class _Checkpointer:
    """Checkpoints a journal's WAL from a thread and a connection of its own, when asked
    (``request``): a passive checkpoint, which never waits for the loop's commits nor
    makes them wait."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._due = threading.Event()
        self._closing = False
        self._thread: threading.Thread | None = None

    def request(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="batchmig-journal-checkpoint", daemon=True)
            self._thread.start()
        self._due.set()

    def close(self) -> None:
        if self._thread is not None:
            self._closing = True
            self._due.set()
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        try:
            db = sqlite3.connect(self._path, check_same_thread=False, isolation_level=None)
        except sqlite3.Error:
            return  # the loop's connection checkpoints when it closes
        try:
            while True:
                self._due.wait()
                self._due.clear()
                if self._closing:
                    return
                with contextlib.suppress(sqlite3.Error):  # busy, or the disk is full: the next one may do
                    db.execute("PRAGMA wal_checkpoint(PASSIVE)")
        finally:
            db.close()


def _write_rows(db: sqlite3.Connection, rows: dict[str, list[tuple[Any, ...]]]) -> None:
    for sql, values in rows.items():
        db.executemany(sql, values)
    rows.clear()


def _settle(waiting: list[tuple[asyncio.Future[Any], Any]], error: BaseException | None) -> None:
    """In the waiters' event loop: their writes are committed (or failed with ``error``)."""
    for future, result in waiting:
        if not future.done():
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)


class Journal:
    """The journal of one run. Open with ``Journal.open(path)``; close with ``close()``."""

    def __init__(
        self, path: Path, connection: sqlite3.Connection, cleanup: Callable[[], None] | None = None
    ) -> None:
        self.path = path
        self._db = connection
        self._cleanup = cleanup
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        """The writer thread's queue (``--durable``)."""
        self._pending: _Batch | None = None
        """The writes the event loop commits at its next ``_tick`` (default mode; None: the
        writer thread commits them)."""
        self._started = False
        self._tick_loop: asyncio.AbstractEventLoop | None = None
        self._tick_handle: asyncio.Handle | None = None
        self._tick_due = math.inf
        self._committed = -math.inf
        """When the loop last committed (its clock)."""
        self._checkpointer: _Checkpointer | None = None
        self._call_ids: Iterator[int] = iter(())
        """The ids of new calls (this runner is the only writer of calls: ``start_writer``)."""
        self._failure: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.commits = 0
        self.version = journal_file.SCHEMA_VERSION
        """The schema version of the file (older ones are migrated when opened for writing)."""
        self._unchecked: set[str] = set()
        """Tables whose column types are checked before their first read (see ``journal_file.READ_LATER``)."""
        self._meanwhile: journal_file.CheckMeanwhile | None = None
        """The checks running while the reader reads (``open(check_meanwhile=True)``)."""

    # ------------------------------------------------------------- opening

    @classmethod
    def open(cls, path: Path, *, durable: bool = False, create: bool = False, read_only: bool = False,
             check_meanwhile: bool = False) -> Journal:
        """Open (or ``create``) the journal at ``path``; an existing one is checked first.

        ``read_only`` never writes a byte (``batchmig status``): it works on a
        read-only directory or file system. See ``batchmig.journal_file``. With
        ``check_meanwhile`` (read-only) the checks run in a thread while the caller reads:
        it must call ``verified()`` before it shows anything read, and when a read fails.
        """
        meanwhile = None
        if create:
            try:
                make_private_dir(path.parent)
                create_private_file(path)
                db, cleanup = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30), None
            except (sqlite3.Error, OSError) as exc:
                raise JournalError(f"cannot create the journal {path}: {exc}") from exc
        elif check_meanwhile and read_only:
            db, cleanup, meanwhile = journal_file.open_checking_meanwhile(path)
        else:
            db, cleanup = journal_file.open_existing(path, read_only=read_only)
        journal = cls(path, db, cleanup)
        journal._meanwhile = meanwhile
        try:
            if not create:  # (opened for writing, it was migrated to the current version)
                journal.version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if read_only:
                journal._unchecked.update(journal_file.READ_LATER)
            if not create and not read_only:  # every row read once: text that is not UTF-8 is damage found now
                for read in (journal.meta, journal.instances, journal.steps, journal.requests):
                    read()
            if not read_only:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
                db.execute("PRAGMA busy_timeout=30000")
                db.executescript(SCHEMA)
                if not durable:  # the event loop commits; a thread checkpoints (see the module docstring)
                    db.execute("PRAGMA wal_autocheckpoint=0")
                    journal._pending = _Batch()
                    journal._checkpointer = _Checkpointer(path)
            if create:
                db.execute(f"PRAGMA user_version = {journal_file.SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            journal.close()
            raise JournalError(f"cannot open the journal {path}: {exc}") from exc
        except BaseException:
            journal.close()
            raise
        return journal

    def start_writer(self) -> None:
        """Start committing the queued writes (needed before the async write methods): the
        writer thread with ``--durable``; by default the event loop that writes."""
        if not self._started:
            self._started = True
            last = self._db.execute("SELECT max(id) FROM calls").fetchone()[0]
            self._call_ids = itertools.count((last or 0) + 1)
            if self._pending is None:
                self._thread = threading.Thread(target=self._write_loop, name="batchmig-journal", daemon=True)
                self._thread.start()
            elif self._pending:
                self._schedule(self._pending.waited)

    def verified(self) -> None:
        """Wait for the checks running meanwhile; raises what they found (exit 5: damaged)."""
        if self._meanwhile is not None:
            self._meanwhile.verdict()

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._started and self._pending:  # written after the loop's last tick (or outside a loop)
            if self._tick_handle is not None:
                self._tick_handle.cancel()
            self._tick_handle, self._tick_due = None, math.inf
            batch, self._pending = self._pending, _Batch()
            self._commit(batch)
        if self._checkpointer is not None:
            self._checkpointer.close()
        if self._meanwhile is not None:  # (its connection reads the file the cleanup removes)
            with contextlib.suppress(Exception):
                self._meanwhile.verdict()
            self._meanwhile = None
        self._db.close()
        if self._cleanup is not None:
            self._cleanup()

    # --------------------------------------------------------- writer thread

    def _write_loop(self) -> None:
        committed = 0.0
        queued = self._queue
        while True:
            item = queued.get()
            if item is None:
                return
            batch, first = _Batch(), time.monotonic()
            batch.add(*item)
            waited = item[2] is not None
            stop = False
            while True:
                linger = committed + COMMIT_LINGER_SECONDS - time.monotonic()
                if linger > 0:  # writes keep coming: let more of them join this commit
                    time.sleep(linger)
                while not queued.empty():  # (this thread is the queue's only reader)
                    more = queued.get_nowait()
                    if more is None:
                        stop = True
                        break
                    batch.add(*more)
                    waited = waited or more[2] is not None
                if stop or waited or time.monotonic() - first >= UNWAITED_COMMIT_SECONDS:
                    break
                committed = time.monotonic()  # nobody waits: look again one linger later
            self._commit(batch)
            committed = time.monotonic()
            if stop:
                return

    # ----------------------------------------------------- the loop's commits

    def _schedule(self, waited: bool) -> None:
        """Have the running event loop commit the pending writes: at once (in its next
        iteration) when somebody waits and the last commit is ``COMMIT_LINGER_SECONDS``
        old, at the end of the linger when it is younger, and ``UNWAITED_COMMIT_SECONDS``
        from now when nobody waits — unless a commit is due sooner already."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # written outside an event loop: the next write inside one, or close, commits it
        if loop is not self._tick_loop:  # (a tick due on a loop that is gone never comes)
            self._tick_loop, self._tick_handle, self._tick_due, self._committed = loop, None, math.inf, -math.inf
        now = loop.time()
        due = max(now, self._committed + COMMIT_LINGER_SECONDS) if waited else now + UNWAITED_COMMIT_SECONDS
        if due >= self._tick_due:
            return
        if self._tick_handle is not None:
            self._tick_handle.cancel()
        self._tick_due = due
        self._tick_handle = loop.call_soon(self._tick) if due <= now else loop.call_at(due, self._tick)

    def _tick(self) -> None:
        """The event loop's commit of everything pending (default mode)."""
        self._tick_handle, self._tick_due = None, math.inf
        batch, self._pending = self._pending, _Batch()
        if batch:
            self._commit(batch)
            if self.commits % CHECKPOINT_COMMITS == 0 and self._checkpointer is not None:
                self._checkpointer.request()
        assert self._tick_loop is not None
        self._committed = self._tick_loop.time()

    # --------------------------------------------------------------- commits

    def _commit(self, batch: _Batch) -> None:
        """Write ``batch`` in one transaction, then settle its waiters: directly in the event
        loop that commits, with one wake-up per event loop from the writer thread.

        The rows of each statement are written together (``executemany``), each
        statement's in the order they came: statements of different texts commute
        within a batch (see ``_SET_INSTANCE``), and an operation of its own (a read,
        a flush) first writes everything queued before it (``_Batch``).
        """
        settled: list[tuple[asyncio.Future[Any], Any]] = []
        error: BaseException | None = self._failure
        if error is None:
            db = self._db
            try:
                db.execute("BEGIN IMMEDIATE")
                for rows, op, future in batch.operations:
                    _write_rows(db, rows)
                    result = op(db)
                    if future is not None:
                        settled.append((future, result))
                _write_rows(db, batch.rows)
                db.execute("COMMIT")
                self.commits += 1
                settled += [(future, None) for future in batch.waiting]
            except BaseException as exc:  # the disk is full, the directory unwritable...
                error = JournalError(f"cannot write the journal {self.path}: {exc}")
                self._failure = error
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
                settled = [(future, None) for future in batch.futures()]
        else:  # an earlier commit failed (the writer thread took this batch before it knew): nothing is written
            settled = [(future, None) for future in batch.futures()]
        if not settled:
            return
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:  # the writer thread, or ``close``
            running = None
        loops: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any]]] = {}
        for future, result in settled:
            loops.setdefault(future.get_loop(), []).append((future, result))
        for loop, waiting in loops.items():
            if loop is running:
                _settle(waiting, error)
            else:
                with contextlib.suppress(RuntimeError):  # the loop is gone: nobody waits any more
                    loop.call_soon_threadsafe(_settle, waiting, error)

    def _submit(self, sql: str, params: tuple[Any, ...]) -> None:
        if self._failure is not None:
            raise self._failure
        pending = self._pending
        if pending is None:
            self._queue.put((sql, params, None))
        else:
            pending.row(sql, params)
            if self._started and self._tick_handle is None:  # (a tick due already takes it along)
                self._schedule(False)

    async def _submit_and_wait(self, op: str | Callable[[sqlite3.Connection], Any], params: Any = None) -> Any:
        future = self._submit_future(op, params)
        with anyio.CancelScope(shield=True):  # an intent must not be abandoned half-way
            return await future

    def _submit_future(self, op: str | Callable[[sqlite3.Connection], Any], params: Any) -> asyncio.Future[Any]:
        if self._failure is not None:
            raise self._failure
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        pending = self._pending
        if pending is None:
            self._queue.put((op, params, future))
        else:
            pending.add(op, params, future)
            if self._started:
                self._schedule(True)
        return future

    async def flush(self) -> None:
        """Wait until everything queued so far is committed."""
        await self._submit_and_wait(_nothing)

    # ------------------------------------------------------ run-level records

    def write_meta(self, values: Mapping[str, str]) -> None:
        """Synchronous: used when a run is created or resumed, before the writer starts."""
        with self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", list(values.items()))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """A synchronous write in one transaction. The connection is in autocommit mode
        (the writer thread begins its own), where ``with connection`` alone would commit
        every statement (every row of an ``executemany``) on its own: recording a
        10,000-instance plan took 20,000 commits, each an fsync with ``--durable``."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _query(self, sql: str) -> list[Any]:
        """Rows of a read; a failure says whether the journal is damaged or just unreadable now."""
        try:
            return self._db.execute(sql).fetchall()
        except journal_file.SQLITE_FAILURES as exc:
            raise journal_file.read_failure(self._db, self.path, exc) from None

    def _rows(self, sql: str) -> Iterator[Any]:
        """``_query``'s rows, fetched a thousand at a time as they are iterated."""
        try:
            cursor = self._db.execute(sql)
            while rows := cursor.fetchmany(1000):
                yield from rows
        except journal_file.SQLITE_FAILURES as exc:
            raise journal_file.read_failure(self._db, self.path, exc) from None

    def _check_types(self, table: str) -> None:
        """The column types of ``table``, once, if the open left them for its first read."""
        if table in self._unchecked:
            if self._meanwhile is not None:
                path, version = self.path, self.version
                self._meanwhile.start(lambda db: journal_file.check_types(db, path, version, table))
            else:
                journal_file.check_types(self._db, self.path, self.version, table)
            self._unchecked.discard(table)

    def meta(self) -> dict[str, str]:
        return dict(self._query("SELECT key, value FROM meta"))

    def add_instances(self, rows: Sequence[PlannedRow]) -> None:
        """Synchronous: new instances start pending, known ones keep their state and take
        the plan's position, provider, wave, tags and cutover policy."""
        now = time.time()
        with self._transaction():
            self._db.executemany(
                "INSERT INTO instances (id, position, provider, wave, tags, cutover, status, updated) "
                "VALUES (?, ?, ?, ?, ?, ?, 'pending', ?) ON CONFLICT (id) DO UPDATE SET "
                "position = excluded.position, provider = excluded.provider, wave = excluded.wave, "
                "tags = excluded.tags, cutover = excluded.cutover",
                [(row.id, row.position, row.provider, row.wave, _json(row.tags), row.cutover, now) for row in rows],
            )
            # how many there are, so a journal that lost rows is recognised as damaged
            self._db.execute("INSERT OR REPLACE INTO meta SELECT 'instances', count(*) FROM instances")

    @property
    def keeps_plan_details(self) -> bool:
        """Whether every instance's tags and cutover policy are journaled (schema version 2
        on; a journal migrated from an older one has them once a resume wrote them)."""
        if self.version < 2:
            return False
        return not self._query("SELECT 1 FROM instances WHERE cutover IS NULL LIMIT 1")

    def instances(self) -> dict[str, InstanceRecord]:
        details = "tags, cutover" if self.version >= 2 else "NULL, NULL"
        rows = self._query(
            f"SELECT id, position, provider, wave, status, step, step_name, outputs, error, updated, {details} "
            "FROM instances"
        )
        rows.sort(key=_position)  # in Python: SQLite's ORDER BY sorted them in a temporary b-tree, a third slower
        path = self.path
        return {
            row[0]: InstanceRecord(
                row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                _json_object(path, row, 7, "outputs") if row[7] != "{}" else {},
                Failure.from_dict(_json_object(path, row, 8, "error")) if row[8] else None, row[9],
                None if row[11] is None else _json_object(path, row, 10, "tags") if row[10] != "{}" else {},
                row[11],
            )
            for row in rows
        }

    def status_counts(self) -> dict[str, int]:
        """Instances per status."""
        return dict(self._query("SELECT status, count(*) FROM instances GROUP BY status"))

    def unresolved_calls(self) -> dict[str, list[UnresolvedCall]]:
        """Per instance, the mutating calls a step reconciles before sending (``UNRESOLVED_CALL_SQL``)."""
        result: dict[str, list[UnresolvedCall]] = {}
        for row in self._query(
            "SELECT c.id, c.instance, c.step, c.action, c.resource, c.state FROM calls c JOIN instances i "
            f"ON i.id = c.instance WHERE {UNRESOLVED_CALL_SQL} ORDER BY c.id"
        ):
            result.setdefault(row[1], []).append(UnresolvedCall(*row))
        return result

    def definitions(self) -> dict[str, str]:
        """Instance id -> fingerprint of what it was planned as (provider, connection, settings)."""
        return dict(self._optional("SELECT instance, sha256 FROM definitions"))

    def set_definitions(self, fingerprints: Mapping[str, str]) -> None:
        """Synchronous, like ``add_instances``."""
        with self._transaction():
            self._db.executemany("INSERT OR REPLACE INTO definitions VALUES (?, ?)", list(fingerprints.items()))

    def set_final(self, instance: str, status: str, error: Mapping[str, Any]) -> None:
        """Synchronous: end an instance outside a runner (e.g. ``abandoned`` on a changed plan)."""
        with self._transaction():
            self._db.execute("UPDATE instances SET status = ?, error = ?, updated = ? WHERE id = ?",
                             (status, _private_json(error), time.time(), instance))

    def restart_instances(self, instance_ids: list[str]) -> None:
        """Synchronous: back to pending at the first step, forgetting outputs and step times."""
        with self._transaction():
            self._db.executemany(
                "UPDATE instances SET status = 'pending', step = 0, step_name = NULL, outputs = '{}', error = NULL, "
                "updated = ? WHERE id = ?", [(time.time(), iid) for iid in instance_ids])
            self._db.executemany("DELETE FROM steps WHERE instance = ?", [(iid,) for iid in instance_ids])

    # ----------------------------------------------------------- invocations

    def start_invocation(self, command: str, host: str, pid: int, version: str) -> InvocationLedger:
        """Synchronous, before the writer starts: this process's row among the run's invocations."""
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO invocations (command, started, host, pid, version) VALUES (?, ?, ?, ?, ?)",
                (command, time.time(), host, pid, version),
            )
        return InvocationLedger(self, int(cursor.lastrowid or 0))

    def record_invocation(
        self,
        invocation: int,
        counters: Mapping[str, Any],
        *,
        ended: bool = False,
        exit_code: int | None = None,
        stop_reason: str | None = None,
    ) -> None:
        """Queue the invocation's counters (``CallStats.as_dict()``); ``ended`` closes it."""
        values = (
            _json(dict(counters.get("calls_by_action", {}))), int(counters.get("retries", 0)),
            int(counters.get("throttled", 0)), int(counters.get("unknown_outcomes", 0)),
            int(counters.get("reconciled", 0)), _json(dict(counters.get("errors_by_code", {}))),
            time.time() if ended else None, exit_code, stop_reason, invocation,
        )
        self._submit(
            "UPDATE invocations SET calls = ?, retries = ?, throttled = ?, unknown_outcomes = ?, reconciled = ?, "
            "errors = ?, ended = coalesce(?, ended), exit_code = coalesce(?, exit_code), "
            "stop_reason = coalesce(?, stop_reason) WHERE id = ?",
            values,
        )

    def invocations(self) -> list[Invocation]:
        """Every runner invocation of the run, oldest first (none for a journal of an older batchmig)."""
        rows = self._optional(
            "SELECT id, command, started, ended, host, pid, version, calls, retries, throttled, unknown_outcomes, "
            "reconciled, errors, exit_code, stop_reason FROM invocations ORDER BY id"
        )
        return [
            Invocation(row[0], row[1], row[2], row[3], row[4], row[5], row[6],
                       _json_object(self.path, row, 7, "calls", "invocations"), row[8], row[9], row[10], row[11],
                       _json_object(self.path, row, 12, "errors", "invocations"), row[13], row[14])
            for row in rows
        ]

    def retries_spent(self) -> int:
        """Retries every invocation of the run has spent (the run's ``retry.budget`` covers them all)."""
        return sum(invocation.retries for invocation in self.invocations())

    def steps(self, *, ordered: bool = True) -> Iterator[tuple[str, int, str, float | None, float | None, str]]:
        """Every step of every instance, read as they are used (a 100,000-instance run has
        hundreds of thousands: a list of them all added to the peak at the end of a run).
        ``ordered``: by instance and step; without, as they are stored (a third cheaper: no
        look-up through the index per row), for a reader that groups them itself."""
        self._check_types("steps")  # now, not at the first row: this is not a generator
        order = " ORDER BY instance, step" if ordered else ""
        return self._rows("SELECT instance, step, name, started, ended, status FROM steps" + order)

    def step_times(self) -> Iterator[tuple[str, float | None, float | None]]:
        """Every step's instance, start and end, by instance and step: ``steps`` without the
        three columns a view of each instance's steps in one line does not show (the CSV's:
        half of the Python objects of a 100,000-instance run's 325,000 rows)."""
        self._check_types("steps")
        return self._rows("SELECT instance, started, ended FROM steps ORDER BY instance, step")

    def calls(self) -> list[tuple[Any, ...]]:
        return self._query(
            "SELECT instance, step, action, resource, state, sent, finished, request_id, error FROM calls ORDER BY id"
        )

    def released_cutovers(self) -> set[str]:
        return {row[0] for row in self._query("SELECT instance FROM cutovers")}

    def released_cutover_times(self) -> dict[str, float]:
        """Instance id -> when its cutover was released."""
        return dict(self._optional("SELECT instance, released FROM cutovers"))

    def release_cutovers(
        self, instances: Mapping[str, str], requester: Requester | None = None, selection: str = ""
    ) -> int:
        """Synchronous, from another process (``batchmig cutover``): release the cutover
        of ``instances`` (id -> status now) and journal who asked, in one transaction.
        Returns the request's id."""
        return self._request("cutover", instances, requester, selection,
                             "INSERT OR IGNORE INTO cutovers VALUES (?, ?)", lambda iid, now: (iid, now))

    def request_retry(
        self, instances: Mapping[str, str], requester: Requester | None = None, selection: str = ""
    ) -> int:
        """Synchronous, under the run lock (``batchmig retry``): make ``instances`` (id ->
        status now) runnable again from the step where they stopped — their outputs and
        journaled calls stay — and journal who asked, in one transaction. Returns the
        request's id."""
        return self._request("retry", instances, requester, selection,
                             "UPDATE instances SET status = 'pending', error = NULL, updated = ? WHERE id = ?",
                             lambda iid, now: (now, iid))

    def requests(self) -> list[OperatorRequestRow]:
        """Every operator request of the run, oldest first."""
        rows = self._optional("SELECT id, kind, at, user, host, selection, instances FROM requests ORDER BY id")
        return [OperatorRequestRow(row[0], row[1], row[2], row[3], row[4], row[5],
                                   _json_object(self.path, row, 6, "instances", table="requests")) for row in rows]

    def _request(
        self,
        kind: Literal["cutover", "retry"],
        instances: Mapping[str, str],
        requester: Requester | None,
        selection: str,
        sql: str,
        row: Callable[[str, float], tuple[Any, ...]],
    ) -> int:
        who = requester or Requester.current()
        now = time.time()
        with self._transaction():
            cursor = self._db.execute(
                "INSERT INTO requests (kind, at, user, host, selection, instances) VALUES (?, ?, ?, ?, ?, ?)",
                (kind, now, who.user, who.host, selection, json.dumps(dict(instances))),
            )
            self._db.executemany(sql, [row(iid, now) for iid in instances])
        return int(cursor.lastrowid or 0)

    def _optional(self, sql: str) -> list[Any]:
        """A read of a table that journals of older batchmig versions may lack."""
        try:
            return self._db.execute(sql).fetchall()
        except journal_file.SQLITE_FAILURES as exc:
            if "no such table" in str(exc):
                return []
            raise journal_file.read_failure(self._db, self.path, exc) from None

    # ------------------------------------------------------ engine writes

    async def intent(self, instance: str, step: int, action: str, resource: object) -> int:
        """Record that a mutating call is about to be sent; returns once durable."""
        call_id, durable = self.queue_intent(instance, step, action, resource)
        with anyio.CancelScope(shield=True):  # an intent must not be abandoned half-way
            await durable
        return call_id

    def queue_intent(self, instance: str, step: int, action: str, resource: object) -> tuple[int, asyncio.Future[Any]]:
        """``intent`` for a caller that awaits it in a shielded scope of its own (the
        pipeline's send: one scope, not two, per mutating call): the call's id and the
        future that is done once the row is durable."""
        call_id = next(self._call_ids)
        resource_text = None if resource is None else str(resource)
        return call_id, self._submit_future(_INSERT_CALL, (call_id, instance, step, action, resource_text, time.time()))

    def outcome(
        self,
        call_id: int,
        state: str,
        *,
        outputs: Mapping[str, Any] | None = None,
        request_id: str | None = None,
        error: Failure | None = None,
    ) -> None:
        """Record the answer to an intent: done, failed, throttled, or unknown (no usable answer)."""
        error_json = _private_json(error.as_dict() if error else None)
        self._submit(_SET_CALL, (state, time.time(), _private_json(outputs or {}), request_id, error_json, call_id))

    def resolve(self, instance: str, call_ids: list[int], state: str, outputs: Mapping[str, Any] | None = None) -> None:
        """What a reconcile found out about ``instance``'s unresolved calls: ``reconciled``
        (it took effect) or ``absent`` (it did not). Their answer's error and request id stay."""
        now, outputs_json = time.time(), _private_json(outputs or {})
        for call_id in call_ids:
            self._submit(_SET_CALL, (state, now, outputs_json, None, None, call_id))

    def set_instance(
        self,
        instance: str,
        status: str,
        *,
        step: int | None = None,
        step_name: str | None = None,
        outputs: Mapping[str, Any] | None = None,
        error: Failure | None = None,
    ) -> None:
        """The instance's status and error; also its step (with its name) and outputs when given."""
        error_json = _private_json(error.as_dict() if error else None)
        outputs_json = None if outputs is None else _private_json(outputs)
        self._submit(_SET_INSTANCE, (status, time.time(), error_json, step, step_name, outputs_json, instance))

    def step_finished(self, instance: str, step: int, name: str, started: float, status: str) -> None:
        """One row per finished step (a step in progress shows as the instance's step)."""
        self._submit(_INSERT_STEP, (instance, step, name, started, time.time(), status))

    async def read(self, query: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run a read in the writer thread (so it sees every queued write)."""
        return await self._submit_and_wait(query)

    async def released_now(self) -> set[str]:
        """The instances whose cutover is released, as committed now (``batchmig cutover`` writes them)."""
        released: set[str] = await self.read(lambda db: {r[0] for r in db.execute("SELECT instance FROM cutovers")})
        return released
