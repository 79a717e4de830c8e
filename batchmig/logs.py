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

import contextlib
import contextvars
import errno
import logging
import os
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

_event_file: IO[bytes] | None = None
"""``events.jsonl``, unbuffered: each event is one ``write`` of its line, as it happens."""


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


def _write_all(file: IO[bytes], data: bytes) -> None:
    """``data`` to an unbuffered file: one ``write``, unless the file takes only part of it."""
    while data:
        written = file.write(data)
        if not written:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        data = data[written:]


def _tee(logger: Any, method: str, event: dict[str, Any]) -> dict[str, Any]:
    global _event_file
    if _event_file is not None:
        try:
            _write_all(_event_file, orjson.dumps(event, default=str, option=_EVENT_LINE))
        except OSError as exc:
            # The run directory is full or no longer writable. A log call must not raise
            # into the engine (an instance would fail for a local reason); events.jsonl
            # stops here, the console keeps the events, and the journal — which cannot be
            # written either — stops the run resumably.
            broken, _event_file = _event_file, None
            with contextlib.suppress(OSError):
                broken.close()
            sys.stderr.write(f"batchmig: events.jsonl is no longer written: {exc.strerror or exc}\n")
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
    global _event_file
    close_event_file()
    _event_file = open_private(path, "ab", buffering=0)


def close_event_file() -> None:
    global _event_file
    if _event_file is not None:
        _event_file.close()
        _event_file = None
