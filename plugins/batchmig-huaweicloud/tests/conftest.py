"""Fixtures for the huawei-drs tests (helpers live in ``huawei_kit``)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from huawei_kit import Client, Sandbox, make_client, start_sandbox


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    """Emulator options; override in a module to change timings or quirks."""
    return {"numeric_recovery_mode_rate": 0.5}


@pytest.fixture
async def sandbox(sandbox_options: dict[str, Any]) -> AsyncIterator[Sandbox]:
    box, runner = await start_sandbox(sandbox_options)
    try:
        yield box
    finally:
        await runner.cleanup()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def client(sandbox: Sandbox, http: aiohttp.ClientSession) -> Client:
    return make_client(sandbox.url, http)
