"""The report as the compact document the HTML report and the dashboard draw from.

Both pages run the same script (``static/report.js``) over this document: the HTML
report carries it inline, the dashboard fetches it and fetches it again as the run
moves. It is shaped for size and drawing speed at 10,000 instances rather than for
reading: names that repeat (statuses, waves, providers, step names, error messages)
are listed once and referred to by index, times are seconds from ``t0`` with 0.1 s
precision, and an instance is one short array::

    [id, provider, wave, status, step, error, steps, tags, cutover]
    steps: [[step name, start, duration, status], ...]   (start/duration in seconds)
    error: index into ``errors`` (groups by the cloud's code), -1 for none

``VIEW_VERSION`` changes whenever this shape does (the script checks it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from batchmig.report.model import InstanceReport, RunReport
from batchmig.report.rows import JournalStep, StepView, epoch_of_moment, steps_reader

VIEW_VERSION = 1
STATUS_ORDER = ("succeeded", "failed", "skipped", "awaiting_cutover", "needs_attention", "interrupted", "running",
                "pending")


class _Names:
    """A list of distinct values, each referred to by its index."""

    def __init__(self, initial: Iterable[str] = ()) -> None:
        self.values: list[str] = []
        self.indexes: dict[str, int] = {}
        """Each value's index."""
        for value in initial:
            self.ref(value)

    def ref(self, value: str) -> int:
        index = self.indexes.get(value)
        if index is None:
            index = self.indexes[value] = len(self.values)
            self.values.append(value)
        return index


