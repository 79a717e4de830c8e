"""The one error tree of batchmig.

Every failure the CLI can meet is one of these, so it can print one line, a hint and
exit with a documented code instead of a traceback::

    BatchmigError
    ├── UsageError            bad command line or run directory     -> exit 2
    ├── PlanError             invalid plan (all problems, located)  -> exit 2
    ├── PluginError           a plugin failed to load or collides   -> exit 2
    ├── JournalError          the journal cannot be written now     -> exit 3 (resume once fixed)
    ├── JournalUnusableError  the journal is damaged, or too new    -> exit 5
    └── ProviderError         an answer (or non-answer) from a cloud
        ├── ThrottleError     the cloud said "too many requests": slow down, retry
        ├── TransientError    retry with backoff (5xx, internal error, transport)
        │   └── NotSentError  no connection: the request never left
        ├── PermanentError    fail the instance with the cloud's code and message
        ├── UnknownOutcomeError  a mutating call may or may not have taken effect
        └── OutcomeUnsureError   ...and looking did not settle it: needs attention

Provider plugins raise the ``ProviderError`` subclasses from ``Connection.parse``; the
core maps transport failures (refused, reset, timeout) itself, at one boundary.

When an instance fails, its error becomes a ``Failure``: a typed record (kind, code,
message, request id, step) that the engine journals and the report renders, so the
cloud's code and request id reach the operator unchanged.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import IntEnum
from typing import Any

from batchmig.redaction import REDACTOR

__all__ = [
    "BatchmigError",
    "ExitCode",
    "Failure",
    "JournalError",
    "NotFoundError",
    "OutcomeUnsureError",
    "PermanentError",
    "PlanError",
    "PlanProblem",
    "PluginError",
    "ProviderError",
    "ThrottleError",
    "TransientError",
    "UnknownOutcomeError",
    "UsageError",
]


class ExitCode(IntEnum):
    """The documented exit codes of the ``batchmig`` command (``batchmig --help``)."""

    OK = 0
    """Every instance succeeded (or: the plan is valid)."""
    FAILED = 1
    """Some instances failed or were skipped."""
    USAGE = 2
    """Invalid plan, command line or plugin; nothing was called."""
    INTERRUPTED = 3
    """Stopped before the end; ``batchmig resume RUN`` continues without repeating a call."""
    AWAITING_CUTOVER = 4
    """Instances wait for a manual cutover; ``batchmig cutover RUN --select ...`` releases them."""
    JOURNAL_UNUSABLE = 5
    """The run's journal is damaged or unusable (``JournalUnusableError``): not resumable as it is."""
    NEEDS_ATTENTION = 6
    """Instances need attention: batchmig cannot tell safely what the cloud did (look, then resume)."""


_UNSAFE = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def printable(text: str) -> str:
    """``text`` safe for a terminal: control, formatting (bidi) and line-separator
    characters become escapes such as ``\\x1b`` or ``\\u202e``.

    For text that comes from a plan or a cloud and goes into a message: an escape
    sequence in a key must not recolour, hide or rewrite the operator's terminal.
    """
    if text.isprintable():
        return text
    return "".join(
        ch if ch == " " or unicodedata.category(ch) not in _UNSAFE else ascii(ch)[1:-1] for ch in text
    )


class BatchmigError(Exception):
    """Base of every error batchmig raises on purpose."""

    hint: str = ""


class UsageError(BatchmigError):
    """The command line or a referenced file or run directory is wrong."""

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


