"""The log pipeline: what every event carries, in events.jsonl and on the console."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import logging
import re
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import anyio
import pytest
import structlog

from batchmig import logs
from batchmig.redaction import REDACTOR

ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")


@pytest.fixture
def configured(tmp_path: Path) -> Iterator[Path]:
    """The CLI's configuration (call ``configure`` in the test: the console is the
    stderr of that moment), with events.jsonl; structlog's own restored afterwards."""
    saved = structlog.get_config()
    logs.open_event_file(tmp_path / "events.jsonl")
    try:
        yield tmp_path / "events.jsonl"
    finally:
        logs.close_event_file()
        structlog.contextvars.clear_contextvars()
        structlog.configure(**saved)


def test_every_event_carries_its_bindings_level_and_utc_time(configured: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    logs.configure(json_output=True, console_level=logging.WARNING)
    REDACTOR.add("hunter2-in-a-log-line")
    log = structlog.get_logger("batchmig.test")
    structlog.contextvars.bind_contextvars(run="r-1", instance="db-1")
    before = datetime.now(UTC)
    log.info("instance.started", step=0, instance="db-2")  # the event's own field wins over the binding
    log.warn("call.slow", detail="token hunter2-in-a-log-line")
    log.debug("call.retry", attempt=2)
    after = datetime.now(UTC)
    logs.flush_event_file()
    events = [json.loads(line) for line in configured.read_text().splitlines()]
    assert [(e["event"], e["level"], e["instance"], e["run"]) for e in events] == [
        ("instance.started", "info", "db-2", "r-1"), ("call.slow", "warning", "db-1", "r-1"),
        ("call.retry", "debug", "db-1", "r-1"),
    ]
    assert events[1]["detail"] == "token ***"
    for event in events:
        assert ISO_UTC.fullmatch(event["timestamp"]), event["timestamp"]
        stamped = datetime.strptime(event["timestamp"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
        assert before <= stamped <= after
    console = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert console == [events[1]]  # the console's level (warning) drops the rest, after the file saw them


def _lines(path: Path) -> list[dict[str, Any]]:
    logs.flush_event_file()
    return [{k: v for k, v in json.loads(line).items() if k != "timestamp"} for line in path.read_text().splitlines()]


@pytest.mark.parametrize("console_level", [logging.DEBUG, logging.WARNING])
def test_the_engines_logger_writes_what_structlogs_writes(configured: Path, capsys: pytest.CaptureFixture[str],
                                                          console_level: int) -> None:
    """``logs.get_logger`` takes an event straight to the pipeline: events.jsonl and the
    console get the very lines structlog's logger makes, field order included."""
    logs.configure(json_output=True, console_level=console_level)
    REDACTOR.add("hunter3-in-a-log-line")
    structlog.contextvars.bind_contextvars(run="r-1", instance="db-1", provider="tc")
    for log in (structlog.get_logger("batchmig.engine"), logs.get_logger("batchmig.engine")):
        log.info("instance.started", step=0)
        log.warning("instance.lease_lost", step=2, instance="db-2")
        log.error("instance.failed", code="X", message="key hunter3-in-a-log-line refused", data={"n": [1.5, None]})
        log.debug("call.retry", attempt=2)
        try:
            raise ValueError("boom")
        except ValueError:
            log.exception("instance.crashed", step=1)
    events = _lines(configured)
    assert len(events) == 10 and events[:5] == events[5:]
    assert events[2]["message"] == "key *** refused" and events[4]["level"] == "error"
    assert [list(event) for event in events[:5]] == [list(event) for event in events[5:]]  # the same order
    console = [{k: v for k, v in json.loads(line).items() if k != "timestamp"}
               for line in capsys.readouterr().err.splitlines()]
    shown = 5 if console_level == logging.DEBUG else 3
    assert len(console) == 2 * shown and console[:shown] == console[shown:]


def test_the_engines_logger_follows_whatever_configured_structlog_since(configured: Path) -> None:
    """A test's ``capture_logs``, or a configuration made after ``configure`` (restored, or
    another one), sees the events of ``logs.get_logger`` as it sees structlog's."""
    log = logs.get_logger("batchmig.engine")
    logs.configure(json_output=True, console_level=logging.ERROR)
    with structlog.testing.capture_logs() as captured:
        log.info("instance.started", step=0)
        log.exception("instance.crashed")
    assert captured == [{"step": 0, "event": "instance.started", "log_level": "info"},
                        {"exc_info": True, "event": "instance.crashed", "log_level": "error"}]
    seen: list[tuple[str, dict[str, Any]]] = []

    def keep(logger: Any, method: str, event: dict[str, Any]) -> str:
        seen.append((method, dict(event)))
        return ""

    structlog.configure(processors=[keep])
    log.warning("instance.lease_lost", step=1)
    assert seen == [("warning", {"step": 1, "event": "instance.lease_lost"})]
    logs.configure(json_output=True, console_level=logging.ERROR)
    log.info("instance.succeeded")
    assert [e["event"] for e in _lines(configured)] == ["instance.succeeded"]
    assert len(seen) == 1


class _Sink(io.RawIOBase):
    """An unbuffered file that keeps each ``write``; ``refuse`` makes the next ones fail
    like a full disk; ``during_write`` runs inside a write (as a signal handler would)."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.refuse = False
        self.during_write: Callable[[], None] | None = None

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        if self.refuse:
            raise OSError(28, "No space left on device")
        if self.during_write is not None:
            self.during_write()
        self.writes.append(bytes(data))
        return len(data)


class _FakeLoop:
    """The event loop's timers on an injected clock: ``advance`` runs the callbacks due."""

    def __init__(self) -> None:
        self.now = 0.0
        self.timers: list[_Timer] = []

    def call_later(self, delay: float, callback: Callable[[], None]) -> _Timer:
        timer = _Timer(self, self.now + delay, callback)
        self.timers.append(timer)
        return timer

    def advance(self, seconds: float) -> None:
        self.now += seconds
        while due := [timer for timer in self.timers if timer.when <= self.now]:
            for timer in due:
                self.timers.remove(timer)
                timer.callback()


class _Timer:
    def __init__(self, loop: _FakeLoop, when: float, callback: Callable[[], None]) -> None:
        self.loop, self.when, self.callback = loop, when, callback

    def cancel(self) -> None:
        if self in self.loop.timers:
            self.loop.timers.remove(self)


def test_events_gather_and_the_event_loop_writes_them_out_every_tenth_of_a_second() -> None:
    sink, loop = _Sink(), _FakeLoop()
    events = logs.EventFile(sink)
    logs._LoopTimer(events, cast(asyncio.AbstractEventLoop, loop))
    events.add(b"a\n")
    loop.advance(0.06)
    events.add(b"b\n")
    assert sink.writes == []
    loop.advance(0.04)  # 0.1 s after the first line: both go out, in one write
    assert sink.writes == [b"a\nb\n"]
    loop.advance(0.5)  # nothing gathered: nothing written
    assert sink.writes == [b"a\nb\n"]
    events.add(b"c\n")
    loop.advance(0.1)
    assert sink.writes == [b"a\nb\n", b"c\n"]
    events.close()
    loop.advance(1)
    assert loop.timers == []  # the timer ends with the file


def test_closing_the_events_file_stops_its_timer() -> None:
    loop = _FakeLoop()
    timer = logs._LoopTimer(logs.EventFile(_Sink()), cast(asyncio.AbstractEventLoop, loop))
    timer.cancel()
    assert loop.timers == []


def test_events_go_out_when_enough_have_gathered_whatever_their_age() -> None:
    sink = _Sink()
    events = logs.EventFile(sink)
    line = b"x" * 1023 + b"\n"
    lines = logs.EVENT_BUFFER_BYTES // len(line)
    for _ in range(lines):
        events.add(line)
    assert sink.writes == []
    events.add(line)  # no room left: what gathered goes out whole, this line starts the next write
    assert sink.writes == [line * lines]


def test_flush_and_close_write_whatever_has_gathered() -> None:
    sink = _Sink()
    events = logs.EventFile(sink)
    events.add(b"a\n")
    events.flush()
    events.add(b"b\n")
    events.close()
    assert sink.writes == [b"a\n", b"b\n"] and sink.closed and events.closed
    events.add(b"late\n")  # a line after the close (a worker thread's) is dropped, not raised
    events.flush()
    assert sink.writes == [b"a\n", b"b\n"]


def test_a_flush_that_interrupts_a_write_in_its_own_thread_waits_for_the_next_one() -> None:
    """A SIGTERM's handler flushes; it may run inside a write of this very thread."""
    sink = _Sink()
    events = logs.EventFile(sink)
    events.add(b"a\n")
    sink.during_write = events.flush  # neither a deadlock nor an error
    events.flush()
    sink.during_write = None
    events.add(b"b\n")
    events.flush()
    assert sink.writes == [b"a\n", b"b\n"]


def test_a_failing_events_file_is_given_up_once_and_never_raises(capsys: pytest.CaptureFixture[str]) -> None:
    sink = _Sink()
    events = logs.EventFile(sink)
    sink.refuse = True
    events.add(b"a\n")
    events.flush()
    assert events.closed and sink.closed
    events.add(b"b\n")
    events.close()
    assert capsys.readouterr().err.count("events.jsonl is no longer written: No space left on device") == 1


def test_lines_from_many_threads_stay_whole_and_in_each_threads_order() -> None:
    sink = _Sink()
    events = logs.EventFile(sink)

    def log(thread: int) -> None:
        for number in range(2000):
            events.add(f"{thread} {number} {'x' * 40}\n".encode())

    threads = [threading.Thread(target=log, args=(thread,)) for thread in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    events.close()
    lines = b"".join(sink.writes).decode().splitlines()
    assert len(lines) == 8000
    for thread in range(4):
        assert [int(line.split()[1]) for line in lines if line.startswith(f"{thread} ")] == list(range(2000))


@pytest.mark.anyio
async def test_the_event_loop_writes_a_lone_line_out_once_it_is_due(tmp_path: Path) -> None:
    """No later event and no close: the runner's event loop writes the line out when it is due."""
    path = tmp_path / "events.jsonl"
    logs.open_event_file(path)
    try:
        logs._tee(None, "info", {"event": "lonely"})
        assert path.read_bytes() == b""
        for _ in range(500):  # (bounded: the verdict does not depend on how fast the machine is)
            await anyio.sleep(0.02)
            if path.read_bytes():
                break
        assert path.read_bytes() == b'{"event":"lonely"}\n'
    finally:
        logs.close_event_file()


def test_a_run_that_crashes_at_its_end_leaves_every_event_in_its_events_file(
        plan_file, registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected error (here: writing the report files) ends the run: every event logged
    until then is in events.jsonl before the error reaches the operator."""
    from batchmig import operations
    from batchmig.testing import run_plan

    def broken(*args: object) -> None:
        raise RuntimeError("the report files broke")

    monkeypatch.setattr(operations, "write_run_files", broken)
    saved = structlog.get_config()
    logs.configure(json_output=True, console_level=logging.ERROR)
    instances = "\n".join(f"  - {{id: db-{i}, settings: {{duration: 5}}}}" for i in range(12))
    plan = plan_file("version: 1\nproviders: {tc: {type: testcloud, region: eu-1}}\ndefaults: {provider: tc}\n"
                     f"instances:\n{instances}\n")
    try:
        with pytest.raises(RuntimeError, match="the report files broke"):
            run_plan(plan, registry, tmp_path)
    finally:
        structlog.contextvars.clear_contextvars()
        structlog.configure(**saved)
    (run_dir,) = (tmp_path / "runs").iterdir()
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    names = [event["event"] for event in events]
    assert Counter(names) == Counter({"instance.started": 12, "instance.succeeded": 12, "sandbox.started": 1,
                                      "run.started": 1, "wave.started": 1, "run.finished": 1})
    assert names[-1] == "run.finished"  # logged a moment before the crash: not left in the buffer


def test_only_structlogs_context_variables_become_fields(configured: Path) -> None:
    logs.configure(json_output=True, console_level=logging.ERROR)
    unrelated = contextvars.ContextVar("structlog-like-but-not", default="x")
    other = contextvars.ContextVar("run")
    unrelated.set("not a field")
    other.set("not the run either")
    structlog.contextvars.bind_contextvars(run="r-2")
    structlog.get_logger("batchmig.test").info("a.event")
    structlog.contextvars.unbind_contextvars("run")
    structlog.contextvars.bind_contextvars(instance="db-9")  # unbound: no field, even with its variable known
    structlog.get_logger("batchmig.test").info("b.event")
    logs.flush_event_file()
    events = [json.loads(line) for line in configured.read_text().splitlines()]
    assert [{k: v for k, v in e.items() if k != "timestamp"} for e in events] == [
        {"event": "a.event", "run": "r-2", "level": "info"},
        {"event": "b.event", "instance": "db-9", "level": "info"},
    ]
