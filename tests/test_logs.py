"""The log pipeline: what every event carries, in events.jsonl and on the console."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

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
