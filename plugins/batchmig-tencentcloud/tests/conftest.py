"""Fixtures: each API's emulator on loopback (batchmig's kit), a connection and a step driver."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace

import aiohttp
import pytest
from batchmig.emulator import Emulator, SandboxContext
from batchmig.testing import EmulatorHost, FakeSandboxContext, StepDriver, http_client, provider_config

from batchmig_tencentcloud.connection import ApiInfo, TencentConnection
from batchmig_tencentcloud.dts.provider import DTS_API
from batchmig_tencentcloud.emulator import DtsEmulator, SqlServerEmulator
from batchmig_tencentcloud.plugin import DEMO_CREDENTIALS
from batchmig_tencentcloud.sqlserver.provider import SQLSERVER_API


@pytest.fixture
def sandbox() -> FakeSandboxContext:
    return FakeSandboxContext()


@dataclass
class Env:
    sandbox: FakeSandboxContext
    server: EmulatorHost
    driver: StepDriver
    connection: TencentConnection
    http: aiohttp.ClientSession
    inspect: StepDriver
    """Reads every answer whole (no lean decoder): for the tests of the emulators' answers."""


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _env(
    factory: Callable[[SandboxContext], Emulator], api: ApiInfo, provider: str, sandbox: FakeSandboxContext,
    http: aiohttp.ClientSession, **credentials: str,
) -> AsyncIterator[Env]:
    async with EmulatorHost(factory, sandbox) as host, http_client() as send:
        config = provider_config(provider, host.url, {**DEMO_CREDENTIALS, **credentials}, region="ap-guangzhou")
        connection = TencentConnection(config, api, clock=sandbox.now)
        whole = TencentConnection(config, replace(api, lean={}), clock=sandbox.now)
        yield Env(sandbox, host, StepDriver(connection, send, clock=sandbox), connection, http,
                  StepDriver(whole, send, clock=sandbox))


@pytest.fixture
async def sqlserver(sandbox: FakeSandboxContext, http: aiohttp.ClientSession) -> AsyncIterator[Env]:
    async for env in _env(SqlServerEmulator, SQLSERVER_API, "tencent-sqlserver", sandbox, http):
        yield env


@pytest.fixture
async def dts(sandbox: FakeSandboxContext, http: aiohttp.ClientSession) -> AsyncIterator[Env]:
    async for env in _env(DtsEmulator, DTS_API, "tencent-dts", sandbox, http, target_password="target-secret"):
        yield env
