"""The public API for provider plugins.

A provider plugin teaches batchmig one cloud API. It *describes* work; the core does
it. The provider says which steps an instance needs (``steps``), which HTTP request a
call becomes (``Connection.prepare``, which signs it), what an answer means
(``Connection.parse``, which raises the right ``ProviderError``), how to poll
asynchronous work (``Poller``) and how to find out whether a mutating call whose
answer was lost took effect (``CallStep.reconcile``). The core sends every request
through one pipeline — rate limiter, retry policy, journal, HTTP — so a provider never
sleeps, retries, throttles or opens sockets by itself.

The life of one instance::

    steps = provider.steps(instance)          # ordered CallStep / WaitStep records
    for step in steps:
        CallStep:  call = step.build(outputs)  -> pipeline -> Connection.parse -> Answer
                   outputs |= step.read(answer)     (journaled: remote ids only)
        WaitStep:  the engine's poller batches the instance with others and calls
                   step.poller.poll(caller, [WaitItem(instance, outputs, step.context)...])
                   until succeeded / failed

``outputs`` is the instance's journaled memory: a flat mapping of the remote ids
earlier steps read from their answers. On resume it is restored from the journal, so a
step must take everything it needs from ``instance`` (the plan) and ``outputs`` (the
cloud); plan settings never need to ride in ``outputs``, since pollers get the instance.

Plugins may import from ``batchmig``, ``batchmig.plugin``, ``batchmig.emulator``,
``batchmig.errors`` and ``batchmig.testing`` only.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Protocol
from urllib.parse import quote

import pluggy
from pydantic import BaseModel

from batchmig.errors import (
    NotFoundError,
    OutcomeUnsureError,
    PermanentError,
    PlanProblem,
    ProviderError,
    ThrottleError,
    TransientError,
    UnknownOutcomeError,
)
from batchmig.lookups import Listing, Seen, find_created, poll_listed
from batchmig.plan.model import Plan, PlannedInstance

__all__ = [
    "API_VERSION",
    "DEFAULT_RATE",
    "Answer",
    "Call",
    "CallStep",
    "Caller",
    "Connection",
    "Credentials",
    "EmulatorRegistry",
    "HttpFetch",
    "HttpRequest",
    "HttpResponse",
    "Instance",
    "Listing",
    "NotFoundError",
    "OutcomeUnsureError",
    "Outputs",
    "PermanentError",
    "Plan",
    "PlanProblem",
    "PlannedInstance",
    "Poller",
    "Provider",
    "ProviderConfig",
    "ProviderError",
    "ProviderRegistry",
    "ProviderSpec",
    "Seen",
    "Step",
    "ThrottleError",
    "TransientError",
    "UnknownOutcomeError",
    "WaitItem",
    "WaitStatus",
    "WaitStep",
    "find_created",
    "hmac_sha256",
    "hookimpl",
    "percent_encode",
    "poll_listed",
    "register_secret",
    "register_secret_encoding",
]

if TYPE_CHECKING:
    from batchmig.emulator import EmulatorSpec

hookimpl = pluggy.HookimplMarker("batchmig")
"""Decorator for a plugin's hook implementations (see ``batchmig.hookspecs``)."""

API_VERSION = 1
"""The version of this plugin API (hooks, records, protocols), raised on every change
that breaks a plugin. A plugin module declares the versions it was written for::

    BATCHMIG_PLUGIN_API = (1,)

and a batchmig that speaks none of them refuses to load it, naming its distribution.
"""

DEFAULT_RATE = 20.0
"""Requests per second per action when neither the provider nor the plan says more."""

Outputs = Mapping[str, Any]
"""Remote ids that earlier steps read from their answers (journaled)."""


# --------------------------------------------------------------------------- calls


@dataclass(frozen=True)
class Call:
    """One API request as the provider describes it, before signing.

    ``mutating`` marks calls that change the cloud (create, start, complete...). The
    core journals an intent before sending one, and dry-run never sends one.
    ``resource`` names what the call acts on (a deterministic name or a remote id)
    for logs, the report and the sandbox's duplicate detection. ``client_token`` is
    the idempotency token the call carries in its parameters, if the API takes one
    (``Instance.client_token``): the conformance suite checks that it is in the
    signed request and the same on every attempt and after a resume.

    ``params`` is the provider's own description of the request: a flat mapping for
    RPC-style APIs, or ``{"path": ..., "query": ..., "body": ...}`` for REST-shaped
    ones — ``Connection.prepare`` is the only reader, and dry-run prints it as given.
    """

    action: str
    params: Mapping[str, Any]
    mutating: bool = False
    resource: str | None = None
    client_token: str | None = None


