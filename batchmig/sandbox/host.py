"""Host the installed emulators on loopback, each on its own port.

Why one port per emulator: official SDKs pointed at a custom endpoint sign "/" on the
host they were given, so emulators cannot share a port by path, and headers alone
cannot tell every cloud apart. ``Sandbox.endpoints`` maps emulator names to their
base URLs; ``sandbox serve`` prints them and writes ``endpoints.json``.

The shared machinery (audit, throttle, faults) wraps every emulator in this order:
authenticate → audit → throttle → faults → handle. State, the audit log and the
endpoints live in the sandbox's directory, so the emulated cloud outlives a runner.
A small admin API on every port (``/_sandbox/config``) changes faults and caps at
run time, e.g. to lower a cap mid-run in a reliability campaign.
"""

from __future__ import annotations

import errno
import json
import random
import ssl
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import anyio
import structlog
from aiohttp import web

from batchmig.emulator import Emulator, EmulatorReject, EmulatorSpec, RequestInfo
from batchmig.errors import UsageError
from batchmig.private_files import make_private_dir, write_private_file
from batchmig.sandbox.config import SandboxConfig
from batchmig.sandbox.echo import echo_of, with_echo
from batchmig.sandbox.machinery import (
    AuditLog,
    FaultPlan,
    FaultRule,
    SlidingWindowThrottle,
    credential_fingerprint,
    received_at,
)
from batchmig.sandbox.store import StateFile

log = structlog.get_logger("batchmig.sandbox")

LOOPBACK = "127.0.0.1"
ADMIN_PREFIX = "/_sandbox/"
SHUTDOWN_GRACE = 1.0
"""Seconds a stopping sandbox gives requests still being served. Not aiohttp's 60:
a request held by a ``hang`` fault would otherwise keep every run and every
``sandbox serve`` that injected one alive for a minute after it was done."""


class _Context:
    """The ``SandboxContext`` an emulator receives."""

    def __init__(self, store: Any, config: SandboxConfig, name: str, rng: random.Random) -> None:
        self.store = store
        self.time_scale = config.time_scale
        self.credentials: Mapping[str, str] = config.credentials
        self.options: Mapping[str, Any] = config.options.get(name, {})
        self._rng = rng

    def now(self) -> float:
        return time.time()

    def cloud_seconds_since(self, wall_time: float) -> float:
        return max(0.0, (time.time() - wall_time) * self.time_scale)

    def random(self) -> float:
        return self._rng.random()


def _start_error(exc: OSError, base_port: int, count: int) -> UsageError:
    ports = f"{base_port}" if count <= 1 else f"{base_port}-{base_port + count - 1}"
    if exc.errno == errno.EADDRINUSE:
        return UsageError(f"a port the sandbox needs ({ports} on {LOOPBACK}) is in use by another program",
                          "stop it (another `batchmig sandbox serve`?), choose other ports with --port N, "
                          "or --port 0 for any free ones")
    if exc.errno == errno.EACCES:
        return UsageError(f"not allowed to listen on port {ports} of {LOOPBACK}",
                          "ports below 1024 need privileges: choose --port 8600 or --port 0")
    return UsageError(f"cannot start the sandbox: {exc.strerror or exc}",
                      "check the sandbox directory (--dir) and the ports (--port)")


