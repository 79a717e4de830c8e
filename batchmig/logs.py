"""structlog, configured once by the CLI.

JSON lines when stderr is not a terminal (CI, log shippers), readable lines on a
terminal. Every event also goes, as JSON, to ``events.jsonl`` in the run directory
when there is one (0600). Every registered secret is redacted, in all its encoded
forms, from every value of every event before any output sees it. Modules only call
``structlog.get_logger()`` and use stable event names (``instance.failed``,
``call.retry``...); run, instance and provider come from context variables bound
per task.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import errno
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

import orjson
import structlog

from batchmig.private_files import open_private
from batchmig.redaction import REDACTOR

EVENT_BUFFER_BYTES = 64 * 1024
"""``events.jsonl`` is written when about this much has gathered in memory..."""
EVENT_BUFFER_SECONDS = 0.1
"""...or when its oldest unwritten line is this old, whichever comes first (docs/operations.md)."""


class EventFile:
    """``events.jsonl``, written through a buffer: lines gather in memory and go to the
    file in one ``write`` when ``EVENT_BUFFER_BYTES`` have gathered, when the oldest is
    ``EVENT_BUFFER_SECONDS`` old (at the next line, or ``flush_if_due``: the event loop's
    timer), and on ``flush``/``close``. One ``write`` per event was a system call and a release of the
    GIL each time: 2-3% of a runner's CPU (docs/benchmarks.md). Lines may come from any
    thread; a lock keeps them whole and in order. A process killed outright (SIGKILL)
    loses at most the lines of its last ``EVENT_BUFFER_SECONDS``; the journal, written
    apart, loses nothing it promised.

    A write that fails (a full disk, a directory no longer writable) must not raise
    into whoever logged (an instance would fail for a local reason): the file is given
    up, said once on stderr, and later lines are dropped; the console keeps the events,
    and the journal — which cannot be written either — stops the run resumably."""

    def __init__(self, file: IO[bytes], clock: Callable[[], float] = time.monotonic) -> None:
        self._file: IO[bytes] | None = file
        self._clock = clock
        self._lock = threading.Lock()
        self._lines: list[bytes] = []
        self._size = 0
        self._oldest = 0.0
        """When the oldest unwritten line came (``clock``)."""

    def add(self, line: bytes) -> None:
        with self._lock:
            lines = self._lines
            if not lines:
                self._oldest = self._clock()
                self._size = len(line)
                lines.append(line)
                return
            lines.append(line)
            self._size += len(line)
            if self._size >= EVENT_BUFFER_BYTES or self._clock() - self._oldest >= EVENT_BUFFER_SECONDS:
                self._write_out()

    def flush_if_due(self) -> float:
        """Write the lines out if the oldest is due; returns the seconds until the next can be."""
        with self._lock:
            if not self._lines:
                return EVENT_BUFFER_SECONDS
            wait = self._oldest + EVENT_BUFFER_SECONDS - self._clock()
            if wait > 0:
                return wait
            self._write_out()
            return EVENT_BUFFER_SECONDS

    def flush(self, *, blocking: bool = True) -> None:
        """Write every gathered line out. ``blocking=False`` (a signal handler, which may have
        interrupted this very thread in ``add``) gives up if the lines are being changed."""
        if not self._lock.acquire(blocking):
            return
        try:
            self._write_out()
        finally:
            self._lock.release()

    def close(self) -> None:
        with self._lock:
            self._write_out()
            file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError):
                file.close()

    @property
    def closed(self) -> bool:
        return self._file is None

    def _write_out(self) -> None:
        """(Holding the lock.) The gathered lines to the file, in one ``write`` if it takes them."""
        lines = self._lines
        if not lines:
            return
        self._lines, self._size = [], 0
        file = self._file
        if file is None:
            return
        data = memoryview(b"".join(lines))
        try:
            while data:
                written = file.write(data)
                if not written:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                data = data[written:]
        except OSError as exc:
            self._file = None
            with contextlib.suppress(OSError):
                file.close()
            sys.stderr.write(f"batchmig: events.jsonl is no longer written: {exc.strerror or exc}\n")


class _LoopTimer:
    """Writes an ``EventFile``'s lines out once they are due, from the event loop the runner
    works in: a timer callback at most every ``EVENT_BUFFER_SECONDS``, none per event. (A
    thread of its own cost more than the buffer saved: at each wake-up it waited for the
    GIL, 0.1 ms of CPU per wake-up under load; docs/benchmarks.md.)"""

    def __init__(self, events: EventFile, loop: asyncio.AbstractEventLoop) -> None:
        self._events = events
        self._loop = loop
        self._handle = loop.call_later(EVENT_BUFFER_SECONDS, self._tick)

    def _tick(self) -> None:
        if not self._events.closed:
            self._handle = self._loop.call_later(self._events.flush_if_due(), self._tick)

    def cancel(self) -> None:
        self._handle.cancel()


_event_file: EventFile | None = None
"""The run directory's ``events.jsonl`` while a runner works (``open_event_file``)."""
_timer: _LoopTimer | None = None


_CONTEXT_PREFIX = "structlog_"
"""How ``structlog.contextvars`` names the context variables it binds."""
_CONTEXT_PREFIX_LENGTH = len(_CONTEXT_PREFIX)

_LEVEL_OF_METHOD = {"warn": "warning", "exception": "error"}
"""Log methods whose level has another name (as ``structlog.processors.add_log_level``)."""