@dataclass(frozen=True)
class HttpRequest:
    """A signed request, ready for the wire. ``url`` is absolute."""

    method: str
    url: str
    headers: Mapping[str, str]
    body: bytes = b""


@dataclass(frozen=True)
class HttpResponse:
    """A complete answer from the server. Header names are lower case."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True)
class Answer:
    """A successful answer, as ``Connection.parse`` reads it.

    ``payload`` is the decoded body, what steps and pollers read. ``request_id`` is
    the cloud's id of the request — from the body (``RequestId``) or a header
    (``x-request-id``, ``x-amzn-requestid``): the journal and the report keep it for
    every mutating call. ``headers`` are the response headers the provider wants kept
    (lower-case names), e.g. the ``location`` a REST create answers with.
    """

    payload: Mapping[str, Any]
    request_id: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


HttpFetch = Callable[[HttpRequest], Awaitable[HttpResponse]]
"""Raw HTTP for a connection's own housekeeping (e.g. fetching an IAM token).

It bypasses the rate limiter and journal; use it only for authentication requests,
never for API calls. Transport failures raise ``TransientError``.
"""


class Caller(Protocol):
    """Makes read-only calls through the pipeline (limiter, retries, journal).

    Handed to ``CallStep.reconcile``, ``Poller.poll`` and ``Provider.preflight``.
    It refuses mutating calls: only the engine sends those, from ``CallStep``s.
    """

    async def read(self, call: Call) -> Answer:
        """Send ``call`` and return the parsed answer; raises ``ProviderError``."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait on the run's clock (e.g. before listing again what may lag)."""
        ...


# ------------------------------------------------------------------ configuration


class Credentials(Protocol):
    """Resolved credential fields of one provider configuration.

    Values are only available through ``secret``; the object's repr never shows
    them, and the core redacts every resolved value from all output.
    """

    def secret(self, name: str) -> str | None:
        """The value of credential field ``name`` or None when it is not set."""
        ...


def register_secret(value: str) -> None:
    """Have the core redact ``value`` from all output, like a resolved credential.

    For a secret a provider obtains itself rather than through ``Credentials``
    (e.g. a database password read from an environment variable the plan names):
    once registered, it is replaced by ``***`` in logs, the journal, the report and
    the CLI's messages — also when the cloud quotes it back raw, URL-encoded,
    JSON-escaped or base64-encoded (``batchmig.redaction`` lists every form).
    Values shorter than 4 characters are not redacted.
    """
    from batchmig.redaction import REDACTOR

    REDACTOR.add(value)


def register_secret_encoding(name: str, encode: Callable[[str], str]) -> None:
    """Also redact ``encode(secret)`` for every secret, for an encoding the provider applies.

    The core already masks the usual wire forms. A provider that puts a secret on
    the wire in a form of its own (e.g. a password base32-encoded, or wrapped in a
    vendor scheme before it goes into a body) registers that transformation once,
    under a stable ``name`` (registering the same name again is a no-op); the
    result, and its usual wire forms, are masked for all secrets, past and future.
    ``encode`` is called once at registration with a sample value and must return a
    ``str``; an exception then is raised to the caller.
    """
    from batchmig.redaction import REDACTOR

    REDACTOR.add_encoding(name, encode)


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch
_RESERVED = re.compile(r"[^A-Za-z0-9_.~-]").sub
_ESCAPED = {chr(code): f"%{code:02X}" for code in range(128)}


def percent_encode(text: str) -> str:
    """``text`` with every character but RFC 3986's unreserved ones (``A-Z a-z 0-9 - _ . ~``)
    as ``%XX`` of its UTF-8 bytes (a space is ``%20``, never ``+``): what most clouds'
    signatures canonicalise query strings and paths with. ``urllib.parse.quote(text,
    safe="~")`` writes the same, walking every byte in Python: a 50-character URL in a
    query took about as long as the rest of an Alibaba request's signature.
    """
    if _UNRESERVED(text):  # most names and values: nothing to escape (checked in C)
        return text
    if text.isascii():
        return _RESERVED(_escape, text)
    return quote(text, safe="~")


def _escape(match: re.Match[str]) -> str:
    return _ESCAPED[match[0]]