class Sandbox:
    """``async with Sandbox(emulators, directory) as sandbox: sandbox.endpoints``."""

    def __init__(
        self,
        emulators: Mapping[str, EmulatorSpec],
        directory: Path | None,
        config: SandboxConfig | None = None,
        *,
        port: int = 0,
        tls: bool = False,
    ) -> None:
        """``tls`` serves https with a certificate from a throw-away CA whose
        certificate is written to ``ca.pem`` in the directory (for https-only clients
        such as tccli: point ``REQUESTS_CA_BUNDLE`` at it)."""
        self.specs = dict(emulators)
        self.tls = tls
        self.directory = directory
        self.config = config or SandboxConfig()
        self.base_port = port
        self.endpoints: dict[str, str] = {}
        self.throttle = SlidingWindowThrottle()
        self.faults = FaultPlan.from_config(self.config.faults, self.config.seed)
        self._runners: list[web.AppRunner] = []
        self._emulators: dict[str, Emulator] = {}
        self.requests = 0

    @property
    def audit_path(self) -> Path | None:
        return self.directory / "audit.jsonl" if self.directory else None

    async def __aenter__(self) -> Sandbox:
        """Start every emulator; a port in use or a directory that cannot be written is a
        ``UsageError`` naming it (with what to do), never an internal error."""
        try:
            if self.directory is not None:
                make_private_dir(self.directory)
            self._state = StateFile(self.directory / "state.sqlite" if self.directory else None)
            self.audit = AuditLog(self.audit_path)
        except OSError as exc:
            raise UsageError(f"cannot use the sandbox directory {self.directory}: {exc.strerror or exc}",
                             "choose a directory you can write to (--dir DIR)") from None
        try:
            await self._start()
        except BaseException as exc:
            await self.__aexit__()
            if isinstance(exc, OSError):
                raise _start_error(exc, self.base_port, len(self.specs)) from None
            raise
        log.info("sandbox.started", endpoints=self.endpoints)
        return self

    async def _start(self) -> None:
        rng = random.Random(self.config.seed)
        ssl_context = self._tls_context() if self.tls else None
        scheme = "https" if ssl_context else "http"
        for offset, (name, spec) in enumerate(sorted(self.specs.items())):
            emulator = spec.factory(_Context(self._state.store(name), self.config, name, rng))
            self._emulators[name] = emulator
            app = web.Application(client_max_size=8 * 1024 * 1024)
            app.router.add_route("*", ADMIN_PREFIX + "config", self._admin)
            app.router.add_route("*", "/{tail:.*}", self._handler(name, emulator))
            runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE)
            await runner.setup()
            self._runners.append(runner)
            site = web.TCPSite(runner, LOOPBACK, self.base_port + offset if self.base_port else 0,
                               ssl_context=ssl_context)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.endpoints[name] = f"{scheme}://{LOOPBACK}:{port}"
        if self.directory is not None:
            scale = json.dumps({"time_scale": self.config.time_scale})
            write_private_file(self.directory / "sandbox.json", scale + "\n")
            write_private_file(self.directory / "endpoints.json", json.dumps(self.endpoints, indent=2) + "\n")

    def _tls_context(self) -> ssl.SSLContext:
        try:
            import trustme
        except ImportError:
            raise UsageError("--tls needs the trustme package: pip install 'batchmig[tls]'") from None
        if self.directory is None:
            raise UsageError("--tls needs a sandbox directory for ca.pem")
        authority = trustme.CA()
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert(LOOPBACK, "localhost").configure_cert(context)
        write_private_file(self.directory / "ca.pem", authority.cert_pem.bytes().decode("ascii"))
        return context

    async def __aexit__(self, *exc: object) -> None:
        for runner in self._runners:
            await runner.cleanup()
        self.audit.close()
        self._state.close()

    def rate(self, emulator: str, action: str) -> float:
        override = self.config.rate_limits.get(emulator, {})
        spec_rates = self._emulators[emulator]
        return float(
            override.get(action, override.get("*", spec_rates.rate_limits.get(action, spec_rates.default_rate)))
        )

    def _handler(self, name: str, emulator: Emulator) -> Any:
        async def handle(request: web.Request) -> web.StreamResponse:
            arrived = time.monotonic()
            self.requests += 1
            body = await request.read()
            entry: dict[str, Any] = {"emulator": name, "arrived": arrived, "method": request.method,
                                     "path": request.path}
            try:
                info = await emulator.authenticate(request, body)
            except EmulatorReject as reject:
                entry.update(action=request.headers.get("X-TC-Action", request.path), outcome="rejected",
                             code=reject.code, status=reject.response.status)
                self.audit.write(entry)
                return reject.response
            entry.update(
                action=info.action, credential=credential_fingerprint(info.credential), region=info.region,
                mutating=info.mutating,
            )
            # The throttle counts the request when it reached this machine, not when this
            # loop got to it (see ``received_at``); nothing is awaited before the decision.
            socket_ = request.transport.get_extra_info("socket") if request.transport else None
            decided = received_at(socket_)
            cap = self.rate(name, info.action)
            entry.update(decided=decided, cap=cap)
            key = (name, info.credential, info.region, info.action)
            if not self.throttle.admit(key, cap, decided):
                entry.update(outcome="throttled", changed=False)
                self.audit.write(entry)
                return emulator.error(info, "throttle")
            waited = time.monotonic() - decided
            if waited > self.config.gateway_timeout:
                entry.update(outcome="expired", changed=False, waited=round(waited, 3), status=504)
                self.audit.write(entry)
                return web.Response(status=504, text="Gateway Timeout\n")
            return await self._serve(name, emulator, request, info, body, entry)

        return handle

    async def _serve(
        self, name: str, emulator: Emulator, request: web.Request, info: RequestInfo, body: bytes,
        entry: dict[str, Any],
    ) -> web.StreamResponse:
        faults = self.faults.pick(name, info.action, info.mutating)
        drop = False
        hold = 0.0
        for fault in faults:
            if fault.kind in ("latency", "hang") and fault.after_acting:
                hold += fault.seconds
            elif fault.kind in ("latency", "hang"):
                await anyio.sleep(fault.seconds)
            elif fault.kind == "drop":
                drop = True
            elif fault.kind in ("error", "throttle"):
                entry.update(outcome=f"fault:{fault.code or fault.kind}", changed=False)
                self.audit.write(entry)
                return emulator.error(info, "throttle" if fault.kind == "throttle" else "internal", fault.code)
            elif fault.kind == "echo":
                entry.update(outcome="fault:echo", changed=False)
                self.audit.write(entry)
                return with_echo(emulator.error(info, "internal", fault.code), echo_of(request, body))
        info = _lagging_lists(info, faults, entry)
        try:
            reply = await emulator.handle(request, info, body)
            response = reply.response
            entry.update(outcome="answered", changed=reply.changed, resource=reply.resource,
                         status=response.status)
        except EmulatorReject as reject:
            response = reject.response
            entry.update(outcome="refused", code=reject.code, changed=False, status=response.status)
        except ConnectionResetError:  # the client gave up while a streamed answer was being written
            entry.update(outcome="client_gone", changed=False)
            self.audit.write(entry)
            raise
        except Exception as exc:  # an emulator bug answers 500 and is logged, not hidden
            log.exception("sandbox.emulator_error", emulator=name, action=info.action)
            entry.update(outcome="crashed", changed=False, error=type(exc).__name__)
            response = emulator.error(info, "internal")
        response = _truncated(response, faults, entry)
        if drop:
            entry["outcome"] = "dropped"
        if hold:
            entry["held_seconds"] = hold
        self.audit.write(entry)  # before holding: the effect is already real
        if hold:
            await anyio.sleep(hold)
        if drop and request.transport is not None:
            request.transport.abort()
        return response

    async def _admin(self, request: web.Request) -> web.Response:
        """GET: the current faults and caps. POST: replace faults and/or rate_limits
        (a bad setting answers 400 with the reason and changes nothing)."""
        if request.method == "POST":
            try:
                data = await request.json()
                if not isinstance(data, dict) or not set(data) <= {"faults", "rate_limits"}:
                    raise ValueError("expected a JSON object with faults and/or rate_limits")
                changed = SandboxConfig.from_mapping({**asdict(self.config), **data})
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            if "faults" in data:
                self.faults = FaultPlan.from_config(changed.faults, self.config.seed)
            self.config.faults, self.config.rate_limits = changed.faults, changed.rate_limits
        return web.json_response(
            {"faults": self.config.faults, "rate_limits": self.config.rate_limits, "requests": self.requests,
             "request_id": str(uuid.uuid4())}
        )


def _lagging_lists(info: RequestInfo, faults: list[FaultRule], entry: dict[str, Any]) -> RequestInfo:
    """``info`` with the ``list_lag`` of the faults that hit it (the longest), if any."""
    lag = max((fault.seconds for fault in faults if fault.kind == "list_lag"), default=0.0)
    if not lag:
        return info
    entry["list_lag"] = lag
    return replace(info, list_lag=lag)


def _truncated(response: web.Response, faults: list[FaultRule], entry: dict[str, Any]) -> web.Response:
    """``response`` with its body cut short by a ``truncate`` fault, status and headers kept."""
    cut = next((fault for fault in faults if fault.kind == "truncate"), None)
    if cut is None or not isinstance(response.body, bytes):
        return response
    body = response.body[: cut.keep_bytes]
    headers = {k: v for k, v in response.headers.items() if k.lower() != "content-length"}
    entry["truncated_to"] = len(body)
    return web.Response(status=response.status, body=body, headers=headers)
