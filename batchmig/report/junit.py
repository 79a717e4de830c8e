"""The report as JUnit XML, the test-result format CI systems read.

One ``<testsuite>`` per wave, one ``<testcase>`` per instance (``classname`` is
``batchmig.<wave>``, ``name`` the instance id, ``time`` the seconds its steps took).
A failed instance carries a ``<failure>`` with the cloud's code as ``type`` and its
message, step and request id; a skipped one a ``<skipped>`` with the reason; one that
waits for its cutover is ``<skipped>`` too (nothing went wrong, nothing finished);
one that never finished — interrupted, still running or pending, needing attention —
is an ``<error>``, so a pipeline never mistakes an unfinished run for a green one.
The shape follows the common JUnit schema (tests/junit/junit.xsd checks it).
"""

from __future__ import annotations

import re
import socket
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence

from batchmig.redaction import REDACTOR
from batchmig.report.files import batches
from batchmig.report.model import InstanceReport, RunReport
from batchmig.report.rows import JournalStep, StepOutcome, outcomes_reader

UNFINISHED = ("interrupted", "running", "pending", "needs_attention")
_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))
_HAS_CONTROL = re.compile("[" + "".join(map(chr, _CONTROL)) + "]").search


def _text(value: object) -> str:
    """Text XML 1.0 can hold: control characters removed, known secrets redacted (the
    scan for one is a fifth of ``translate``'s cost, which rebuilds every string)."""
    text = REDACTOR(str(value))
    return text.translate(_CONTROL) if _HAS_CONTROL(text) else text


def _seconds(steps: Iterable[StepOutcome]) -> float:
    return round(sum([duration or 0.0 for _, _, duration in steps]), 3)


def attribute(value: str) -> str:
    """``value`` escaped as ElementTree writes an attribute's value."""
    value = content(value)
    if '"' in value:
        value = value.replace('"', "&quot;")
    if "\r" in value:
        value = value.replace("\r", "&#13;")
    if "\n" in value:
        value = value.replace("\n", "&#10;")
    if "\t" in value:
        value = value.replace("\t", "&#09;")
    return value


def content(value: str) -> str:
    """``value`` escaped as ElementTree writes an element's text."""
    if "&" in value:
        value = value.replace("&", "&amp;")
    if "<" in value:
        value = value.replace("<", "&lt;")
    if ">" in value:
        value = value.replace(">", "&gt;")
    return value


def _element(indent: str, tag: str, attributes: str, text: str = "") -> str:
    """One element without children on its own line, as ``ET.indent`` lays it out."""
    return f"{indent}<{tag}{attributes}>{content(text)}</{tag}>\n" if text else f"{indent}<{tag}{attributes} />\n"


def _case(instance: InstanceReport, steps: Sequence[StepOutcome], seconds: float, classname: str) -> str:
    """The instance's testcase (its outcome as ``_counts`` counts it; ``seconds``: its steps' ``_seconds``)."""
    error = instance.error
    head = (f'  <testcase name="{attribute(_text(instance.id))}" classname="{classname}" '
            f'time="{seconds:.3f}">\n')
    outcome = ""
    if instance.status == "failed":
        message = f"{error.code}: {error.message}" if error else "failed"
        outcome = _element("   ", "failure", f' message="{attribute(_text(message))}" '
                           f'type="{attribute(_text(error.code if error else "failed"))}"',
                           _text("\n".join(_failure_lines(instance))))
    elif instance.status in ("skipped", "awaiting_cutover"):
        reason = error.message if error else f"awaiting a manual cutover at {instance.step or 'its cutover step'}"
        outcome = _element("   ", "skipped", f' message="{attribute(_text(reason))}"')
    elif instance.status in UNFINISHED or instance.status != "succeeded":
        message = f"{instance.status} at {instance.step or 'its first step'}"
        outcome = _element("   ", "error", f' message="{attribute(_text(message))}" '
                           f'type="{attribute(_text(instance.status))}"')
    story = _element("   ", "system-out", "", _text("\n".join(_story(instance, steps))))
    return head + outcome + story + "  </testcase>\n"


