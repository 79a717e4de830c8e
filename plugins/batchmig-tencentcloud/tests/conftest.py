"""Fixtures: a fake sandbox clock/store, loopback emulators, and a driver per API."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from tencent_harness import Driver, FakeSandbox, Server, provider_config, serve

from batchmig_tencentcloud.connection import TencentConnection
from batchmig_tencentcloud.dts.provider import DTS_API
from batchmig_tencentcloud.emulator import DEMO_SECRET_ID, DEMO_SECRET_KEY, DtsEmulator, SqlServerEmulator
from batchmig_tencentcloud.sqlserver.provider import SQLSERVER_API


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sandbox() -> FakeSandbox:
    return FakeSandbox()


@dataclass
class Env:
    sandbox: FakeSandbox
    server: Server
    driver: Driver
    connection: TencentConnection


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def sqlserver(sandbox: FakeSandbox, http: aiohttp.ClientSession) -> AsyncIterator[Env]:
    async with serve(SqlServerEmulator(sandbox)) as server:
        config = provider_config(
            "tencent-sqlserver", server.url, secret_id=DEMO_SECRET_ID, secret_key=DEMO_SECRET_KEY
        )
        connection = TencentConnection(config, SQLSERVER_API, clock=sandbox.now)
        yield Env(sandbox, server, Driver(connection, http, sandbox), connection)


@pytest.fixture
async def dts(sandbox: FakeSandbox, http: aiohttp.ClientSession) -> AsyncIterator[Env]:
    async with serve(DtsEmulator(sandbox)) as server:
        config = provider_config(
            "tencent-dts",
            server.url,
            secret_id=DEMO_SECRET_ID,
            secret_key=DEMO_SECRET_KEY,
            target_password="target-secret",
        )
        connection = TencentConnection(config, DTS_API, clock=sandbox.now)
        yield Env(sandbox, server, Driver(connection, http, sandbox), connection)
