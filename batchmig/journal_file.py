"""Opening a run's journal file: schema version, integrity, and read-only access.

A journal is only worth trusting if it is whole, so every open of an existing one
checks, before anything is read from it:

* that it is an SQLite database at all (a file truncated to 0 bytes, or garbage);
* before a write, ``PRAGMA integrity_check`` — a garbled page, and also a garbled
  value in an indexed column (which ``quick_check`` misses: in the campaign, 21 of
  40 randomly garbled journals were caught instead of 16). It reads the whole file
  and every index: about 50 ms for a 10,000-instance journal (10 MB), cheap next to
  trusting a damaged record with calls to send. A read-only open (``status``, the
  report, the dashboard), which sends nothing, runs ``PRAGMA quick_check`` (every
  page, not every index entry against its row: a quarter of the time on a
  100,000-instance journal); what it reads it decodes, so a garbled value it meets
  is still refused;
* the schema version (``PRAGMA user_version``): newer than this batchmig knows is
  refused, older is migrated when the journal is opened for writing (version 0 is
  the unversioned journal of earlier releases: the same tables, so it is only
  stamped; version 2 keeps each instance's plan tags and cutover policy, so
  ``status`` never loads the plan again), and read as it is when opened read-only;
* every table and column the reader needs (a renamed column is damage, not a crash),
  each value of the type the reader expects, JSON objects where JSON is kept (in
  SQL), and text that is UTF-8 (``Journal.open`` for writing reads every instance
  and step once; a reader decodes what it reads). A read-only open leaves the types
  of the ``steps`` table (the largest: several rows per instance) to the first read of
  the steps (``check_types``), so ``status`` as a table, which shows none, does not
  scan them;
* that it records a run: a run id and at least as many instances as it says it has.

Any failure is a ``JournalUnusableError`` (exit 5) naming the file and what is
wrong; a journal that is whole but cannot be written right now (disk full, directory
not writable) stays a ``JournalError`` (exit 3, resumable once fixed).

``status`` and ``report`` open with ``open_checking_meanwhile``: the same checks, run
on a connection of their own in a thread while the command reads (``CheckMeanwhile``);
the command waits for their verdict before it shows anything, and when a read fails.

Read-only opens (``batchmig status``) never write a byte, so they also work on a
read-only directory, file or file system: SQLite's ``mode=ro`` first; if SQLite
cannot set up its WAL index there, ``immutable=1`` when no WAL content exists;
otherwise a private snapshot copy of the database and its WAL is read.

To change the schema, bump ``SCHEMA_VERSION`` and add the SQL that brings the
previous version up to it to ``MIGRATIONS``.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from batchmig.errors import JournalError, JournalUnusableError

SCHEMA_VERSION = 2

MIGRATIONS: dict[int, str] = {
    0: "",  # version 0 → 1: the unversioned journal has the same tables; it is only stamped
    # 1 → 2: the plan's tags and cutover policy of each instance. A migrated journal holds
    # none yet (cutover NULL): the resume that migrated it writes them from its plan.
    1: "ALTER TABLE instances ADD COLUMN tags TEXT NOT NULL DEFAULT '{}'; "
       "ALTER TABLE instances ADD COLUMN cutover TEXT;",
}

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "meta": ("key", "value"),
    "instances": ("id", "position", "provider", "wave", "status", "step", "step_name", "outputs", "error",
                  "updated"),
    "steps": ("instance", "step", "name", "started", "ended", "status"),
    "calls": ("id", "instance", "step", "action", "resource", "state", "sent", "finished", "outputs",
              "request_id", "error"),
    "cutovers": ("instance", "released"),
}
COLUMNS_SINCE: dict[int, dict[str, dict[str, tuple[str, ...]]]] = {
    2: {"instances": {"tags": ("text",), "cutover": ("text", "null")}},
}
"""Columns a version added (table -> column -> accepted types): required from that version on."""

_TEXT, _INTEGER, _NUMBER = ("text",), ("integer",), ("integer", "real")
# What the readers expect in each column (SQLite's ``typeof``): SQLite itself stores anything anywhere.
COLUMN_TYPES: dict[str, dict[str, tuple[str, ...]]] = {
    "meta": {"key": _TEXT, "value": _TEXT},
    "instances": {"id": _TEXT, "position": _INTEGER, "provider": _TEXT, "wave": _TEXT, "status": _TEXT,
                  "step": _INTEGER, "step_name": (*_TEXT, "null"), "outputs": _TEXT, "error": (*_TEXT, "null"),
                  "updated": _NUMBER},
    "steps": {"instance": _TEXT, "step": _INTEGER, "name": _TEXT, "started": (*_NUMBER, "null"),
              "ended": (*_NUMBER, "null"), "status": _TEXT},
    "cutovers": {"instance": _TEXT, "released": _NUMBER},
    "requests": {"id": _INTEGER, "kind": _TEXT, "at": _NUMBER, "user": _TEXT, "host": _TEXT, "selection": _TEXT,
                 "instances": _TEXT},  # (journals of older versions have no requests table)
}

SQLITE_MAGIC = b"SQLite format 3\x00"

LATEST_TIME = 32503680000  # 3000-01-01 in epoch seconds: a later time in a journal is garbage

SQLITE_FAILURES = (sqlite3.Error, UnicodeDecodeError)
"""What reading a damaged file can raise (SQLite's messages quote garbled names, which may not be UTF-8)."""


def damaged(path: Path, detail: str) -> JournalUnusableError:
    return JournalUnusableError(f"the journal {path} is damaged: {' '.join(detail.split())}")


def integrity_problems(db: sqlite3.Connection, *, thorough: bool = True) -> list[str]:
    """What ``PRAGMA integrity_check`` (``quick_check`` unless ``thorough``) finds (empty
    when the file is whole); raises sqlite3.Error."""
    found = [str(row[0]) for row in db.execute(f"PRAGMA {'integrity_check' if thorough else 'quick_check'}(3)")]
    if found == ["ok"]:
        return []
    # A finding may come as "*** in database main ***\nPage 5: ..." in one row: keep what it says.
    lines = [line for text in found for line in text.splitlines() if line and not line.startswith("*** in database")]
    return lines or found


def connect_read_only(path: Path) -> tuple[sqlite3.Connection, Callable[[], None] | None]:
    """A connection that writes nothing, and what to call after closing it (or None)."""
    db, _, cleanup = _read_only(path)
    return db, cleanup


def _read_only(path: Path) -> tuple[sqlite3.Connection, Callable[[], sqlite3.Connection], Callable[[], None] | None]:
    """``connect_read_only``'s connection, how to open another one to the same file the
    same way, and what to call after closing them."""
    uri = path.resolve().as_uri()

    def connect(target: str) -> Callable[[], sqlite3.Connection]:
        return lambda: sqlite3.connect(target, uri=True, check_same_thread=False)

    try:
        again = connect(f"{uri}?mode=ro")
        db = again()
        db.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return db, again, None
    except sqlite3.OperationalError:  # SQLite cannot create or write its WAL index here
        pass
    wal = path.with_name(path.name + "-wal")
    if not wal.exists() or wal.stat().st_size == 0:
        again = connect(f"{uri}?immutable=1")
        return again(), again, None
    snapshot = Path(tempfile.mkdtemp(prefix="batchmig-journal-"))  # 0700
    try:
        copy = snapshot / path.name
        shutil.copyfile(path, copy)
        shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
        again = connect(copy.resolve().as_uri())
        return again(), again, lambda: shutil.rmtree(snapshot, True)
    except BaseException:
        shutil.rmtree(snapshot, True)
        raise


class CheckMeanwhile:
    """The checks of a read-only open, run on a connection of their own in a thread while
    the reader reads (SQLite checks without Python's lock held: on a second core they cost
    no wall time). ``verdict()`` waits for them and raises what they found: call it before
    showing anything read, and when a read fails (damage explains the failure first)."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], path: Path) -> None:
        self._connect = connect
        self._path = path
        self._threads: list[threading.Thread] = []
        self._errors: dict[int, BaseException] = {}
        """What each failed check raised, by the order the checks were started in."""
        self._started = 0

    def start(self, check: Callable[[sqlite3.Connection], object]) -> None:
        """Run ``check`` on a connection of its own, in a thread."""
        order, self._started = self._started, self._started + 1

        def run() -> None:
            try:
                db = self._connect()
            except SQLITE_FAILURES as exc:
                self._errors[order] = classify(self._path, exc)
                return
            try:
                check(db)
            except BaseException as exc:
                self._errors[order] = exc
            finally:
                db.close()

        thread = threading.Thread(target=run, name="batchmig-journal-check", daemon=True)
        thread.start()
        self._threads.append(thread)

    def verdict(self) -> None:
        for thread in self._threads:
            thread.join()
        self._threads.clear()
        if self._errors:
            # The first check's finding, whichever thread ended first: the open's check
            # (structure first) explains damage that a later check, such as a table's types,
            # only meets as a failed read ("no such table").
            raise self._errors[min(self._errors)]


def open_checking_meanwhile(path: Path) -> tuple[sqlite3.Connection, Callable[[], None] | None, CheckMeanwhile]:
    """``open_existing(path, read_only=True)``, its checks left running in the background
    (``CheckMeanwhile``): only whether the file is an SQLite database is checked first."""
    _check_header(path)
    try:
        db, again, cleanup = _read_only(path)
    except OSError as exc:
        raise JournalError(f"cannot open the journal {path}: {exc.strerror or exc}") from None
    except SQLITE_FAILURES as exc:
        raise classify(path, exc) from None
    meanwhile = CheckMeanwhile(again, path)
    meanwhile.start(lambda other: check(other, path, thorough=False, unchecked=READ_LATER))
    return db, cleanup, meanwhile


def open_existing(path: Path, *, read_only: bool) -> tuple[sqlite3.Connection, Callable[[], None] | None]:
    """Connect to the journal at ``path`` and check it (see the module docstring)."""
    _check_header(path)
    try:
        if read_only:
            db, cleanup = connect_read_only(path)
        else:
            db, cleanup = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30), None
    except OSError as exc:
        raise JournalError(f"cannot open the journal {path}: {exc.strerror or exc}") from None
    except SQLITE_FAILURES as exc:
        raise classify(path, exc) from None
    try:
        version = check(db, path, thorough=not read_only, unchecked=READ_LATER if read_only else ())
        if not read_only and version < SCHEMA_VERSION:
            migrate(db, version)
    except BaseException:
        db.close()
        if cleanup:
            cleanup()
        raise
    return db, cleanup


def _check_header(path: Path) -> None:
    """That ``path`` is a file that starts as an SQLite database does."""
    if not path.exists():
        raise JournalError(f"no journal at {path}")
    if not path.is_file():
        raise JournalUnusableError(f"the journal {path} is not a file")
    try:
        with open(path, "rb") as handle:
            header = handle.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise JournalError(f"cannot open the journal {path}: {exc.strerror or exc}") from None
    if not header:
        raise damaged(path, "the file is empty (0 bytes): no run is recorded in it")
    if header != SQLITE_MAGIC:
        raise damaged(path, "it is not an SQLite database")


READ_LATER = ("steps",)
"""Tables a read-only open leaves for ``check_types`` before their first read."""


def check(db: sqlite3.Connection, path: Path, *, thorough: bool = True, unchecked: tuple[str, ...] = ()) -> int:
    """Integrity (``thorough``: every index too), version, tables and contents (the types
    of each column but in the ``unchecked`` tables); returns the schema version."""
    try:
        problems = integrity_problems(db, thorough=thorough)
        if problems:
            raise damaged(path, f"SQLite's integrity check says: {'; '.join(problems)}")
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if not 0 <= version <= SCHEMA_VERSION:
            raise JournalUnusableError(
                f"the journal {path} has schema version {version}; this batchmig reads versions "
                f"0 to {SCHEMA_VERSION}",
                "it was written by a newer batchmig (or something else): use that version to resume or inspect it",
            )
        problem = _structure_problem(db, version, unchecked) or _json_problem(db, version) or _contents_problem(db)
    except SQLITE_FAILURES as exc:
        raise read_failure(db, path, exc) from None
    if problem:
        raise damaged(path, problem)
    return version


def _columns_of(version: int) -> tuple[dict[str, tuple[str, ...]], dict[str, dict[str, tuple[str, ...]]]]:
    """The columns a journal of schema ``version`` must have, and the types expected in them."""
    required, types = dict(REQUIRED_COLUMNS), {table: dict(columns) for table, columns in COLUMN_TYPES.items()}
    for since, added in COLUMNS_SINCE.items():
        if version >= since:
            for table, columns in added.items():
                required[table] = (*required[table], *columns)
                types[table].update(columns)
    return required, types


def check_types(db: sqlite3.Connection, path: Path, version: int, table: str) -> None:
    """Refuse the journal if ``table`` holds a value of a type its reader does not expect."""
    try:
        problem = _first_mistyped(db, table, _columns_of(version)[1][table])
    except SQLITE_FAILURES as exc:
        raise read_failure(db, path, exc) from None
    if problem:
        raise damaged(path, problem)


def _structure_problem(db: sqlite3.Connection, version: int, unchecked: tuple[str, ...]) -> str | None:
    tables = {str(name) for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    if not tables:
        return "it holds no tables (an empty database): no run is recorded in it"
    required, column_types = _columns_of(version)
    for table, needed in required.items():
        if table not in tables:
            return f"the table {table} is missing"
        present = {str(row[1]) for row in db.execute(f"PRAGMA table_info({table})")}
        missing = [column for column in needed if column not in present]
        if missing:
            return f"the table {table} lacks the column(s) {', '.join(missing)} (renamed or dropped)"
    for table, types in column_types.items():
        mistyped = _first_mistyped(db, table, types) if table in tables and table not in unchecked else None
        if mistyped:
            return mistyped
    return None


JSON_OBJECTS: dict[str, dict[str, int]] = {
    "instances": {"outputs": 0, "error": 0, "tags": 2},
    "requests": {"instances": 0},
}
"""Columns that hold a JSON object (or NULL), per table, with the schema version that added them."""


def _json_problem(db: sqlite3.Connection, version: int) -> str | None:
    """'<table> row <key>: <column> is not a JSON object' for the first such value (SQLite's JSON, in C)."""
    tables = {str(name) for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    for table, columns in JSON_OBJECTS.items():
        for column, since in columns.items():
            if table not in tables or version < since:
                continue
            row = db.execute(
                f"SELECT quote(id) FROM {table} WHERE {column} IS NOT NULL AND "
                f"CASE WHEN json_valid({column}) THEN json_type({column}) <> 'object' ELSE 1 END LIMIT 1"
            ).fetchone()
            if row is not None:
                return f"{table} row {row[0]}: {column} is not a JSON object"
    return None


def _contents_problem(db: sqlite3.Connection) -> str | None:
    meta = dict(db.execute("SELECT key, value FROM meta WHERE key IN ('run_id', 'instances')").fetchall())
    if not meta.get("run_id"):
        return "it records no run id"
    count = int(db.execute("SELECT count(*) FROM instances").fetchone()[0])
    if count == 0:
        return "it records no instance"
    recorded = meta.get("instances", "")
    if recorded.isdigit() and int(recorded) > count:
        return f"it holds {count} of the {recorded} instances it recorded"
    return None


def _first_mistyped(db: sqlite3.Connection, table: str, columns: dict[str, tuple[str, ...]]) -> str | None:
    """'<table> row <key>: <column> holds ...' for the first value of a wrong type (or an impossible time)."""
    tests = [_accepts(column, types) for column, types in columns.items()]
    names = list(columns)
    row = db.execute(
        f"SELECT quote({names[0]}), {', '.join(f'typeof({c})' for c in names)}, {', '.join(tests)} "
        f"FROM {table} WHERE NOT ({' AND '.join(tests)}) LIMIT 1"
    ).fetchone()
    if row is None:
        return None
    key, kinds, accepted = row[0], row[1:len(names) + 1], row[len(names) + 1:]
    for column, kind, ok in zip(names, kinds, accepted, strict=True):
        if not ok:
            expected = " or ".join(columns[column])
            if kind in columns[column]:
                return f"{table} row {key}: {column} holds an impossible time"
            return f"{table} row {key}: {column} holds {kind} where {expected} is expected"
    return f"{table} row {key}: a value of the wrong type"


def _accepts(column: str, types: tuple[str, ...]) -> str:
    """SQL that is true when ``column`` holds one of ``types`` (every real column is a time: a sane one)."""
    test = f"typeof({column}) IN ({', '.join(repr(t) for t in types)})"
    if "real" in types:
        test = f"({test} AND ({column} IS NULL OR {column} BETWEEN 0 AND {LATEST_TIME}))"
    return test


def migrate(db: sqlite3.Connection, version: int) -> None:
    """Bring a journal opened for writing up to ``SCHEMA_VERSION``, in one transaction."""
    script = "".join(MIGRATIONS[v] for v in range(version, SCHEMA_VERSION))
    db.executescript(f"BEGIN IMMEDIATE; {script} PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;")


def read_failure(db: sqlite3.Connection, path: Path, exc: sqlite3.Error | UnicodeDecodeError) -> Exception:
    """What a failed read means: damage (exit 5), or a journal that cannot be read right now."""
    try:
        found = integrity_problems(db)
    except SQLITE_FAILURES:
        found = []
    if found:
        return damaged(path, f"SQLite's integrity check says: {'; '.join(found)}")
    return classify(path, exc)


def classify(path: Path, exc: sqlite3.Error | UnicodeDecodeError) -> Exception:
    """Locked, unwritable, unopenable here, I/O or a full disk: not now (exit 3, resumable once
    fixed). Anything else — corrupt, not a database, reshaped, too big, not UTF-8 — is damage."""
    if isinstance(exc, UnicodeDecodeError):
        return damaged(path, "it holds text that is not UTF-8")
    name = getattr(exc, "sqlite_errorname", None) or ""
    if name.startswith(_NOT_NOW):
        return JournalError(f"cannot use the journal {path}: {exc}")
    return damaged(path, str(exc))


_NOT_NOW = ("SQLITE_BUSY", "SQLITE_LOCKED", "SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL",
            "SQLITE_PERM", "SQLITE_NOMEM", "SQLITE_PROTOCOL")