_BLOCK = 64  # SHA-256's block size, in bytes
_INNER_PAD = bytes(byte ^ 0x36 for byte in range(256))
_OUTER_PAD = bytes(byte ^ 0x5C for byte in range(256))


def hmac_sha256(key: bytes) -> Callable[[bytes], bytes]:
    """HMAC-SHA256 (RFC 2104) under ``key``: a function that signs one message, for a
    signer that signs every request with the same key (keep it as long as the key).

    The key's inner and outer SHA-256 states are made once and copied for each message.
    ``hmac.digest`` sets OpenSSL's HMAC up anew on every call and lets go of the GIL
    while it runs: in a busy runner a call took 8-12 µs of CPU (2 µs alone) and 25-100
    µs of wall time, the event loop waiting for another thread to hand the GIL back.
    """
    block = (hashlib.sha256(key).digest() if len(key) > _BLOCK else key).ljust(_BLOCK, b"\0")
    inner, outer = hashlib.sha256(block.translate(_INNER_PAD)), hashlib.sha256(block.translate(_OUTER_PAD))

    def sign(message: bytes) -> bytes:
        state = inner.copy()
        state.update(message)
        final = outer.copy()
        final.update(state.digest())
        return final.digest()

    return sign


@dataclass(frozen=True)
class ProviderConfig:
    """One entry of the plan's ``providers:`` section, resolved.

    ``endpoint`` is None for the cloud's public endpoint, otherwise a base URL (the
    sandbox's, or an operator's override). ``options`` is the provider's own
    ``options_model`` instance (or None).
    """

    name: str
    provider: str
    region: str
    endpoint: str | None
    credentials: Credentials
    account: str | None = None
    options: BaseModel | None = None


class Connection(ABC):
    """A provider configuration made ready to talk: credentials, region, endpoint.

    ``account`` labels the rate-limit key; it must never be a secret (use the
    plan's ``account`` or a short fingerprint of an access key id).
    """

    account: str
    region: str

    @abstractmethod
    async def prepare(self, call: Call) -> HttpRequest:
        """Turn ``call`` into a signed request. Called again for every attempt."""

    @abstractmethod
    def parse(self, call: Call, response: HttpResponse) -> Answer:
        """Return the ``Answer`` (payload, request id, kept headers), or raise the
        fitting ``ProviderError``.

        Classify by the cloud's error code: ``ThrottleError`` for rate refusals,
        ``TransientError`` for what a retry may cure, ``NotFoundError`` for a missing
        resource, ``PermanentError`` for the rest. A body that cannot be understood
        is a ``TransientError`` for a read and ``UnknownOutcomeError`` for a write.
        Keep the cloud's request id on every error and on the answer, wherever the
        cloud puts it (body or header).
        """


# -------------------------------------------------------------------- instances

_NOT_NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9]")


@dataclass(frozen=True)
class Instance:
    """One instance of the plan, as a provider sees it.

    ``settings`` is an instance of the provider's ``settings_model`` (plan defaults
    merged in). ``token`` is short, unique in the run and stable across resumes: use
    it (through ``resource_name``) to build the deterministic names that let a lost
    answer be reconciled by looking the resource up.
    """

    id: str
    provider: str
    connection: str
    settings: Any
    cutover: Literal["auto", "manual"] = "auto"
    token: str = ""

    def client_token(self, label: str) -> str:
        """A deterministic idempotency token (UUID-shaped) for the call ``label``.

        The same for every attempt and every resume of this run, different in every
        other run; pass it as the API's ``ClientToken`` and as ``Call.client_token``.
        """
        digest = hashlib.sha256(f"{self.id}/{self.token}/{label}".encode()).digest()
        return str(uuid.UUID(bytes=digest[:16]))

    def resource_name(self, label: str, *, max_length: int = 60, separator: str = "-") -> str:
        """A deterministic, run-unique name such as ``bm-db01-a1b2c3d4-full``.

        Only letters, digits and ``separator`` are kept from the instance id, and
        the name starts with a letter, so it passes most clouds' naming rules.
        """
        safe_id = _NOT_NAME_CHARACTERS.sub(separator.replace("\\", "\\\\"), self.id)
        token = self.token or hashlib.sha256(self.id.encode()).hexdigest()[:8]
        tail = f"{separator}{token}{separator}{label}"
        room = max(0, max_length - len("bm") - len(separator) - len(tail))
        return f"bm{separator}{safe_id[:room]}{tail}"[:max_length]


# ------------------------------------------------------------------------ steps