def _failure_lines(instance: InstanceReport) -> Iterable[str]:
    error = instance.error
    if error is None:
        return
    yield f"code: {error.code} ({error.kind})"
    yield f"message: {error.message}"
    if error.step:
        yield f"step: {error.step}"
    if error.request_id:
        yield f"request id: {error.request_id}"


def _story(instance: InstanceReport, steps: Iterable[StepOutcome]) -> list[str]:
    lines = [f"provider: {instance.provider}"]
    lines += [f"step {name}: {status}" if duration is None else f"step {name}: {status} in {duration:.1f}s"
              for name, status, duration in steps]
    if instance.remote_ids:
        lines += [f"{key}: {value}" for key, value in instance.remote_ids.items()]
    if instance.tags:
        lines += [f"tag {key}={value}" for key, value in instance.tags.items()]
    return lines


def render_junit(report: RunReport) -> str:
    """The JUnit XML document of ``report``: the text ElementTree writes of it, indented by
    one space per level, written directly (ElementTree's tree took most of the time at
    100,000 instances)."""
    return "".join(junit_chunks(report))


def junit_chunks(report: RunReport, rows: Mapping[str, Sequence[JournalStep]] | None = None) -> Iterator[str]:
    """``render_junit``'s text in pieces of whole testcases. A suite's and the root's
    counts come first in the document, so they are counted before any case is written.
    ``rows``: the instances' steps as the journal's rows, if it was built without them."""
    steps_of = outcomes_reader(rows)
    by_wave: dict[str, list[InstanceReport]] = {}
    for instance in report.instances:
        by_wave.setdefault(instance.wave, []).append(instance)
    stamp = report.started.strftime("%Y-%m-%dT%H:%M:%S") if report.started else None
    suite_attributes = (f' package="batchmig" hostname="{attribute(_text(socket.gethostname()))}"'
                        + (f' timestamp="{stamp}"' if stamp else ""))
    properties = "".join(
        f'   <property name="{name}" value="{attribute(_text(value))}" />\n'
        for name, value in (("run", report.run), ("plan", report.plan), ("sandbox", str(report.sandbox).lower()),
                            ("state", report.state)))
    counts = {wave: _counts(instances) for wave, instances in by_wave.items()}
    failures, errors, skipped = (sum(suite[column] for suite in counts.values()) for column in range(3))
    root = (f'<testsuites name="{attribute(_text(f"batchmig run {report.run}"))}" tests="{len(report.instances)}" '
            f'failures="{failures}" errors="{errors}" skipped="{skipped}" time="{report.duration_seconds:.3f}"')
    if not by_wave:
        yield f'<?xml version="1.0" encoding="UTF-8"?>\n{root} />\n'
        return
    yield f'<?xml version="1.0" encoding="UTF-8"?>\n{root}>\n'
    for number, (wave, instances) in enumerate(by_wave.items()):
        classname = attribute(_text(f"batchmig.{wave}"))
        failed, errored, skip = counts[wave]
        outcomes = [steps_of(i) for i in instances]  # (read once: the suite's time comes first)
        times = [_seconds(steps) for steps in outcomes]
        yield (f' <testsuite name="{attribute(_text(wave))}" id="{number}"{suite_attributes} '
               f'tests="{len(instances)}" failures="{failed}" errors="{errored}" skipped="{skip}" '
               f'time="{sum(times):.3f}">\n  <properties>\n{properties}  </properties>\n')
        for batch in batches(zip(instances, outcomes, times, strict=True)):
            yield "".join(_case(instance, steps, seconds, classname) for instance, steps, seconds in batch)
        yield " </testsuite>\n"
    yield "</testsuites>\n"


def _counts(instances: Iterable[InstanceReport]) -> tuple[int, int, int]:
    """The (failures, errors, skipped) of a suite of ``instances`` (see ``_case``)."""
    statuses = Counter(instance.status for instance in instances)
    skipped = statuses["skipped"] + statuses["awaiting_cutover"]
    errors = sum(statuses.values()) - statuses["failed"] - skipped - statuses["succeeded"]
    return statuses["failed"], errors, skipped
