"""The run report as typed records: one model, rendered everywhere.

``report.json``, ``batchmig status``, the closing summary and every later surface (HTML,
JUnit, Markdown, CSV, webhooks, metrics, the web dashboard) read these records, never
the journal directly, so they all tell the same story. The records are plain frozen
dataclasses; pydantic turns them into JSON (``to_json_dict``), back (``RunReport.load``)
and into the published JSON Schema (``batchmig.report.schema``).

Versioning: ``SCHEMA_VERSION`` is raised when a field is removed, renamed or changes
meaning. Adding a field does not raise it; readers must ignore fields they do not know.

Times are ISO-8601 in UTC (``2025-03-01T22:04:05.120Z``); every span also carries its
``duration_seconds``, so nobody has to subtract timestamps to read a report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal, TypeVar

from pydantic import ConfigDict, TypeAdapter

from batchmig.redaction import REDACTOR

SCHEMA_VERSION = 1

RunState = Literal[
    "running", "succeeded", "failed", "interrupted", "awaiting_cutover", "needs_attention", "not_started"
]
"""``not_started``: the first start failed before anything was sent (e.g. missing credentials)."""

RECORD_CONFIG = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)
"""The records' pydantic config. The fields' docstrings become descriptions only in the
published schema (``batchmig.report.schema`` asks for them while it builds it): pydantic
finds them by parsing the classes' source with ``ast``, and CPython 3.11 keeps the ast
module's recursion depth per interpreter, not per thread — two threads building ASTs at
once can fail with "SystemError: AST constructor recursion depth mismatch" (a ``resume``
under load did, while a thread prepared the report's serializers: ``formats.prepare``)."""


def moment(epoch: float) -> datetime:
    """An epoch time from the journal as an aware UTC datetime (millisecond precision):
    ``datetime.fromtimestamp(round(epoch, 3), UTC)``, the same value, a fifth faster (a
    100,000-instance report makes 750,000 of them). ``round(epoch, 3)`` goes through a
    decimal conversion; the milliseconds are found by rounding ``epoch * 1000`` instead
    (the product is within 0.002 of the exact one below 10**13 ms, so only a value within
    0.01 of a half millisecond takes the slow way), and ``ms / 1000`` is the same double
    as ``round(epoch, 3)``: both are the one nearest to that decimal."""
    scaled = epoch * 1000.0
    milliseconds = round(scaled)
    if abs(scaled - milliseconds) < 0.49 and -1e13 < scaled < 1e13:
        return datetime.fromtimestamp(milliseconds / 1000, UTC)
    return datetime.fromtimestamp(round(epoch, 3), UTC)


Record = TypeVar("Record")
_new = object.__new__
_set = object.__setattr__


def made(kind: type[Record], fields: dict[str, Any]) -> Record:
    """A record of ``kind`` holding ``fields`` (all of its fields, by name), made without its
    ``__init__``: a frozen dataclass's sets each field through ``object.__setattr__``,
    which doubled the cost of the 425,000 records of a 100,000-instance report. The
    result is the record ``kind(**fields)`` makes (equal, and equally frozen)."""
    record = _new(kind)
    _set(record, "__dict__", fields)
    return record


def timestamp(epoch: float | None) -> datetime | None:
    return None if epoch is None else moment(epoch)


def span(start: float | None, end: float | None) -> float | None:
    return None if start is None or end is None else round(max(0.0, end - start), 3)


@dataclass(frozen=True)
class StepRecord:
    __pydantic_config__ = RECORD_CONFIG

    index: int
    """Position of the step in the instance's workflow, from 0."""
    name: str
    """The provider's step name, e.g. ``create-job`` or ``wait-migration``."""
    status: str
    """``succeeded`` or ``failed`` (a step in progress is the instance's ``step``)."""
    started: datetime | None
    ended: datetime | None
    duration_seconds: float | None


@dataclass(frozen=True)
class ErrorRecord:
    __pydantic_config__ = RECORD_CONFIG

    kind: str
    """throttle, transient, permanent, notfound, unknownoutcome, timeout, skipped, internal, failed..."""
    code: str
    """The cloud's own error code (or batchmig's, e.g. ``StepTimeout``, ``Skipped``)."""
    message: str
    request_id: str | None = None
    """The cloud's request id: quote it to the cloud's support."""
    step: str | None = None
    """The step the error happened in."""
    details: dict[str, Any] = field(default_factory=dict)
    """Anything else the engine recorded about the error."""


@dataclass(frozen=True)
class InstanceReport:
    __pydantic_config__ = RECORD_CONFIG

    id: str
    provider: str
    wave: str
    status: str
    """succeeded, failed, skipped, awaiting_cutover, interrupted, running, pending (and
    any status a later batchmig adds, e.g. needs_attention)."""
    step: str | None
    """The step the instance is at (or stopped at); None once it has finished."""
    step_index: int
    updated: datetime | None
    """When the journal last recorded a change of this instance."""
    remote_ids: dict[str, Any] = field(default_factory=dict)
    """The cloud's ids for what batchmig created or started (job ids, migration ids)."""
    steps: tuple[StepRecord, ...] = ()
    error: ErrorRecord | None = None
    tags: dict[str, str] = field(default_factory=dict)
    """The plan's tags of the instance, as journaled when the run started (empty when a
    journal of an older batchmig does not keep them and its plan could not be read)."""
    cutover: Literal["auto", "manual"] | None = None
    """The instance's cutover policy, as journaled (None when neither the journal nor the plan tells)."""


@dataclass(frozen=True)
class CallSummary:
    __pydantic_config__ = RECORD_CONFIG

    calls: int = 0
    """API calls put on the wire (reads, polls and mutating calls)."""
    calls_by_action: dict[str, int] = field(default_factory=dict)
    retries: int = 0
    throttled: int = 0
    """Calls the cloud refused for its rate."""
    unknown_outcomes: int = 0
    """Calls whose answer was lost (each one reconciled before anything was sent again)."""
    reconciled: int = 0
    """Lost answers resolved by looking the resource up."""
    errors_by_code: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class InvocationRecord:
    __pydantic_config__ = RECORD_CONFIG

    command: str
    """``run``, ``resume``, ``retry`` or ``cutover`` (which resumed the run)."""
    started: datetime
    ended: datetime | None
    """None while it runs, or if the process was killed."""
    duration_seconds: float | None
    host: str | None = None
    pid: int | None = None
    version: str | None = None
    """The batchmig version that ran it."""
    calls: CallSummary = field(default_factory=CallSummary)
    exit_code: int | None = None
    stop_reason: str | None = None
    user: str | None = None
    """The operating-system user who started it."""


@dataclass(frozen=True)
class OperatorRequest:
    __pydantic_config__ = RECORD_CONFIG

    id: int
    kind: Literal["cutover", "retry"]
    at: datetime
    user: str
    """The operating-system user who asked."""
    host: str
    """The machine they asked from."""
    selection: str
    """How the instances were chosen, as given (``--wave main``, ``--status skipped``)."""
    instances: int
    """How many instances the request applied to."""


@dataclass(frozen=True)
class CutoverRecord:
    __pydantic_config__ = RECORD_CONFIG

    instance: str
    released: datetime
    user: str
    host: str
    request: int
    """The ``OperatorRequest`` that released it."""
    before_gate: bool
    """Released before the instance reached its cutover gate: a pre-approval the runner
    honours when the instance gets there (it does not stop)."""


@dataclass(frozen=True)
class WaveSummary:
    __pydantic_config__ = RECORD_CONFIG

    name: str
    instances: int
    counts: dict[str, int]


@dataclass(frozen=True)
class TrafficSeries:
    __pydantic_config__ = RECORD_CONFIG

    start: datetime
    """Start of the first bucket."""
    bucket_seconds: float
    """Width of each bucket: 1 s, doubled as often as needed to keep a long run to a few hundred buckets."""
    calls: tuple[int, ...]
    """Calls sent per bucket (divide by ``bucket_seconds`` for calls per second)."""
    throttled: tuple[int, ...]
    retries: tuple[int, ...]


@dataclass(frozen=True)
class LimiterKeyRecord:
    __pydantic_config__ = RECORD_CONFIG

    cap: float
    """Requests per second the limiter allows for this key."""
    admitted: int
    waited: int
    wait_seconds: float
    throttled: int
    max_in_window: int
    """The most calls admitted within any one-second window (never above ``cap``)."""
    rate: float | None = None
    """The key's rate when the figures were taken: below ``cap`` while it recovers from a throttle."""
    retries: int = 0
    """Calls of this key sent again after a throttle, a transient error or a lost answer."""
    series: TrafficSeries | None = None
    """The key's calls, throttles and retries over time."""


@dataclass(frozen=True)
class NotificationRecord:
    __pydantic_config__ = RECORD_CONFIG

    name: str
    """The webhook's name in the plan's ``notify:`` section."""
    events: int
    """Events this webhook subscribed to that the run raised."""
    delivered: int
    failed: int
    """Events given up after every attempt failed."""
    dropped: int
    """Events never sent: the queue was full, or the run ended while the endpoint was failing."""
    attempts: int
    """HTTP requests made, retries included."""
    last_error: str | None = None


@dataclass(frozen=True)
class RunReport:
    __pydantic_config__ = RECORD_CONFIG

    schema_version: int
    """Raised when a field is removed or changes meaning; new fields do not raise it."""
    run: str
    plan: str
    """Path of the plan file the run was started from."""
    plan_sha256: str
    sandbox: bool
    """A rehearsal: every call went to batchmig's emulators, none to a cloud."""
    state: RunState
    started: datetime | None
    """When the run was created."""
    ended: datetime | None
    """When its last invocation ended (None while one runs)."""
    duration_seconds: float
    """Time runners spent on the run: every invocation's duration, summed."""
    elapsed_seconds: float | None
    """From the run's creation to the end of its last invocation, pauses included."""
    counts: dict[str, int]
    """Instances per status."""
    calls: CallSummary
    """Every invocation's calls, summed: the whole run."""
    invocations: tuple[InvocationRecord, ...] = ()
    """Each start, resume and retry of the run, in order."""
    waves: tuple[WaveSummary, ...] = ()
    requests: tuple[OperatorRequest, ...] = ()
    """Who asked for which cutovers and retries, when and from where."""
    cutovers: tuple[CutoverRecord, ...] = ()
    rate_limits: dict[str, LimiterKeyRecord] = field(default_factory=dict)
    """Per limiter key (provider/account/region/action), as the latest invocation saw it."""
    polls: dict[str, int] = field(default_factory=dict)
    """Polls per poller in the latest invocation (each poll may cover many instances)."""
    notifications: tuple[NotificationRecord, ...] = ()
    """Webhook deliveries of the latest invocation, per webhook (failures are counted, never fatal)."""
    start_error: str | None = None
    """Why the first start failed (state ``not_started``)."""
    instances: tuple[InstanceReport, ...] = ()

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON document (``report.json``, ``status --format json``) as Python data,
        every string in it masked by the redactor (a cloud's message may quote secrets)."""
        data: dict[str, Any] = _adapter().dump_python(self, mode="json")  # JSON-native values only
        return REDACTOR.redact_tree(data) if REDACTOR.holds_secrets else data

    @classmethod
    def load(cls, data: dict[str, Any]) -> RunReport:
        """A report from its JSON document (e.g. a ``report.json`` read back)."""
        return _adapter().validate_python(data)

    @property
    def exit_code(self) -> int | None:
        """The exit code of the latest invocation, if it ended."""
        return self.invocations[-1].exit_code if self.invocations else None


@cache
def _adapter() -> TypeAdapter[RunReport]:
    return TypeAdapter(RunReport)
