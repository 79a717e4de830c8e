"""Test stand-ins for the sandbox host and the engine, small enough to trust.

- ``MemoryStore`` / ``FakeSandbox``: the ``StateStore`` and ``SandboxContext`` an
  emulator is built with, with a clock the test moves by hand.
- ``serve``: a loopback aiohttp server doing what the host does around an emulator
  (authenticate → audit → handle), minus throttling and fault injection except
  lagging lists (``Server.list_lag``).
- ``Driver``: what the engine does with a provider's steps (build → prepare → send →
  parse → read; poll until done), and the read-only ``Caller`` for reconcile/polls.
"""

from __future__ import annotations

import contextlib
import copy
import json
import random
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import aiohttp
from aiohttp import web
from aiohttp.test_utils import TestServer
from batchmig.emulator import Emulator, EmulatorReject, StateStore
from batchmig.plugin import (
    Call,
    CallStep,
    Connection,
    HttpResponse,
    Outputs,
    ProviderConfig,
    Step,
    WaitStatus,
    WaitStep,
)


class MemoryStore:
    def __init__(self) -> None:
        self.kinds: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.counters: dict[str, int] = defaultdict(int)

    def get(self, kind: str, key: str) -> dict[str, Any] | None:
        value = self.kinds[kind].get(key)
        return copy.deepcopy(value) if value is not None else None

    def put(self, kind: str, key: str, value: dict[str, Any]) -> None:
        self.kinds[kind][key] = json.loads(json.dumps(value))  # JSON values only, like a real store

    def delete(self, kind: str, key: str) -> None:
        self.kinds[kind].pop(key, None)

    def values(self, kind: str) -> Iterator[dict[str, Any]]:
        return iter([copy.deepcopy(value) for value in self.kinds[kind].values()])

    def next_id(self, kind: str) -> int:
        self.counters[kind] += 1
        return self.counters[kind]


class FakeSandbox:
    """A ``SandboxContext`` whose clock only moves when told to."""

    def __init__(self, options: Mapping[str, Any] | None = None, time_scale: float = 1.0) -> None:
        self.store: StateStore = MemoryStore()
        self.time_scale = time_scale
        self.credentials: Mapping[str, str] = {}
        self.options: Mapping[str, Any] = dict(options or {})
        self.clock = float(int(time.time()))
        self._random = random.Random(7)

    def now(self) -> float:
        return self.clock

    def advance(self, seconds: float) -> None:
        self.clock += seconds

    def cloud_seconds_since(self, wall_time: float) -> float:
        return (self.clock - wall_time) * self.time_scale

    def random(self) -> float:
        return self._random.random()


@dataclass
class AuditEntry:
    action: str
    resource: str | None
    changed: bool
    code: str | None


@dataclass
class Server:
    url: str
    audit: list[AuditEntry] = field(default_factory=list)
    list_lag: float = 0.0
    """Seconds during which new resources stay out of lists (the host's list_lag fault)."""

    def calls(self, action: str) -> list[AuditEntry]:
        return [entry for entry in self.audit if entry.action == action]

    def changes(self, action: str) -> list[AuditEntry]:
        return [entry for entry in self.calls(action) if entry.changed and entry.code is None]


def _code(response: web.Response) -> str | None:
    assert isinstance(response.body, bytes)
    error = json.loads(response.body)["Response"].get("Error")
    return error["Code"] if error else None


