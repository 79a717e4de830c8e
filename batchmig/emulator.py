"""The public API for sandbox emulators.

An emulator speaks one cloud API on loopback so plans can be rehearsed and tested
without a cloud. The sandbox host (``batchmig sandbox serve`` or ``run --sandbox``)
gives every emulator its own port and wraps it in the shared machinery, so that an
emulator only has to do what is specific to its cloud:

``authenticate``
    verify the request's signature the way the cloud does and say which action,
    credential and region it is for (or reject it in the cloud's dialect);
``handle``
    answer the action from the emulated state (``SandboxContext.store``);
``error``
    render a throttle or internal error in the cloud's dialect.

The host does the rest for every emulator alike, in this order: authenticate →
audit log (JSONL, one line per request) → sliding-window throttle per (credential,
region, action) → fault injection (error codes, latency, dropped connections after
the server acted, truncated answers) → ``handle``. One fault needs the emulator's
help: when lists are made to lag (eventual consistency), ``RequestInfo.list_lag`` is
set and an emulator's list actions leave out what ``RequestInfo.listed`` says is
not listed yet.

Timed transitions are computed lazily: store wall-clock times and compare them with
``ctx.cloud_seconds_since`` when asked, so state needs no background task and a
killed runner finds jobs finished meanwhile.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol

if TYPE_CHECKING:  # a plugin registers its emulator without loading aiohttp's server (only the sandbox runs it)
    from aiohttp import web

__all__ = [
    "Emulator",
    "EmulatorReject",
    "EmulatorReply",
    "EmulatorSpec",
    "RequestInfo",
    "SandboxContext",
    "StateStore",
]


@dataclass(frozen=True)
class RequestInfo:
    """Who asks for what: the result of a successful ``authenticate``.

    ``credential`` is the access key id (never the secret); ``mutating`` says whether
    the action changes state when it succeeds. ``list_lag`` is set by the host, not
    by ``authenticate``: an injected eventual-consistency fault (see ``listed``).
    """

    action: str
    credential: str
    region: str
    mutating: bool
    params: Mapping[str, Any] = field(default_factory=dict)
    language: str = ""
    """The language the caller asked error messages in, as the cloud spells it
    (``en-US``, ``zh-cn``...; empty: the cloud's default). ``authenticate`` reads it
    from the request so that ``handle`` and ``error`` can honour it."""
    list_lag: float = 0.0
    """Seconds during which a new resource stays out of list answers (0: none)."""

    def listed(self, created_at: float, now: float) -> bool:
        """Whether a list answer shows a resource created at ``created_at`` (both by
        ``ctx.now()``): list and search actions leave the others out, totals included,
        as a cloud whose lists lag behind its writes does. Per-id describes do not lag."""
        return now - created_at >= self.list_lag


@dataclass(frozen=True)
class EmulatorReply:
    """An answer, with what it did: ``resource`` names the created/started thing and
    ``changed`` says whether state changed, so the audit log can prove that nothing
    was created or started twice."""

    response: web.Response
    resource: str | None = None
    changed: bool = False


class EmulatorReject(Exception):
    """Raised by ``authenticate`` (or ``handle``) to answer at once with ``response``."""

    def __init__(self, response: web.Response, code: str = "") -> None:
        super().__init__(code)
        self.response = response
        self.code = code


class StateStore(Protocol):
    """Durable key-value state of one emulator (JSON values, grouped by kind)."""

    def get(self, kind: str, key: str) -> dict[str, Any] | None: ...

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None: ...

    def delete(self, kind: str, key: str) -> None: ...

    def values(self, kind: str) -> Iterator[dict[str, Any]]: ...

    def where(self, kind: str, field: str, value: Hashable) -> Iterator[dict[str, Any]]:
        """The records of ``kind`` whose ``field`` equals ``value``, in ``values``' order,
        found through an index instead of a scan (the field's values must be hashable).
        The index follows ``put`` and ``delete``: change an indexed field by putting a new
        record, not by changing the stored one in place."""
        ...

    def next_id(self, kind: str) -> int:
        """A counter that survives restarts (for numeric ids such as FlowId)."""
        ...


class SandboxContext(Protocol):
    """What the host gives an emulator when it builds it."""

    store: StateStore
    time_scale: float
    """Cloud seconds per real second (e.g. 60: a 10-minute job takes 10 s)."""
    credentials: Mapping[str, str]
    """Access key id -> secret the sandbox accepts."""
    options: Mapping[str, Any]
    """Emulator options from the sandbox configuration (e.g. job durations)."""

    def now(self) -> float:
        """Wall-clock time (seconds since the epoch)."""
        ...

    def cloud_seconds_since(self, wall_time: float) -> float:
        """Emulated seconds elapsed since ``wall_time``, after time scaling."""
        ...

    def random(self) -> float:
        """A float in [0, 1) from the sandbox's seeded generator."""
        ...


class Emulator(ABC):
    """One emulated cloud API. See the module docstring for the division of work."""

    rate_limits: Mapping[str, float] = {}
    """Documented requests per second per action (others: ``default_rate``)."""
    default_rate: float = 20.0

    @abstractmethod
    async def authenticate(self, request: web.Request, body: bytes) -> RequestInfo:
        """Verify the signature; raise ``EmulatorReject`` with the cloud's answer."""

    @abstractmethod
    async def handle(self, request: web.Request, info: RequestInfo, body: bytes) -> EmulatorReply:
        """Answer an authenticated, admitted request."""

    @abstractmethod
    def error(
        self,
        info: RequestInfo,
        kind: Literal["throttle", "internal", "unavailable"],
        code: str | None = None,
    ) -> web.Response:
        """Render an injected or throttle error in the cloud's dialect.

        ``code``, when given, is the exact error code the fault configuration asked
        for; otherwise use the cloud's usual code for ``kind``.
        """


@dataclass(frozen=True)
class EmulatorSpec:
    """What a plugin registers for the sandbox.

    ``demo_credentials`` maps the provider's credential fields to values the
    emulator accepts (e.g. ``{"secret_id": "AKIDsandbox", "secret_key": "..."}``);
    ``run --sandbox`` uses them. They are documented and grant nothing real.
    """

    name: str
    factory: Callable[[SandboxContext], Emulator]
    demo_credentials: Mapping[str, str]
    description: str = ""
