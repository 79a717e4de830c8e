"""batchmig's entry point for this distribution: registers ``huawei-drs`` and its emulator.

The emulator module is imported only when the sandbox builds it, so a live run does
not load aiohttp server code it never uses.
"""

from __future__ import annotations

from typing import Any, Protocol

from batchmig.emulator import Emulator, EmulatorSpec, SandboxContext
from batchmig.plugin import ProviderSpec, hookimpl

from batchmig_huaweicloud.demo import DEMO_CREDENTIALS
from batchmig_huaweicloud.provider import DrsProvider

__all__ = ["DEMO_CREDENTIALS", "batchmig_register_emulators", "batchmig_register_providers"]

PROVIDER = "huawei-drs"


class Registry(Protocol):
    """What the registration hooks receive (``batchmig.hookspecs`` is not public API)."""

    def add(self, spec: Any) -> None: ...


def _build_emulator(ctx: SandboxContext) -> Emulator:
    from batchmig_huaweicloud.emulator import HuaweiDrsEmulator

    return HuaweiDrsEmulator(ctx)


@hookimpl
def batchmig_register_providers(registry: Registry) -> None:
    registry.add(
        ProviderSpec(
            name=PROVIDER,
            provider=DrsProvider(),
            description="Huawei Cloud DRS v5 backup migration into RDS for SQL Server (OBS or RDS backups)",
            emulator=PROVIDER,
        )
    )


@hookimpl
def batchmig_register_emulators(registry: Registry) -> None:
    registry.add(
        EmulatorSpec(
            name=PROVIDER,
            factory=_build_emulator,
            demo_credentials=DEMO_CREDENTIALS,
            description="DRS v5 backup-migration jobs, APIGW AK/SK and token auth, IAM tokens and projects",
        )
    )
