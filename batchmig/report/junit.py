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

import socket
import xml.etree.ElementTree as ET
from collections.abc import Iterable

from batchmig.redaction import REDACTOR
from batchmig.report.model import InstanceReport, RunReport

UNFINISHED = ("interrupted", "running", "pending", "needs_attention")
_CONTROL = dict.fromkeys(c for c in range(32) if c not in (9, 10, 13))


def _text(value: object) -> str:
    """Text XML 1.0 can hold: control characters removed, known secrets redacted."""
    return REDACTOR(str(value)).translate(_CONTROL)


def _seconds(instance: InstanceReport) -> float:
    return round(sum(step.duration_seconds or 0.0 for step in instance.steps), 3)


def _case(suite: ET.Element, instance: InstanceReport, wave: str) -> tuple[int, int, int]:
    """Append the instance's testcase; return (failures, errors, skipped) it adds."""
    case = ET.SubElement(suite, "testcase", name=_text(instance.id), classname=_text(f"batchmig.{wave}"),
                         time=f"{_seconds(instance):.3f}")
    error = instance.error
    outcome = (0, 0, 0)
    if instance.status == "failed":
        message = f"{error.code}: {error.message}" if error else "failed"
        failure = ET.SubElement(case, "failure", message=_text(message), type=_text(error.code if error else "failed"))
        failure.text = _text("\n".join(_failure_lines(instance)))
        outcome = (1, 0, 0)
    elif instance.status in ("skipped", "awaiting_cutover"):
        reason = error.message if error else f"awaiting a manual cutover at {instance.step or 'its cutover step'}"
        ET.SubElement(case, "skipped", message=_text(reason))
        outcome = (0, 0, 1)
    elif instance.status in UNFINISHED or instance.status != "succeeded":
        ET.SubElement(case, "error", message=_text(f"{instance.status} at {instance.step or 'its first step'}"),
                      type=_text(instance.status))
        outcome = (0, 1, 0)
    out = ET.SubElement(case, "system-out")
    out.text = _text("\n".join(_story(instance)))
    return outcome


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


def _story(instance: InstanceReport) -> Iterable[str]:
    yield f"provider: {instance.provider}"
    for step in instance.steps:
        took = "" if step.duration_seconds is None else f" in {step.duration_seconds:.1f}s"
        yield f"step {step.name}: {step.status}{took}"
    for key, value in instance.remote_ids.items():
        yield f"{key}: {value}"
    for key, value in instance.tags.items():
        yield f"tag {key}={value}"


def render_junit(report: RunReport) -> str:
    """The JUnit XML document of ``report``."""
    root = ET.Element("testsuites", name=_text(f"batchmig run {report.run}"))
    by_wave: dict[str, list[InstanceReport]] = {}
    for instance in report.instances:
        by_wave.setdefault(instance.wave, []).append(instance)
    totals = [0, 0, 0, 0]
    stamp = report.started.strftime("%Y-%m-%dT%H:%M:%S") if report.started else None
    for number, (wave, instances) in enumerate(by_wave.items()):
        suite = ET.SubElement(root, "testsuite", name=_text(wave), id=str(number), package="batchmig",
                              hostname=_text(socket.gethostname()))
        if stamp:
            suite.set("timestamp", stamp)
        properties = ET.SubElement(suite, "properties")
        for name, value in (("run", report.run), ("plan", report.plan), ("sandbox", str(report.sandbox).lower()),
                            ("state", report.state)):
            ET.SubElement(properties, "property", name=name, value=_text(value))
        failures = errors = skipped = 0
        for instance in instances:
            failed, errored, skip = _case(suite, instance, wave)
            failures, errors, skipped = failures + failed, errors + errored, skipped + skip
        seconds = sum(_seconds(i) for i in instances)
        suite.set("tests", str(len(instances)))
        suite.set("failures", str(failures))
        suite.set("errors", str(errors))
        suite.set("skipped", str(skipped))
        suite.set("time", f"{seconds:.3f}")
        totals = [totals[0] + len(instances), totals[1] + failures, totals[2] + errors, totals[3] + skipped]
    root.set("tests", str(totals[0]))
    root.set("failures", str(totals[1]))
    root.set("errors", str(totals[2]))
    root.set("skipped", str(totals[3]))
    root.set("time", f"{report.duration_seconds:.3f}")
    ET.indent(root, space=" ")
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"