def _stamp(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """The context's bindings (run, instance, provider), the level and the UTC timestamp.

    One processor for what structlog's ``merge_contextvars``, ``add_log_level`` and
    ``TimeStamper(fmt="iso", utc=True)`` do in three, with the same fields in the same
    order: an event costs about a third less (see docs/benchmarks.md)."""
    for var, value in contextvars.copy_context().items():
        name = var.name
        if name.startswith(_CONTEXT_PREFIX) and value is not Ellipsis:
            event.setdefault(name[_CONTEXT_PREFIX_LENGTH:], value)
    event["level"] = _LEVEL_OF_METHOD.get(method, method)
    event["timestamp"] = _iso_now()
    return event


_second_stamped = (-1, "")
"""The last second a timestamp was made for, and its ISO text to the second."""


def _iso_now() -> str:
    """Now in UTC as ISO 8601 with microseconds (``2026-12-01T23:41:24.123456Z``); the
    date and time to the second are formatted once per second."""
    global _second_stamped
    second, nanoseconds = divmod(time.time_ns(), 1_000_000_000)
    stamped, text = _second_stamped
    if second != stamped:
        text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _second_stamped = (second, text)
    return f"{text}.{nanoseconds // 1000:06d}Z"


_OWN_FIELDS = frozenset({"level", "timestamp"})
"""Fields ``_stamp`` makes from constants and the clock."""


def _redact(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    # Every string inside the event, structures included, and every other object as the
    # string a renderer would make of it (an exception's text is the cloud's words).
    REDACTOR.redact_fields(event, _OWN_FIELDS)
    return event


def _json(value: Any) -> str:
    """Compact JSON of an event or a value in it (anything orjson cannot encode as its str)."""
    return orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS).decode()


def _render_json(logger: Any, method: str, event: dict[str, Any]) -> str:
    """The console's JSON line, made like ``events.jsonl``'s (orjson: a few times faster
    than the standard library's encoder structlog's ``JSONRenderer`` uses)."""
    return _json(event)


_EVENT_LINE = orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE
"""An event as ``events.jsonl`` keeps it: ``_json``'s text and its newline, as bytes."""


def _tee(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    events = _event_file
    if events is not None:
        events.add(orjson.dumps(event, default=str, option=_EVENT_LINE))
    return event


class _Pipeline:
    """The processor chain as one processor: the context, level and time (``_stamp``),
    the traceback as text (``-v``) or dropped, every secret masked (``_redact``), the
    line to events.jsonl (``_tee``), then the console's line — or, for an event below
    the console's level, an empty one, which ``_Console`` does not write. structlog
    calls each processor of a chain in turn and drops an event by raising: one call
    and no exception per event cost less (docs/benchmarks.md)."""

    def __init__(self, level: int, verbose: bool, render: Callable[[Any, str, dict[str, Any]], str]) -> None:
        self._quiet = frozenset(name for name, number in _LEVELS.items() if number < level)
        self._verbose = verbose
        self._render = render

    def __call__(self, logger: Any, method: str, event: dict[str, Any]) -> str:
        _stamp(logger, method, event)
        if self._verbose:  # the traceback becomes text here, so the redactor below sees it too
            event = cast(dict[str, Any], structlog.processors.format_exc_info(logger, method, event))
        else:
            event.pop("exc_info", None)
        _tee(logger, method, _redact(logger, method, event))
        if event["level"] in self._quiet:
            return ""
        return self._render(logger, method, event)


class _Console:
    """structlog's logger: each rendered line to stderr; an empty one (an event below
    the console's level) is not written."""

    def __init__(self, printer: structlog.PrintLogger) -> None:
        self._printer = printer

    def msg(self, message: str) -> None:
        if message:
            self._printer.msg(message)

    log = debug = info = warn = warning = err = error = critical = exception = fatal = failure = msg


def configure(*, verbose: bool = False, console_level: int | None = None, json_output: bool | None = None) -> None:
    """Set up structlog for this process. ``json_output`` defaults to "stderr is not a TTY"."""
    if json_output is None:
        json_output = not sys.stderr.isatty()
    level = logging.DEBUG if verbose else (console_level if console_level is not None else logging.INFO)
    renderer: Any = _render_json
    if not json_output:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    # Loggers are not cached (a process that configures again, tests and ``-v``, must
    # log through the new processors), so structlog assembles one for every event: one
    # logger made here, instead of one per event, saves a lock look-up each time.
    console = _Console(structlog.PrintLogger(sys.stderr))
    processors: list[Any] = [_Pipeline(level, verbose, renderer)]
    structlog.configure(
        processors=processors,
        logger_factory=lambda *args: console,
        cache_logger_on_first_use=False,
    )


_LEVELS = {name.lower(): number for name, number in logging.getLevelNamesMapping().items()}
"""structlog's level names (``add_log_level``: lower case) and their numbers."""


def open_event_file(path: Path) -> None:
    """Log every event to ``path`` too (appended), until ``close_event_file``. Called from
    inside the runner's event loop, which then writes the lines out when they are due;
    outside one (a tool, a test) they are written when full, at the first line after
    they are due, and on ``flush_event_file``/``close_event_file``."""
    global _event_file, _timer
    close_event_file()
    _event_file = EventFile(open_private(path, "ab", buffering=0))
    with contextlib.suppress(RuntimeError):  # (no running loop)
        _timer = _LoopTimer(_event_file, asyncio.get_running_loop())


def flush_event_file(*, blocking: bool = True) -> None:
    """Write out the events gathered so far (before the process may be stopped outright,
    or before work that keeps the event loop busy for long)."""
    events = _event_file
    if events is not None:
        events.flush(blocking=blocking)


def close_event_file() -> None:
    """Write out the gathered events and close the file (also at the process's exit)."""
    global _event_file, _timer
    events, timer, _event_file, _timer = _event_file, _timer, None, None
    if timer is not None:
        timer.cancel()
    if events is not None:
        events.close()


atexit.register(close_event_file)
