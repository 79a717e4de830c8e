"""Test kit: an in-memory sandbox context, a tiny sandbox host on loopback and a tiny
engine that drives a provider's steps through real HTTP.

(A uniquely named module rather than conftest.py, so that test modules can import
it even when other plugins' conftest modules are loaded in the same session.)

The host mirrors the order the core's sandbox documents (authenticate -> audit ->
faults -> handle) closely enough to test the emulator and the provider against each
other; the core's own ``batchmig.testing`` supersedes it once it exists.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
import anyio
from aiohttp import web
from batchmig.emulator import EmulatorReject, StateStore
from batchmig.errors import ProviderError, ThrottleError, TransientError, UnknownOutcomeError
from batchmig.plugin import (
    Call,
    CallStep,
    HttpRequest,
    HttpResponse,
    Instance,
    ProviderConfig,
    WaitStep,
)
from yarl import URL

from batchmig_huaweicloud.demo import DEMO_CREDENTIALS
from batchmig_huaweicloud.emulator import HuaweiDrsEmulator
from batchmig_huaweicloud.provider import DrsProvider
from batchmig_huaweicloud.settings import DrsOptions, DrsSettings

# ------------------------------------------------------------------ sandbox context


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, dict[str, Any]]] = {}
        self.counters: dict[str, int] = {}

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        value = self.data.get(kind, {}).get(key)
        return json.loads(json.dumps(value)) if value is not None else None

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self.data.setdefault(kind, {})[key] = json.loads(json.dumps(value))

    def delete(self, kind: str, key: str) -> None:
        self.data.get(kind, {}).pop(key, None)

    def values(self, kind: str) -> Iterator[dict[str, Any]]:
        return iter([json.loads(json.dumps(v)) for v in self.data.get(kind, {}).values()])

    def next_id(self, kind: str) -> int:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return self.counters[kind]


@dataclass
class FakeContext:
    time_scale: float = 1000.0
    options: Mapping[str, Any] = field(default_factory=dict)
    credentials: Mapping[str, str] = field(default_factory=dict)
    store: StateStore = field(default_factory=MemoryStore)
    offset: float = 0.0
    seed: int = 7

    def __post_init__(self) -> None:
        self._random = random.Random(self.seed)

    def now(self) -> float:
        return time.time() + self.offset

    def cloud_seconds_since(self, wall_time: float) -> float:
        return (self.now() - wall_time) * self.time_scale

    def random(self) -> float:
        return self._random.random()


# ---------------------------------------------------------------------- mini host


@dataclass
class AuditEntry:
    action: str
    credential: str
    status: int
    resource: str | None
    changed: bool


@dataclass
class Sandbox:
    url: str
    ctx: FakeContext
    emulator: HuaweiDrsEmulator
    audit: list[AuditEntry] = field(default_factory=list)
    faults: list[tuple[str, str]] = field(default_factory=list)
    """(action, kind) consumed once each: throttle, internal, unavailable, drop_after."""
    list_lag: float = 0.0
    """Seconds during which new jobs stay out of lists (the host's list_lag fault)."""

    def created(self) -> list[str]:
        return [e.resource or "" for e in self.audit if e.action == "CreateReplicationJob" and e.changed]

    def count(self, action: str) -> int:
        return sum(1 for e in self.audit if e.action == action)


def _host(box_ref: list[Sandbox]) -> web.Application:
    async def handler(request: web.Request) -> web.StreamResponse:
        box = box_ref[0]
        body = await request.read()
        try:
            info = await box.emulator.authenticate(request, body)
        except EmulatorReject as reject:
            box.audit.append(AuditEntry("auth", "", reject.response.status, None, False))
            return reject.response
        fault = next((f for f in box.faults if f[0] == info.action), None)
        if fault is not None:
            box.faults.remove(fault)
            if fault[1] != "drop_after":
                response = box.emulator.error(info, fault[1])  # type: ignore[arg-type]
                box.audit.append(AuditEntry(info.action, info.credential, response.status, None, False))
                return response
        try:
            reply = await box.emulator.handle(request, replace(info, list_lag=box.list_lag), body)
        except EmulatorReject as reject:
            box.audit.append(AuditEntry(info.action, info.credential, reject.response.status, None, False))
            return reject.response
        box.audit.append(
            AuditEntry(info.action, info.credential, reply.response.status, reply.resource, reply.changed)
        )
        if fault is not None:  # the server acted; the client never hears of it
            assert request.transport is not None
            request.transport.close()
        return reply.response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app


# ------------------------------------------------------------------------ client


class FakeCredentials:
    def __init__(self, values: Mapping[str, str | None]) -> None:
        self._values = dict(values)

    def secret(self, name: str) -> str | None:
        return self._values.get(name)

    def __repr__(self) -> str:
        return "FakeCredentials(***)"


async def http_send(session: aiohttp.ClientSession, request: HttpRequest) -> HttpResponse:
    async with session.request(
        request.method, URL(request.url, encoded=True), headers=dict(request.headers), data=request.body
    ) as answer:
        body = await answer.read()
        return HttpResponse(answer.status, {k.lower(): v for k, v in answer.headers.items()}, body)


@dataclass
class Client:
    """A connection plus the few pipeline duties tests need (send, retry reads)."""

    provider: DrsProvider
    connection: Any
    session: aiohttp.ClientSession
    calls: list[str] = field(default_factory=list)

    async def send(self, call: Call) -> Mapping[str, Any]:
        self.calls.append(call.action)
        request = await self.connection.prepare(call)
        try:
            response = await http_send(self.session, request)
        except aiohttp.ClientError as exc:
            if call.mutating:
                raise UnknownOutcomeError("Transport", str(exc)) from exc
            raise TransientError("Transport", str(exc)) from exc
        return self.connection.parse(call, response)  # type: ignore[no-any-return]

    async def read(self, call: Call) -> Mapping[str, Any]:
        assert not call.mutating
        for _attempt in range(5):
            try:
                return await self.send(call)
            except (ThrottleError, TransientError):
                continue
        return await self.send(call)


def make_config(
    url: str | None,
    credentials: Mapping[str, str | None] | None = None,
    options: DrsOptions | None = None,
    region: str = "cn-north-4",
) -> ProviderConfig:
    creds = dict(DEMO_CREDENTIALS) if credentials is None else credentials
    return ProviderConfig(
        name="hw",
        provider="huawei-drs",
        region=region,
        endpoint=url,
        credentials=FakeCredentials(creds),
        options=options or DrsOptions(),
    )


def make_instance(settings: Mapping[str, Any], *, id: str = "db01", token: str = "a1b2c3d4") -> Instance:
    return Instance(
        id=id,
        provider="huawei-drs",
        connection="hw",
        settings=DrsSettings.model_validate(settings),
        token=token,
    )


class InstanceFailedError(Exception):
    pass


async def start_sandbox(options: dict[str, Any]) -> tuple[Sandbox, web.AppRunner]:
    ctx = FakeContext(options=options)
    box_ref: list[Sandbox] = []
    runner = web.AppRunner(_host(box_ref))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    box_ref.append(Sandbox(f"http://127.0.0.1:{port}", ctx, HuaweiDrsEmulator(ctx)))
    return box_ref[0], runner


def make_client(url: str, session: aiohttp.ClientSession, **config: Any) -> Client:
    provider = DrsProvider()

    async def fetch(request: HttpRequest) -> HttpResponse:
        return await http_send(session, request)

    return Client(provider, provider.connect(make_config(url, **config), fetch), session)


async def run_instance(
    client: Client,
    instance: Instance,
    *,
    approve_cutover: bool = True,
    resume: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Build -> prepare -> send -> parse -> read for each step; poll waits; reconcile
    a create whose answer was lost before sending it again. Without cutover approval
    it stops before the cutover step (``stopped_at``); ``resume`` continues there."""
    outputs: dict[str, Any] = dict(resume or {})
    start_at = outputs.pop("stopped_at", None)
    steps = list(client.provider.steps(instance))
    if start_at is not None:
        steps = steps[[s.name for s in steps].index(start_at) :]
    for step in steps:
        if isinstance(step, CallStep):
            if step.cutover and not approve_cutover:
                outputs["stopped_at"] = step.name
                return outputs
            outputs.update(await _call_step(client, step, outputs))
        else:
            assert isinstance(step, WaitStep)
            outputs.update(await _wait_step(client, step, outputs))
    return outputs


async def _call_step(client: Client, step: CallStep, outputs: dict[str, Any]) -> Mapping[str, Any]:
    call = step.build(outputs)
    try:
        return step.read(await client.send(call))
    except UnknownOutcomeError:
        assert step.reconcile is not None
        found = await step.reconcile(client, outputs)
        if found is not None:
            return found
        return step.read(await client.send(call))


async def _wait_step(client: Client, step: WaitStep, outputs: dict[str, Any]) -> Mapping[str, Any]:
    for _ in range(2000):
        (status,) = await step.poller.poll(client, [outputs])
        if status.state == "succeeded":
            return status.outputs
        if status.state == "failed":
            raise InstanceFailedError(status.message)
        await anyio.sleep(0.01)
    raise AssertionError(f"{step.name} never finished")


__all__ = [
    "AuditEntry",
    "Client",
    "FakeContext",
    "FakeCredentials",
    "InstanceFailedError",
    "MemoryStore",
    "ProviderError",
    "Sandbox",
    "http_send",
    "make_client",
    "make_config",
    "make_instance",
    "run_instance",
    "start_sandbox",
]