@contextlib.asynccontextmanager
async def serve(emulator: Emulator) -> AsyncIterator[Server]:
    server_info = Server(url="")

    async def entry(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            info = await emulator.authenticate(request, body)
        except EmulatorReject as reject:
            server_info.audit.append(
                AuditEntry(request.headers.get("X-TC-Action", ""), None, False, reject.code)
            )
            return reject.response
        reply = await emulator.handle(request, replace(info, list_lag=server_info.list_lag), body)
        server_info.audit.append(
            AuditEntry(info.action, reply.resource, reply.changed, _code(reply.response))
        )
        return reply.response

    app = web.Application()
    app.router.add_route("*", "/", entry)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    server_info.url = str(server.make_url("/"))
    try:
        yield server_info
    finally:
        await server.close()


class StaticCredentials:
    def __init__(self, **values: str) -> None:
        self._values = values

    def secret(self, name: str) -> str | None:
        return self._values.get(name)

    def __repr__(self) -> str:
        return "StaticCredentials(<redacted>)"


def provider_config(
    provider: str,
    endpoint: str | None,
    *,
    region: str = "ap-guangzhou",
    options: Any = None,
    **credentials: str,
) -> ProviderConfig:
    return ProviderConfig(
        name=provider,
        provider=provider,
        region=region,
        endpoint=endpoint,
        credentials=StaticCredentials(**credentials),
        options=options,
    )


@dataclass
class Run:
    state: str
    outputs: dict[str, Any]
    step: str | None = None
    status: WaitStatus | None = None
    waits: dict[str, int] = field(default_factory=dict)


def call_step(steps: Sequence[Step], name: str) -> CallStep:
    [step] = [step for step in steps if step.name == name]
    assert isinstance(step, CallStep)
    return step


def wait_step(steps: Sequence[Step], name: str) -> WaitStep:
    [step] = [step for step in steps if step.name == name]
    assert isinstance(step, WaitStep)
    return step


async def reconcile(step: CallStep, caller: Driver, outputs: Outputs) -> Outputs | None:
    assert step.reconcile is not None, f"{step.name} has no reconcile"
    return await step.reconcile(caller, outputs)


def _assert_same_outputs(name: str, recovered: Outputs, read: Outputs) -> None:
    """Reconcile must give what read gave; None stands for a value no lookup can
    recover (CreateBackup's FlowId), which the step's poller must then do without."""
    assert recovered.keys() == read.keys(), f"{name}: {recovered} != {read}"
    for key, value in recovered.items():
        assert value is None or value == read[key], f"{name}.{key}: {value!r} != {read[key]!r}"


class Driver:
    """A stand-in engine: runs steps one instance at a time, polls by moving the clock."""

    def __init__(
        self,
        connection: Connection,
        session: aiohttp.ClientSession,
        sandbox: FakeSandbox,
        poll_step: float = 30.0,
    ) -> None:
        self.connection = connection
        self.session = session
        self.sandbox = sandbox
        self.poll_step = poll_step

    async def send(self, call: Call) -> Mapping[str, Any]:
        request = await self.connection.prepare(call)
        async with self.session.request(
            request.method, request.url, headers=dict(request.headers), data=request.body
        ) as reply:
            body = await reply.read()
            response = HttpResponse(reply.status, {k.lower(): v for k, v in reply.headers.items()}, body)
        return self.connection.parse(call, response)

    async def read(self, call: Call) -> Mapping[str, Any]:
        assert not call.mutating, f"a Caller refuses mutating calls ({call.action})"
        return await self.send(call)

    async def run(
        self,
        steps: Sequence[Step],
        outputs: Outputs | None = None,
        *,
        lose: Iterable[str] = (),
        stop_before: str | None = None,
    ) -> Run:
        """Run ``steps``; for the step names in ``lose`` the server acts but the answer
        is dropped, and the step's ``reconcile`` must recover the outputs."""
        lost = set(lose)
        run = Run("succeeded", dict(outputs or {}))
        for step in steps:
            if step.name == stop_before:
                return Run("stopped", run.outputs, step.name, waits=run.waits)
            if isinstance(step, CallStep):
                answer = await self.send(step.build(run.outputs))
                if step.name in lost:
                    assert step.reconcile is not None, f"{step.name} has no reconcile"
                    recovered = await step.reconcile(self, run.outputs)
                    assert recovered is not None, f"{step.name}: the call took effect but reconcile missed it"
                    _assert_same_outputs(step.name, recovered, step.read(answer))
                    run.outputs |= recovered
                else:
                    run.outputs |= step.read(answer)
            else:
                assert isinstance(step, WaitStep)
                status, polls = await self.wait(step, run.outputs)
                run.waits[step.name] = polls
                if status.state == "failed":
                    return Run("failed", run.outputs, step.name, status, run.waits)
                run.outputs |= status.outputs
        return run

    async def wait(self, step: WaitStep, outputs: Outputs, max_polls: int = 1000) -> tuple[WaitStatus, int]:
        for polls in range(1, max_polls + 1):
            [status] = await step.poller.poll(self, [outputs])
            if status.state != "running":
                return status, polls
            self.sandbox.advance(self.poll_step)
        raise AssertionError(f"{step.name} still running after {max_polls} polls")
