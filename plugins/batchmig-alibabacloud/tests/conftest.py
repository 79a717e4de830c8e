"""Fixtures shared by the tests: the emulator on loopback inside batchmig's sandbox host.

``host`` runs the emulator with a ``FakeSandboxContext`` (time scale 60: a 15-minute
restore takes 15 s of the context's clock, which tests move with ``advance``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from batchmig.testing import EmulatorHost, FakeSandboxContext

from batchmig_alibabacloud.emulator import AlibabaRdsEmulator

Host = EmulatorHost[FakeSandboxContext]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def host() -> AsyncIterator[Host]:
    async with EmulatorHost(AlibabaRdsEmulator, FakeSandboxContext(time_scale=60)) as running:
        yield running