@dataclass(frozen=True)
class WaitStatus:
    """What one poll found out about one waited-on thing.

    ``unrecognised`` names a status value the provider does not know (e.g.
    ``"Status 77"``): the thing counts as still running, and the engine logs the value
    once per instance and names it if the step times out.
    """

    state: Literal["running", "succeeded", "failed"]
    message: str = ""
    code: str | None = None
    outputs: Outputs = field(default_factory=dict)
    request_id: str | None = None
    unrecognised: str | None = None

    @classmethod
    def running(cls, message: str = "", *, unrecognised: str | None = None) -> WaitStatus:
        return cls("running", message, unrecognised=unrecognised)

    @classmethod
    def succeeded(cls, outputs: Outputs | None = None, message: str = "") -> WaitStatus:
        return cls("succeeded", message, outputs=dict(outputs or {}))

    @classmethod
    def failed(cls, message: str, code: str | None = None, request_id: str | None = None) -> WaitStatus:
        return cls("failed", message, code=code, request_id=request_id)


@dataclass(frozen=True)
class WaitItem:
    """One thing an instance waits on, as a poller sees it.

    ``instance`` is the plan's instance (settings and all), ``outputs`` what earlier
    steps read from the cloud, ``context`` the ``WaitStep``'s own facts (e.g. which
    job of a chain, or what "done" means for this wait).
    """

    instance: Instance
    outputs: Outputs
    context: Mapping[str, Any] = field(default_factory=dict)


def _no_group(item: WaitItem) -> Hashable:
    return None


@dataclass(frozen=True)
class Poller:
    """How to ask about many waited-on things at once, within the rate budget.

    The engine collects every instance waiting on a poller with the same ``name`` on
    the same connection, and calls ``poll`` with up to ``max_batch`` of them that
    share a ``group`` (e.g. the same target instance id, when the describe call is
    per instance). ``poll`` returns one ``WaitStatus`` per given ``WaitItem``, in the
    same order; a thing missing from the answer should be reported ``running``
    (or ``failed``, if its absence is final). ``action`` is the describe action the
    poll spends, so the engine can pace polls against that action's rate.
    ``min_interval`` is the shortest time (seconds) between two polls of one thing.
    """

    name: str
    action: str
    poll: Callable[[Caller, Sequence[WaitItem]], Awaitable[Sequence[WaitStatus]]]
    max_batch: int = 1
    group: Callable[[WaitItem], Hashable] = _no_group
    min_interval: float = 2.0
    example: Callable[[WaitItem], Call] | None = None
    """The call one poll makes, for dry-run listings (built from placeholder outputs)."""


@dataclass(frozen=True)
class CallStep:
    """One API call of an instance's workflow.

    ``build`` makes the call from the outputs so far (in dry-run the outputs are
    placeholders such as ``<MigrationId>``). ``read`` picks the remote ids to remember
    from the ``Answer``. A mutating step needs one of two ways to survive a lost
    answer (or a crash between intent and outcome):

    ``reconcile``
        looks the resource up and returns the outputs ``read`` would have produced
        if the call took effect, or None if it surely did not (then the call is sent
        again). When what it sees cannot settle it (an empty list that may lag behind
        the create, an answer that names nothing), it raises ``OutcomeUnsureError``
        with what it saw: the instance then needs attention and nothing is re-sent.
    ``idempotent=True``
        the call may simply be sent again: it carries a client token
        (``Call.client_token``) or is idempotent by nature (a PUT of a whole
        resource). Then ``read`` must cope with the answer to a repeat.

    ``cutover`` marks the step that switches production over; it obeys the plan's
    cutover policy.
    """

    name: str
    build: Callable[[Outputs], Call]
    read: Callable[[Answer], Outputs] = lambda answer: {}
    reconcile: Callable[[Caller, Outputs], Awaitable[Outputs | None]] | None = None
    """Returned outputs may hold None for a value no lookup can recover (e.g. a flow id);
    later steps must then cope without it."""
    cutover: bool = False
    idempotent: bool = False


@dataclass(frozen=True)
class WaitStep:
    """Wait until asynchronous work finishes, by polling with ``poller``.

    Succeeded statuses' ``outputs`` are merged into the instance's outputs; a failed
    status fails the instance with its message. The plan's step timeout applies.
    ``context`` is handed to the poller in every ``WaitItem`` of this wait: facts
    from the plan the poll needs (which job of a chain, which phase), so they never
    have to be copied into the journaled outputs.
    """

    name: str
    poller: Poller
    context: Mapping[str, Any] = field(default_factory=dict)


