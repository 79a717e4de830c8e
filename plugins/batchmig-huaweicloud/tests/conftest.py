"""Fixtures for the huawei-drs tests: the DRS emulator on loopback and a step driver (batchmig's kit)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

import pytest
from batchmig.plugin import HttpRequest
from batchmig.testing import EmulatorHost, FakeSandboxContext, StepDriver, provider_config

from batchmig_huaweicloud.demo import DEMO_CREDENTIALS
from batchmig_huaweicloud.emulator import HuaweiDrsEmulator
from batchmig_huaweicloud.provider import DrsProvider
from batchmig_huaweicloud.settings import DrsOptions

PROVIDER = DrsProvider()
Send = Callable[[HttpRequest], Any]


def _drs_config(
    url: str | None,
    credentials: Mapping[str, str | None] | None = None,
    options: DrsOptions | None = None,
    region: str = "cn-north-4",
) -> Any:
    """The ``ProviderConfig`` of a plan's ``hw`` entry, with the sandbox's demo keys by default."""
    creds = DEMO_CREDENTIALS if credentials is None else credentials
    return provider_config("huawei-drs", url, creds, region=region, options=options or DrsOptions(), name="hw")


@pytest.fixture
def drs_config() -> Callable[..., Any]:
    """``drs_config(url, credentials=None, options=None, region="cn-north-4")``."""
    return _drs_config


@pytest.fixture
def sandbox_options() -> dict[str, Any]:
    """Emulator options; override in a module to change timings or quirks."""
    return {"numeric_recovery_mode_rate": 0.5}


@pytest.fixture
async def sandbox(sandbox_options: dict[str, Any]) -> AsyncIterator[EmulatorHost]:
    async with EmulatorHost(HuaweiDrsEmulator, FakeSandboxContext(options=sandbox_options, time_scale=1000)) as host:
        yield host


@pytest.fixture
def make_client(sandbox: EmulatorHost, http_send: Send) -> Callable[..., StepDriver]:
    """``make_client(credentials=..., options=..., region=...)``: a driver on another configuration."""

    def make(**config: Any) -> StepDriver:
        connection = PROVIDER.connect(_drs_config(sandbox.url, **config), http_send)
        return StepDriver(connection, http_send, provider=PROVIDER, clock=sandbox.context, poll_step=1.0)

    return make


@pytest.fixture
def client(make_client: Callable[..., StepDriver]) -> StepDriver:
    return make_client()

