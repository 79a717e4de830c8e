"""The instances' steps as the journal keeps them, rendered without their records.

``batchmig status`` and ``batchmig report`` of a 100,000-instance run read over 300,000
steps. As ``StepRecord``s — two datetimes each, then pydantic's JSON of every instance —
they were half of the time of the JSON report. Here a step stays the journal's row
(times as epoch seconds) and is formatted only as it is written: a time becomes its ISO
text from a cache of the seconds already seen, an instance's line is written by orjson.
The text is the records' to the byte (``instance_line`` falls back to them for any
value the fast way does not cover; ``test_report_rows`` compares the two on arbitrary
instances).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any, NamedTuple

import orjson

from batchmig.journal import Journal
from batchmig.report.model import InstanceReport, StepRecord, made, moment, span, timestamp

JournalStep = tuple[str, int, str, float | None, float | None, str]
"""A step as ``Journal.steps`` reads it: instance, index, name, started, ended, status."""

_index = itemgetter(1)
_FAST_BELOW = 4e12
"""Milliseconds (2096) below which ``moment``'s microseconds are its milliseconds times 1000:
later, a double's step passes half a microsecond and ``moment`` may hold 172001 µs."""


def step_rows(journal: Journal) -> dict[str, list[JournalStep]]:
    """Every instance's journaled steps, in order (rows, not records). Read as they are
    stored and put in order here: through the index, a look-up per row cost a third more."""
    by_instance: dict[str, list[JournalStep]] = {}
    for row in journal.steps(ordered=False):
        rows = by_instance.get(row[0])
        if rows is None:
            by_instance[row[0]] = [row]
        else:
            rows.append(row)
    for rows in by_instance.values():
        if len(rows) > 1:
            rows.sort(key=_index)
    return by_instance


class IsoTimes:
    """Epoch seconds as ISO-8601 text of ``moment``'s value, each whole second formatted
    once: in pydantic's notation (the JSON's ``2026-12-02T02:08:41.120000Z``), or with
    ``zone="+00:00"`` in ``datetime.isoformat``'s (the CSV's)."""

    def __init__(self, zone: str = "Z") -> None:
        self.seconds: dict[int, str] = {}
        self.zone = zone
        self.suffixes = (zone, *(f".{ms:03d}000{zone}" for ms in range(1, 1000)))
        """The end of the text after its seconds, by milliseconds."""

    def __call__(self, epoch: float) -> str:
        scaled = epoch * 1000.0
        milliseconds = round(scaled)
        if -0.49 < scaled - milliseconds < 0.49 and 0 <= scaled < _FAST_BELOW:
            second, fraction = divmod(milliseconds, 1000)
            prefix = self.seconds.get(second) or self.second(second)
            return prefix + self.suffixes[fraction]
        return moment(epoch).isoformat().replace("+00:00", self.zone)  # moment's slow way (near a half ms)

    def second(self, second: int) -> str:
        text = self.seconds[second] = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        return text


def step_documents(rows: Sequence[JournalStep], iso: IsoTimes) -> list[dict[str, Any]] | None:
    """The steps' JSON documents (``StepRecord``'s), or None when a time is not a float
    (the records' way keeps its exact rendering). ``IsoTimes`` is written out here for
    the usual time: 650,000 of them at 100,000 instances."""
    documents = []
    seconds, second_of, suffixes = iso.seconds, iso.second, iso.suffixes
    for _, index, name, started, ended, status in rows:
        begun = finished = duration = None
        if started is not None:
            if type(started) is not float:
                return None
            scaled = started * 1000.0
            milliseconds = round(scaled)
            if -0.49 < scaled - milliseconds < 0.49 and 0 <= scaled < _FAST_BELOW:
                second, fraction = divmod(milliseconds, 1000)
                begun = (seconds.get(second) or second_of(second)) + suffixes[fraction]
            else:
                begun = iso(started)
        if ended is not None:
            if type(ended) is not float:
                return None
            scaled = ended * 1000.0
            milliseconds = round(scaled)
            if -0.49 < scaled - milliseconds < 0.49 and 0 <= scaled < _FAST_BELOW:
                second, fraction = divmod(milliseconds, 1000)
                finished = (seconds.get(second) or second_of(second)) + suffixes[fraction]
            else:
                finished = iso(ended)
            if started is not None:
                duration = round(max(0.0, ended - started), 3)
        documents.append({"index": index, "name": name, "status": status, "started": begun, "ended": finished,
                          "duration_seconds": duration})
    return documents


