"""structlog, configured once by the CLI.

JSON lines when stderr is not a terminal (CI, log shippers), readable lines on a
terminal. Every event also goes, as JSON, to ``events.jsonl`` in the run directory
when there is one (0600). Every registered secret is redacted, in all its encoded
forms, from every value of every event before any output sees it. Modules only call
``structlog.get_logger()`` — or this module's ``get_logger`` where they log once or
more per instance — and use stable event names (``instance.failed``, ``call.retry``...);
run, instance and provider come from context variables bound per task.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import contextvars
import io
import logging
import sys
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
"""...and at the latest this long after a line came (docs/operations.md)."""


class EventFile:
    """``events.jsonl``, written through a buffer: lines gather in memory and go to the
    file in one ``write`` when ``EVENT_BUFFER_BYTES`` have gathered, at ``flush`` — which
    the runner's event loop calls every ``EVENT_BUFFER_SECONDS`` (``_LoopTimer``) — and at
    ``close``. One ``write`` per event was a system call and a release of the GIL each
    time (docs/benchmarks.md); a line now costs a copy into the buffer (``io.BufferedWriter``,
    whose own lock keeps lines from several threads whole and in order). A process killed
    outright (SIGKILL) loses at most the lines of its last ``EVENT_BUFFER_SECONDS``; the
    journal, written apart, loses nothing it promised.

    A write that fails (a full disk, a directory no longer writable) must not raise
    into whoever logged (an instance would fail for a local reason): the file is given
    up, said once on stderr, and later lines are dropped; the console keeps the events,
    and the journal — which cannot be written either — stops the run resumably."""

    def __init__(self, file: IO[bytes]) -> None:
        """``file``: unbuffered (``buffering=0``); the buffer is made here."""
        self._file: io.BufferedWriter | None = io.BufferedWriter(cast(io.RawIOBase, file), EVENT_BUFFER_BYTES)

    def add(self, line: bytes) -> None:
        file = self._file
        if file is not None:
            try:
                file.write(line)
            except (OSError, ValueError) as exc:  # (ValueError: closed meanwhile, by another thread)
                self._give_up(file, exc)

    def flush(self) -> None:
        """Write every gathered line out. From a signal handler that interrupted ``add`` in
        this very thread, nothing is written (the buffer refuses a reentrant call): the
        next flush writes the lines."""
        file = self._file
        if file is not None:
            try:
                file.flush()
            except RuntimeError:  # reentrant: see above
                pass
            except (OSError, ValueError) as exc:
                self._give_up(file, exc)

    def close(self) -> None:
        self.flush()
        file, self._file = self._file, None
        if file is not None:
            with contextlib.suppress(OSError, ValueError):
                file.close()

    @property
    def closed(self) -> bool:
        return self._file is None

    def _give_up(self, file: io.BufferedWriter, exc: OSError | ValueError) -> None:
        if self._file is not file:
            return  # (another thread gave up first)
        self._file = None
        with contextlib.suppress(OSError, ValueError):
            file.raw.close()  # (not the buffer's close: it would try to write the lines again)
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        sys.stderr.write(f"batchmig: events.jsonl is no longer written: {reason}\n")


class _LoopTimer:
    """Writes an ``EventFile``'s gathered lines out every ``EVENT_BUFFER_SECONDS``, from the
    event loop the runner works in: a timer callback, none per event. (A thread of its own
    cost more than the buffer saved: at each wake-up it waited for the GIL, ~0.1 ms of CPU
    per wake-up under load; docs/benchmarks.md.)"""

    def __init__(self, events: EventFile, loop: asyncio.AbstractEventLoop) -> None:
        self._events = events
        self._loop = loop
        self._handle = loop.call_later(EVENT_BUFFER_SECONDS, self._tick)

    def _tick(self) -> None:
        if not self._events.closed:
            self._events.flush()
            self._handle = self._loop.call_later(EVENT_BUFFER_SECONDS, self._tick)

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


_FIELD_OF_VAR: dict[contextvars.ContextVar[Any], str] = {}
"""Each context variable met so far, and the event field its value goes to ("": none, not
structlog's): the name is looked at once per variable, not in every event."""


def _field_of(var: contextvars.ContextVar[Any]) -> str:
    name = var.name
    field = name[_CONTEXT_PREFIX_LENGTH:] if name.startswith(_CONTEXT_PREFIX) else ""
    if len(_FIELD_OF_VAR) >= 4096:  # (variables made on the fly, by some library: forgotten at once, learned again)
        _FIELD_OF_VAR.clear()
    _FIELD_OF_VAR[var] = field
    return field


def _stamp(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    """The context's bindings (run, instance, provider), the level and the UTC timestamp.

    One processor for what structlog's ``merge_contextvars``, ``add_log_level`` and
    ``TimeStamper(fmt="iso", utc=True)`` do in three, with the same fields in the same
    order: an event costs about a third less (see docs/benchmarks.md)."""
    fields = _FIELD_OF_VAR
    for var, value in contextvars.copy_context().items():
        field = fields.get(var)
        if field is None:
            field = _field_of(var)
        if field and value is not Ellipsis:
            event.setdefault(field, value)
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


_ALL_LEVELS = structlog.make_filtering_bound_logger(logging.NOTSET)
"""structlog's own default wrapper class (every level goes on to the processors), set
explicitly so that ``_Configured.current`` can tell it is still the one."""


class _Configured:
    """What ``configure`` set up, to be told apart from whatever configured structlog since
    (a test's ``capture_logs``, which swaps the processors inside the same list; a
    configuration restored, or another one)."""

    __slots__ = ("console", "factory", "pipeline", "processors")

    def __init__(self, pipeline: _Pipeline, console: _Console) -> None:
        self.pipeline = pipeline
        self.console = console
        self.processors: list[Any] = [pipeline]

        def factory(*args: Any) -> _Console:
            return console

        self.factory = factory

    def current(self) -> bool:
        """Whether structlog is configured as ``configure`` left it."""
        config = structlog.get_config()
        processors = self.processors
        return (config["processors"] is processors and len(processors) == 1 and processors[0] is self.pipeline
                and config["logger_factory"] is self.factory and config["wrapper_class"] is _ALL_LEVELS
                and config["context_class"] is dict)


_configured: _Configured | None = None
"""The configuration ``configure`` made last."""


class EventLogger:
    """``structlog.get_logger(name)`` for code that logs once or more per instance (the engine).

    structlog's logger is a lazy proxy that assembles a bound logger for every event
    (loggers are not cached: a logger cached before ``configure`` — a test, a library
    user — would keep structlog's default processors for good), then runs the event
    through structlog's generic processor chain: measured inside a 4,000-instance run
    (thread CPU time, load 20), that machinery cost 30-45 µs of an event's 57-102, more
    than the pipeline's own work. While structlog is configured as ``configure`` left
    it, an event here goes straight to the same pipeline and console, with the same
    fields in the same order; otherwise through structlog, as any other module's.
    """

    __slots__ = ("_proxy",)

    def __init__(self, name: str) -> None:
        self._proxy = structlog.get_logger(name)

    def debug(self, event: str, **fields: Any) -> None:
        self._log("debug", event, fields)

    def info(self, event: str, **fields: Any) -> None:
        self._log("info", event, fields)

    def warning(self, event: str, **fields: Any) -> None:
        self._log("warning", event, fields)

    def error(self, event: str, **fields: Any) -> None:
        self._log("error", event, fields)

    def exception(self, event: str, **fields: Any) -> None:
        """An error with the exception being handled (its traceback with ``-v``)."""
        fields.setdefault("exc_info", True)
        self._log("error", event, fields)

    def _log(self, method: str, event: str, fields: dict[str, Any]) -> None:
        configured = _configured
        if configured is not None and configured.current():
            fields["event"] = event  # (last, as structlog adds it)
            console = configured.console
            console.msg(configured.pipeline(console, method, fields))
        else:
            getattr(self._proxy, method)(event, **fields)


def get_logger(name: str) -> EventLogger:
    """A logger for code that logs once or more per instance (``EventLogger``)."""
    return EventLogger(name)


def configure(*, verbose: bool = False, console_level: int | None = None, json_output: bool | None = None) -> None:
    """Set up structlog for this process. ``json_output`` defaults to "stderr is not a TTY"."""
    global _configured
    if json_output is None:
        json_output = not sys.stderr.isatty()
    level = logging.DEBUG if verbose else (console_level if console_level is not None else logging.INFO)
    renderer: Any = _render_json
    if not json_output:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    # Loggers are not cached (a process that configures again, tests and ``-v``, must
    # log through the new processors), so structlog assembles one for every event: one
    # logger made here, instead of one per event, saves a lock look-up each time.
    configured = _Configured(_Pipeline(level, verbose, renderer), _Console(structlog.PrintLogger(sys.stderr)))
    structlog.configure(
        processors=configured.processors,
        logger_factory=configured.factory,
        wrapper_class=_ALL_LEVELS,
        context_class=dict,
        cache_logger_on_first_use=False,
    )
    _configured = configured


_LEVELS = {name.lower(): number for name, number in logging.getLevelNamesMapping().items()}
"""structlog's level names (``add_log_level``: lower case) and their numbers."""


def open_event_file(path: Path) -> None:
    """Log every event to ``path`` too (appended), until ``close_event_file``. Called from
    inside the runner's event loop, which then writes the lines out as they fall due;
    outside one (a tool, a test) they are written when the buffer is full and at
    ``flush_event_file``/``close_event_file``."""
    global _event_file, _timer
    close_event_file()
    _event_file = EventFile(open_private(path, "ab", buffering=0))
    with contextlib.suppress(RuntimeError):  # (no running loop)
        _timer = _LoopTimer(_event_file, asyncio.get_running_loop())


def flush_event_file() -> None:
    """Write out the events gathered so far (before the process may be stopped outright,
    or before work that keeps the event loop busy for long)."""
    events = _event_file
    if events is not None:
        events.flush()


def close_event_file() -> None:
    """Write out the gathered events and close the file (also at the process's exit)."""
    global _event_file, _timer
    events, timer, _event_file, _timer = _event_file, _timer, None, None
    if timer is not None:
        timer.cancel()
    if events is not None:
        events.close()


atexit.register(close_event_file)