def _epoch(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def view_data(report: RunReport, *, now: datetime | None = None,
              rows: Mapping[str, Sequence[JournalStep]] | None = None) -> dict[str, Any]:
    """The view document of ``report`` (``now``: when it was taken, for bars still running;
    ``rows``: the instances' steps as the journal's rows, if it was built without them)."""
    view = ViewBuilder(report, now=now, rows=rows)
    return view.document(view.entries(report.instances))


class ViewBuilder:
    """``view_data``'s document made in parts: the instances' entries a batch at a time
    (``entries``), then the document around them (``document``), whose lists of names
    and error groups the entries filled. The HTML report writes each batch's entries as
    text as they come: at 100,000 instances their lists of lists were 85 MB at once."""

    def __init__(self, report: RunReport, *, now: datetime | None = None,
                 rows: Mapping[str, Sequence[JournalStep]] | None = None) -> None:
        self.report = report
        self.now = now = now or datetime.now(UTC)
        self.steps_of = steps_reader(rows)
        if rows is None:
            starts = [s.started.timestamp() for i in report.instances for s in i.steps if s.started]
        else:  # (the earliest record's time is the earliest row's, rounded: rounding keeps the order)
            earliest = min((row[3] for i in report.instances for row in rows.get(i.id, ()) if row[3] is not None),
                           default=None)
            starts = [] if earliest is None else [epoch_of_moment(earliest)]
        self.t0 = min([*starts, *[x for x in [_epoch(report.started)] if x is not None]], default=now.timestamp())
        self.statuses = _Names(STATUS_ORDER)
        self.waves = _Names(w.name for w in report.waves)
        self.providers, self.steps, self.messages = _Names(), _Names(), _Names()
        self.groups: dict[str, dict[str, Any]] = {}
        self.position = 0

    def entries(self, instances: Iterable[InstanceReport]) -> list[list[Any]]:
        """The entries of the report's next ``instances`` (in the report's order)."""
        listed = []
        groups, messages, providers, waves, statuses = (self.groups, self.messages, self.providers, self.waves,
                                                        self.statuses)
        steps_of, steps, t0 = self.steps_of, self.steps, self.t0
        for position, instance in enumerate(instances, self.position):
            error = -1
            if instance.error is not None:
                group = groups.setdefault(instance.error.code, {
                    "code": instance.error.code, "kind": instance.error.kind, "index": len(groups), "members": []})
                group["members"].append([position, messages.ref(instance.error.message), instance.error.request_id,
                                         instance.error.step])
                error = group["index"]
            listed.append([
                instance.id, providers.ref(instance.provider), waves.ref(instance.wave), statuses.ref(instance.status),
                instance.step or "", error, _steps(instance, steps_of(instance), steps, statuses, t0),
                instance.tags or 0, 1 if instance.cutover == "manual" else 0,
            ])
        self.position += len(listed)
        return listed

    def document(self, instances: Any) -> dict[str, Any]:
        """The view document with ``instances`` as its instances (once every entry is made)."""
        report, now, t0 = self.report, self.now, self.t0
        ordered = sorted(self.groups.values(), key=lambda g: g["index"])
        return {
            "version": VIEW_VERSION,
            "run": report.run, "plan": report.plan, "plan_sha256": report.plan_sha256, "sandbox": report.sandbox,
            "state": report.state, "started": _iso(report.started), "ended": _iso(report.ended),
            "generated": _iso(now), "t0": round(t0, 3), "now": round(now.timestamp() - t0, 1),
            "elapsed_seconds": report.elapsed_seconds, "duration_seconds": report.duration_seconds,
            "counts": report.counts, "waves": [[w.name, w.instances, w.counts] for w in report.waves],
            "calls": _plain(report.calls),
            "statuses": self.statuses.values, "wave_names": self.waves.values, "providers": self.providers.values,
            "step_names": self.steps.values, "messages": self.messages.values,
            "errors": [[g["code"], g["kind"], g["members"]] for g in ordered],
            "instances": instances,
            "keys": [_key(name, record, t0) for name, record in sorted(report.rate_limits.items())],
            "requests": [[r.id, r.kind, _iso(r.at), r.user, r.host, r.selection, r.instances]
                         for r in report.requests],
            "cutovers": [[c.instance, _iso(c.released), c.user, c.host, c.request, c.before_gate]
                         for c in report.cutovers],
            "invocations": [[i.command, _iso(i.started), _iso(i.ended), i.duration_seconds, i.user, i.host,
                             i.version, i.exit_code, i.stop_reason] for i in report.invocations],
            "notifications": [_plain(n) for n in report.notifications],
            "start_error": report.start_error,
        }


def _steps(instance: InstanceReport, views: Sequence[StepView], names: _Names, statuses: _Names,
           t0: float) -> list[list[Any]]:
    bars: list[list[Any]] = []
    known_names, known_statuses = names.indexes, statuses.indexes  # (``ref`` for a new one only: 325,000 steps)
    for name, status, started, _, duration in views:
        if started is not None:
            name_index, status_index = known_names.get(name), known_statuses.get(status)
            bars.append([names.ref(name) if name_index is None else name_index, round(started - t0, 1),
                         round(duration or 0.0, 1), statuses.ref(status) if status_index is None else status_index])
    if instance.step and instance.status in ("running", "awaiting_cutover"):
        # The step it is at now: from the end of its last step (or its last change) until now.
        last = views[-1][3] if views else _epoch(instance.updated)
        if last is not None:
            bars.append([names.ref(instance.step), round(last - t0, 1), None, statuses.ref(instance.status)])
    return bars


def _key(name: str, record: Any, t0: float) -> dict[str, Any]:
    series = record.series
    return {
        "key": name, "cap": record.cap, "rate": record.rate, "admitted": record.admitted,
        "throttled": record.throttled, "retries": record.retries, "max_in_window": record.max_in_window,
        "wait_seconds": record.wait_seconds,
        "series": None if series is None else {
            "start": round(series.start.timestamp() - t0, 1), "bucket": series.bucket_seconds,
            "calls": list(series.calls), "throttled": list(series.throttled), "retries": list(series.retries),
        },
    }


def _plain(record: Any) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if not key.startswith("_")}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")