def step_records(rows: Iterable[JournalStep]) -> tuple[StepRecord, ...]:
    """The steps' records, as ``build_run_report`` makes them."""
    return tuple(
        made(StepRecord, {"index": index, "name": name, "status": status, "started": timestamp(started),
                          "ended": timestamp(ended), "duration_seconds": span(started, ended)})
        for _, index, name, started, ended, status in rows
    )


def instance_line(instance: InstanceReport, rows: Sequence[JournalStep], iso: IsoTimes) -> str:
    """One instance's compact JSON in ``report.json`` (``files.instance_json`` of its
    record with ``rows`` as its steps), not masked yet. Written by orjson when every value
    is of the usual kind (text ids and tags, float times), else through the records."""
    steps = step_documents(rows, iso)
    updated = instance.updated
    if steps is None or not _plain(instance.remote_ids) or not _plain(instance.tags) or updated is None:
        from batchmig.report.files import instance_json

        return instance_json(made(InstanceReport, {**vars(instance), "steps": step_records(rows)}))
    error = instance.error
    line = orjson.dumps({
        "id": instance.id, "provider": instance.provider, "wave": instance.wave, "status": instance.status,
        "step": instance.step, "step_index": instance.step_index,
        "updated": iso(updated.timestamp()), "remote_ids": instance.remote_ids, "steps": steps,
        "error": None if error is None else {
            "kind": error.kind, "code": error.code, "message": error.message, "request_id": error.request_id,
            "step": error.step, "details": error.details},
        "tags": instance.tags, "cutover": instance.cutover,
    }).decode()
    return line if line.isascii() else json.dumps(orjson.loads(line), separators=(",", ":"))


StepView = tuple[str, str, float | None, float | None, float | None]
"""What the HTML report draws of a step: its name, status, start and end (epoch seconds of
the record's times, to the millisecond) and ``duration_seconds``."""
StepOutcome = tuple[str, str, float | None]
"""What the JUnit report tells of a step: its name, status and ``duration_seconds``."""


def steps_reader(rows: Mapping[str, Sequence[JournalStep]] | None) -> Callable[[InstanceReport], list[StepView]]:
    """How the HTML report reads an instance's steps: from its records, or (``rows``) from
    the journal's rows (the same values, without the records)."""
    if rows is None:
        return lambda instance: [
            (step.name, step.status, None if step.started is None else step.started.timestamp(),
             None if step.ended is None else step.ended.timestamp(), step.duration_seconds)
            for step in instance.steps]
    return lambda instance: _row_views(rows.get(instance.id, ()))


def outcomes_reader(rows: Mapping[str, Sequence[JournalStep]] | None
                    ) -> Callable[[InstanceReport], list[StepOutcome]]:
    """How the JUnit report reads an instance's steps: from its records, or (``rows``) from the journal's rows."""
    if rows is None:
        return lambda instance: [(step.name, step.status, step.duration_seconds) for step in instance.steps]
    return lambda instance: [
        (name, status, None if started is None or ended is None else round(max(0.0, ended - started), 3))
        for _, _, name, started, ended, status in rows.get(instance.id, ())]


def _row_views(rows: Iterable[JournalStep]) -> list[StepView]:
    views: list[StepView] = []
    for _, _, name, started, ended, status in rows:
        begun = finished = duration = None
        if started is not None:
            scaled = started * 1000.0
            milliseconds = round(scaled)
            fast = -0.49 < scaled - milliseconds < 0.49 and 0 <= scaled < _FAST_BELOW
            begun = milliseconds / 1000 if fast else epoch_of_moment(started)
        if ended is not None:
            scaled = ended * 1000.0
            milliseconds = round(scaled)
            fast = -0.49 < scaled - milliseconds < 0.49 and 0 <= scaled < _FAST_BELOW
            finished = milliseconds / 1000 if fast else epoch_of_moment(ended)
            if started is not None:
                duration = round(max(0.0, ended - started), 3)
        views.append((name, status, begun, finished, duration))
    return views


