"""One emulator on loopback, hosted by the sandbox's own host, for a plugin's tests.

``EmulatorHost`` runs a single emulator inside the real sandbox host (so the order
authenticate → audit → throttle → faults → handle, the audit log and fault injection
are exactly those of ``batchmig sandbox serve``) but builds the emulator with a
context the test controls — usually a ``FakeSandboxContext`` whose clock the test
moves. Faults are injected per call (``inject``); throttling is off unless asked for,
since a test that drives steps back to back is not a rate-limited client::

    async with EmulatorHost(AcmeEmulator, FakeSandboxContext(time_scale=60)) as host:
        host.inject("drop", action="CreateJob")        # the next create acts, then is lost
        ... host.url ...
        assert len(host.effects("CreateJob")) == 1
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Generic, TypeVar

from batchmig.emulator import Emulator, EmulatorSpec, SandboxContext
from batchmig.sandbox.config import SandboxConfig
from batchmig.sandbox.host import Sandbox
from batchmig.sandbox.machinery import FaultKind, FaultRule

UNTHROTTLED = 1e9
Context = TypeVar("Context", bound=SandboxContext)


class EmulatorHost(Generic[Context]):
    """``async with EmulatorHost(factory, context) as host``: ``host.url``, ``host.audit``."""

    def __init__(
        self,
        factory: Callable[[SandboxContext], Emulator],
        context: Context,
        *,
        name: str = "emulator",
        rate_limits: Mapping[str, float] | None = None,
        seed: int = 0,
    ) -> None:
        """``rate_limits`` (action or ``*`` → requests per second) turns the host's
        sliding-window throttle on; by default it is off."""
        self.name = name
        self.context = context
        self.emulator: Emulator | None = None

        def build(_: SandboxContext) -> Emulator:
            self.emulator = factory(context)
            return self.emulator

        limits = dict(rate_limits) if rate_limits is not None else {"*": UNTHROTTLED}
        config = SandboxConfig(seed=seed, rate_limits={name: limits})
        self._sandbox = Sandbox({name: EmulatorSpec(name, build, {})}, None, config)

    async def __aenter__(self) -> EmulatorHost[Context]:
        await self._sandbox.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._sandbox.__aexit__(*exc)

    @property
    def url(self) -> str:
        """The emulator's base URL, ``http://127.0.0.1:PORT``."""
        return self._sandbox.endpoints[self.name]

    def inject(
        self, kind: FaultKind, *, action: str = "*", count: int | None = 1, code: str | None = None, **options: Any
    ) -> None:
        """Fault the next ``count`` matching calls (None: every one): ``drop`` (act, then
        lose the answer), ``error`` (an internal error in dialect, or ``code``),
        ``throttle``, ``latency``/``hang`` (``seconds=``) — as in a sandbox config."""
        self._sandbox.faults.rules.append(FaultRule(kind=kind, action=action, count=count, code=code, **options))

    @property
    def audit(self) -> list[dict[str, Any]]:
        """Every request the host saw, as the sandbox's audit log records it."""
        return list(self._sandbox.audit.entries or [])

    def calls(self, action: str) -> list[dict[str, Any]]:
        """The audited requests for ``action`` (rejected ones included)."""
        return [entry for entry in self.audit if entry.get("action") == action]

    def effects(self, action: str) -> list[dict[str, Any]]:
        """The ``action`` requests that changed the emulated cloud's state."""
        return [entry for entry in self.calls(action) if entry.get("changed")]

    def resources(self, action: str) -> list[str]:
        """The resources ``action`` changed, in order (a repeat is a duplicate effect)."""
        return [str(entry.get("resource")) for entry in self.effects(action)]
