"""batchmig's entry point for this distribution: registers ``huawei-drs`` and its emulator.

The emulator module is imported only when the sandbox builds it, so a live run does
not load aiohttp server code it never uses.
"""

from __future__ import annotations

from batchmig.emulator import Emulator, EmulatorSpec, SandboxContext
from batchmig.plugin import EmulatorRegistry, ProviderRegistry, ProviderSpec, hookimpl

from batchmig_huaweicloud.demo import DEMO_CREDENTIALS
from batchmig_huaweicloud.provider import DrsProvider

__all__ = ["BATCHMIG_PLUGIN_API", "DEMO_CREDENTIALS", "batchmig_register_emulators", "batchmig_register_providers"]

BATCHMIG_PLUGIN_API = (1,)
"""The batchmig plugin-API versions this distribution is written for."""

PROVIDER = "huawei-drs"


def _build_emulator(ctx: SandboxContext) -> Emulator:
    from batchmig_huaweicloud.emulator import HuaweiDrsEmulator

    return HuaweiDrsEmulator(ctx)


@hookimpl
def batchmig_register_providers(registry: ProviderRegistry) -> None:
    registry.add(
        ProviderSpec(
            name=PROVIDER,
            provider=DrsProvider(),
            description="Huawei Cloud DRS v5 backup migration into RDS for SQL Server (OBS or RDS backups)",
            emulator=PROVIDER,
        )
    )


@hookimpl
def batchmig_register_emulators(registry: EmulatorRegistry) -> None:
    registry.add(
        EmulatorSpec(
            name=PROVIDER,
            factory=_build_emulator,
            demo_credentials=DEMO_CREDENTIALS,
            description="DRS v5 backup-migration jobs, APIGW AK/SK and token auth, IAM tokens and projects",
        )
    )