def epoch_of_moment(epoch: float) -> float:
    """``moment(epoch).timestamp()``: the milliseconds' double, without the datetime."""
    scaled = epoch * 1000.0
    milliseconds = round(scaled)
    if -0.49 < scaled - milliseconds < 0.49 and 0 <= scaled < _FAST_BELOW:
        return milliseconds / 1000
    return moment(epoch).timestamp()


class StepSpan(NamedTuple):
    """An instance's steps in one line (the CSV's): when the first started and the last
    ended (``isoformat`` of the records' times) and the seconds they took (each step's
    ``duration_seconds``, summed in order)."""

    first: str | None
    last: str | None
    seconds: float


NO_STEPS = StepSpan(None, None, 0)


def span_of_steps(steps: Iterable[StepRecord]) -> StepSpan:
    """The ``StepSpan`` of an instance's step records."""
    first = last = None
    seconds: float = 0  # an int while there are no steps, as sum() has it
    for step in steps:
        started, ended = step.started, step.ended
        if started is not None and (first is None or started < first):
            first = started
        if ended is not None and (last is None or ended > last):
            last = ended
        seconds += step.duration_seconds or 0.0
    return StepSpan(None if first is None else first.isoformat(), None if last is None else last.isoformat(),
                    seconds)


def step_spans(journal: Journal) -> dict[str, StepSpan]:
    """Every instance's ``StepSpan`` (what ``span_of_steps`` gives of its records), from
    the journal's start and end of each step as they are read (in order: no more of them
    held than one instance's), without their records (a view that shows no step: the CSV)."""
    return spans_of_times(journal.step_times())


def spans_of_times(times: Iterable[tuple[str, float | None, float | None]]) -> dict[str, StepSpan]:
    """``step_spans`` of steps given as (instance, started, ended), by instance and step."""
    iso = IsoTimes("+00:00")
    spans: dict[str, StepSpan] = {}
    current, first, last, seconds = None, None, None, 0.0
    for instance, started, ended in times:
        if instance != current:
            if current is not None:
                spans[current] = StepSpan(None if first is None else iso(first), None if last is None else iso(last),
                                          seconds)
            current, first, last, seconds = instance, None, None, 0
        # ``span`` written out: a step's duration_seconds, 0.0 without both times
        if started is not None:
            if first is None or started < first:
                first = started
            seconds += 0.0 if ended is None else round(max(0.0, ended - started), 3)
        else:
            seconds += 0.0
        if ended is not None and (last is None or ended > last):
            last = ended
    if current is not None:
        spans[current] = StepSpan(None if first is None else iso(first), None if last is None else iso(last), seconds)
    return spans


def lines_with_steps(steps: dict[str, list[JournalStep]], *, take: bool = True) -> Callable[[InstanceReport], str]:
    """``instance_line`` of an instance with its rows in ``steps`` (``take``: taken out as
    they are written, each instance being written once; else left for another format)."""
    iso = IsoTimes()
    read = steps.pop if take else steps.get
    return lambda instance: instance_line(instance, read(instance.id, ()), iso)


def spans_of_rows(steps: Mapping[str, Sequence[JournalStep]]) -> dict[str, StepSpan]:
    """``step_spans`` of the steps as the journal's rows, each instance's in order (``step_rows``)."""
    return spans_of_times((row[0], row[3], row[4]) for rows in steps.values() for row in rows)


_PLAIN = frozenset({str, bool, type(None)})


def _plain(values: Mapping[str, Any]) -> bool:
    """Whether every value is text, a boolean or null (what cloud ids and plan tags hold):
    JSON that orjson and pydantic write alike (a number or a nested value takes the records' way)."""
    return not values or set(map(type, values.values())) <= _PLAIN