Step = CallStep | WaitStep


# --------------------------------------------------------------------- provider


class Provider(ABC):
    """A cloud API that batchmig can drive. Subclass it and register a ``ProviderSpec``.

    Class attributes:

    ``settings_model``
        pydantic model of an instance's ``settings:`` (its JSON Schema goes into
        ``batchmig schema``; its validation errors become located plan errors).
    ``options_model``
        pydantic model of extra keys in the provider's plan configuration, or None.
    ``actions``
        every API action the provider may call — its steps, pollers, reconciles and
        ``preflight`` — so that a plan's ``rate_limits`` for an action it never calls
        (a misspelt one would silently cap nothing) is refused with a did-you-mean.
        Left empty, a plan may only cap ``'*'`` for this provider.
    ``default_rate_limits``
        requests per second per action, where it differs from ``DEFAULT_RATE``.
    ``credential_env``
        credential field -> environment variable used when the plan names none.
    ``required_credentials``
        fields that must resolve to a value before a live run.
    ``step_estimates``
        optional: step name (or glob, ``wait-incremental-*``) -> typical seconds of
        the cloud's own work in that step (a restore, a migration job), for the dry
        run's makespan estimate; a plan's ``defaults.estimates`` overrides them.
        Steps not named count as a single API call.
    """

    settings_model: ClassVar[type[BaseModel]]
    options_model: ClassVar[type[BaseModel] | None] = None
    actions: ClassVar[frozenset[str]] = frozenset()
    default_rate_limits: ClassVar[Mapping[str, float]] = {}
    credential_env: ClassVar[Mapping[str, str]] = {}
    required_credentials: ClassVar[Sequence[str]] = ()
    step_estimates: ClassVar[Mapping[str, float]] = {}

    @abstractmethod
    def connect(self, config: ProviderConfig, fetch: HttpFetch) -> Connection:
        """Build the connection for one provider configuration (no I/O here)."""

    @abstractmethod
    def steps(self, instance: Instance) -> Sequence[Step]:
        """The ordered steps that migrate ``instance`` (pure; called for dry-run too)."""

    def required_credential_fields(self, options: BaseModel | None) -> Sequence[str]:
        """The credential fields a live run needs with these provider ``options``
        (e.g. AK/SK for signing, a password for token authentication)."""
        return self.required_credentials

    def check(self, instance: Instance) -> Sequence[tuple[str, str]]:
        """Rules across settings that the model cannot express, as (key path, message).

        Key paths are relative to the instance's ``settings`` (e.g. ``"files.0.url"``).
        """
        return ()

    def estimated_seconds(self, instance: Instance, step: str) -> float | None:
        """Typical seconds of the cloud's work in ``step`` of ``instance``, for the dry
        run's estimate; default: ``step_estimates`` (exact name, then globs), else None."""
        from batchmig.plan.model import step_value

        return step_value(self.step_estimates, step)

    def required_secrets(self, instance: Instance) -> Sequence[str]:
        """Secrets ``instance`` needs besides the signing credentials, as references:
        ``env:NAME`` (an environment variable) or ``credential:FIELD`` (a field of the
        provider's ``credentials:``), e.g. a database password a job carries.
        ``batchmig validate --env`` and ``run --check`` resolve them all before a run,
        and name each one that is missing. Default: none."""
        return ()

    async def preflight(self, caller: Caller, instance: Instance) -> Sequence[str]:
        """Read-only checks for ``batchmig run --check``; return problems found."""
        return ()


@dataclass(frozen=True)
class ProviderSpec:
    """What a plugin registers: a provider name, its implementation, its emulator.

    ``emulator`` names the sandbox emulator (registered with ``EmulatorSpec``) that
    speaks this provider's API; ``batchmig run --sandbox`` points the provider there.
    """

    name: str
    provider: Provider
    description: str = ""
    emulator: str | None = None


class ProviderRegistry(Protocol):
    """What ``batchmig_register_providers`` receives."""

    def add(self, spec: ProviderSpec) -> None:
        """Register a provider; a name already registered is a ``PluginError``."""
        ...


class EmulatorRegistry(Protocol):
    """What ``batchmig_register_emulators`` receives."""

    def add(self, spec: EmulatorSpec) -> None:
        """Register a sandbox emulator; a name already registered is a ``PluginError``."""
        ...