@dataclass(frozen=True)
class PlanProblem:
    """One located problem in a plan: ``file:line:column key.path: message``."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __post_init__(self) -> None:
        # Keys, values and file names come from the plan: keep them terminal-safe everywhere.
        for name in ("file", "path", "message"):
            object.__setattr__(self, name, printable(getattr(self, name)))

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where} {self.path}: {self.message}" if self.path else f"{where}: {self.message}"

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "path": self.path,
            "message": self.message,
        }


class PlanError(BatchmigError):
    """A plan is invalid; carries every problem found, not only the first."""

    hint = "fix the problems above and run `batchmig validate` again"

    def __init__(self, problems: list[PlanProblem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.column, p.path))
        count = len(self.problems)
        super().__init__(f"the plan has {count} problem{'s' if count != 1 else ''}")


class PluginError(BatchmigError):
    """A plugin could not be loaded or registers something that clashes."""

    hint = "uninstall or fix the named distribution; `batchmig plugins` lists what is loaded"


class JournalError(BatchmigError):
    """The journal (run directory) cannot be created, read or written."""

    hint = "check the run directory's permissions and free space, then `batchmig resume`"


class JournalUnusableError(BatchmigError):
    """The run's journal is damaged or unusable: its record of the run cannot be trusted.

    Not resumable as it is: resuming from a partial record could repeat calls.
    """

    hint = (
        "restore journal.sqlite (with journal.sqlite-wal) from a backup if there is one; otherwise check "
        "the clouds for migrations this run started before you start it again as a new run"
    )

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        if hint:
            self.hint = hint


class ProviderError(BatchmigError):
    """An error answered by a cloud API (or the lack of an answer).

    ``code`` is the cloud's own error code, ``request_id`` its request id: both are
    kept in the journal and the report so an operator can quote them to support.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        request_id: str | None = None,
        http_status: int | None = None,
    ) -> None:
        # Masked here, where the cloud's words enter: a cloud that quotes the request it
        # refuses puts credentials into its message, and the error travels everywhere.
        code, message = REDACTOR(code), REDACTOR(message)
        super().__init__(f"{code}: {message}" + (f" (request id {request_id})" if request_id else ""))
        self.code = code
        self.message = message
        self.request_id = request_id
        self.http_status = http_status

    def as_dict(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "code": self.code,
            "message": self.message,
            "request_id": self.request_id,
        }

    @property
    def kind(self) -> str:
        return type(self).__name__.removesuffix("Error").lower()


class ThrottleError(ProviderError):
    """The cloud refused the call for its rate: the whole limiter key slows down."""

    def __init__(self, code: str, message: str, *, retry_after: float | None = None, **kw: object) -> None:
        super().__init__(code, message, **kw)  # type: ignore[arg-type]
        self.retry_after = retry_after


class TransientError(ProviderError):
    """A failure that a later attempt of the same call may not meet."""


class NotSentError(TransientError):
    """The request never reached the cloud (no connection could be made): it cannot
    have taken effect, so even a mutating call is simply sent again."""


class PermanentError(ProviderError):
    """A failure that repeating the call will not fix."""


class NotFoundError(PermanentError):
    """The resource named in the call does not exist (useful when reconciling)."""


class UnknownOutcomeError(ProviderError):
    """The request was sent but no usable answer came back.

    For a read this is simply retried. For a mutating call the core never re-sends
    blindly: the step's ``reconcile`` looks the resource up first.
    """


class OutcomeUnsureError(ProviderError):
    """Nobody can tell yet whether a mutating call took effect, so nothing may be re-sent.

    A provider's ``CallStep.reconcile`` raises it when what it saw can rule the call
    neither in nor out — a list that may lag behind the create it is asked about, an
    answer that names nothing — which is different from returning None ("looked, and
    it is not there"). The core raises it too when the reconcile's own calls fail for
    good, or when a job it started can no longer be watched. A reconcile that says so
    is asked again after a backoff (within the call's attempts and the run's retry
    budget: a list that lags usually catches up); still unsure then, the instance
    stops as ``needs_attention`` with the message as the evidence, and ``resume``
    looks again before it sends anything.
    """


@dataclass(frozen=True)
class Failure:
    """Why an instance (or a call) failed: the typed record from engine to report.

    ``kind`` is the error class in lower case (``permanent``, ``throttle``,
    ``unknownoutcome``, ``outcomeunsure``...) or ``failed`` (the cloud's job failed),
    ``timeout``, ``skipped`` or ``internal`` (a provider bug); ``code`` is the
    cloud's own code where there is one; ``request_id`` the cloud's request id.
    """

    kind: str
    code: str
    message: str
    request_id: str | None = None
    step: str | None = None

    @classmethod
    def from_error(cls, error: ProviderError, step: str | None = None) -> Failure:
        return cls(error.kind, error.code, error.message, error.request_id, step)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Failure:
        """Read a journaled failure back (unknown keys are ignored)."""
        return cls(
            kind=str(data.get("kind", "failed")),
            code=str(data.get("code", "")),
            message=str(data.get("message", "")),
            request_id=data.get("request_id") if isinstance(data.get("request_id"), str) else None,
            step=data.get("step") if isinstance(data.get("step"), str) else None,
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
