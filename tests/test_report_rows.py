"""The report rendered from the journal's step rows is the records' text to the byte."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from batchmig.report.build import _step_records
from batchmig.report.csv import instance_row
from batchmig.report.files import instance_json
from batchmig.report.model import ErrorRecord, InstanceReport, made, moment
from batchmig.report.rows import (
    NO_STEPS,
    IsoTimes,
    JournalStep,
    instance_line,
    outcomes_reader,
    span_of_steps,
    spans_of_times,
    step_records,
    steps_reader,
)

LATEST = 32503680000.0
TIMES = (st.floats(min_value=0, max_value=LATEST) | st.builds(
    lambda whole, offset: whole / 1000 + 0.0005 + offset,
    st.integers(min_value=0, max_value=int(LATEST) * 1000), st.sampled_from([0.0, 1e-9, -1e-9, 1e-12, 2e-7]))
    | st.integers(min_value=0, max_value=int(LATEST)))
TEXT = st.text(max_size=12)
VALUES = st.one_of(TEXT, st.booleans(), st.none(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False),
                   st.lists(st.integers(), max_size=2))


def rows_of(instance: str, steps: list[tuple[str, str, float | None, float | None]]) -> list[JournalStep]:
    return [(instance, index, name, started, ended, status) for index, (name, status, started, ended) in
            enumerate(steps)]


@st.composite
def instances(draw: st.DrawFn) -> tuple[InstanceReport, list[JournalStep]]:
    iid = draw(TEXT)
    steps = draw(st.lists(st.tuples(TEXT, st.sampled_from(["succeeded", "failed"]), st.none() | TIMES,
                                    st.none() | TIMES), max_size=4))
    if steps and draw(st.booleans()):  # a step that starts when the one before it ended
        name, status, _, ended = steps[-1]
        steps.append((name, status, steps[-1][3], ended))
    error = draw(st.none() | st.builds(ErrorRecord, TEXT, TEXT, TEXT, st.none() | TEXT, st.none() | TEXT))
    record = made(InstanceReport, {
        "id": iid, "provider": draw(TEXT), "wave": draw(TEXT), "status": draw(TEXT), "step": draw(st.none() | TEXT),
        "step_index": draw(st.integers(0, 9)), "updated": moment(draw(st.floats(0, LATEST))),
        "remote_ids": draw(st.dictionaries(TEXT, st.one_of(TEXT, st.booleans(), st.none()) | VALUES, max_size=3)),
        "steps": (), "error": error, "tags": draw(st.dictionaries(TEXT, TEXT, max_size=2)),
        "cutover": draw(st.sampled_from([None, "auto", "manual"])),
    })
    return record, rows_of(iid, steps)


@settings(max_examples=400, deadline=None)
@given(instances())
def test_an_instance_line_from_rows_is_its_records_line(case: tuple[InstanceReport, list[JournalStep]]) -> None:
    instance, rows = case
    with_records = made(InstanceReport, {**vars(instance), "steps": step_records(rows)})
    assert instance_line(instance, rows, IsoTimes()) == instance_json(with_records)


@settings(max_examples=500, deadline=None)
@given(TIMES)
def test_an_iso_time_is_the_moments(epoch: float) -> None:
    times = IsoTimes()
    expected = moment(epoch).isoformat().replace("+00:00", "Z")
    assert times(epoch) == expected
    assert times(epoch) == expected  # (from the cache of seconds)
    assert IsoTimes("+00:00")(epoch) == moment(epoch).isoformat()  # the CSV's notation


@settings(max_examples=300, deadline=None)
@given(instances())
def test_the_html_and_junit_read_the_same_steps_from_rows_as_from_records(
        case: tuple[InstanceReport, list[JournalStep]]) -> None:
    instance, rows = case
    with_records = made(InstanceReport, {**vars(instance), "steps": step_records(rows)})
    by_id = {instance.id: rows}
    assert steps_reader(by_id)(instance) == steps_reader(None)(with_records)
    assert outcomes_reader(by_id)(instance) == outcomes_reader(None)(with_records)


@settings(max_examples=300, deadline=None)
@given(instances())
def test_the_csv_reads_the_same_steps_from_their_times_as_from_records(
        case: tuple[InstanceReport, list[JournalStep]]) -> None:
    instance, rows = case
    with_records = made(InstanceReport, {**vars(instance), "steps": step_records(rows)})
    spans = spans_of_times([(iid, started, ended) for iid, _, _, started, ended, _ in rows])
    expected = span_of_steps(with_records.steps)
    assert spans.get(instance.id, NO_STEPS) == expected
    assert instance_row(instance, spans.get(instance.id, NO_STEPS)) == instance_row(with_records, expected)


def test_the_records_of_rows_are_the_builds() -> None:
    step = step_records([("a", 0, "create", 1.0004, 2.5, "succeeded")])[0]
    assert (step.started, step.ended, step.duration_seconds) == (
        datetime.fromtimestamp(1.0, UTC), datetime.fromtimestamp(2.5, UTC), 1.5)


class _Steps:
    """A report source of steps alone (what ``_step_records`` reads)."""

    def __init__(self, rows: list[JournalStep]) -> None:
        self.rows = rows

    def steps(self) -> list[JournalStep]:
        return self.rows


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.none() | TIMES, st.none() | TIMES,
                          st.sampled_from([None, 0.0, 1e-6, 3e-5, 4e-4, 6e-4, 1e-3]))))
def test_the_builds_step_records_are_the_rows_records(steps: list[tuple[str, float | None, float | None,
                                                                        float | None]]) -> None:
    """``build_run_report``'s records, written out for speed (a step that starts as the one
    before it ends takes its datetime), are ``step_records``': steps that start as, just
    after, or a millisecond after the one before them ended included."""
    rows: list[JournalStep] = []
    for instance, started, ended, after_previous in sorted(steps, key=lambda step: step[0]):
        previous = rows[-1][4] if rows and rows[-1][0] == instance else None
        if after_previous is not None and previous is not None:  # it starts as the one before it ends, or just after
            started = previous + after_previous
        rows.append((instance, len([r for r in rows if r[0] == instance]), "step", started, ended, "succeeded"))
    built = _step_records(_Steps(rows), {})
    for instance in ("a", "b"):
        assert tuple(built.get(instance, ())) == step_records([row for row in rows if row[0] == instance])
