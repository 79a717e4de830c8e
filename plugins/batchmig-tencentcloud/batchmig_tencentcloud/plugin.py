"""batchmig's entry point into this distribution: the registration hooks.

Declared in pyproject.toml as ``tencentcloud = "batchmig_tencentcloud.plugin"`` in
the ``batchmig`` entry-point group. Registering costs nothing: providers hold no
connections until ``connect`` and emulators are built only by the sandbox host (their
modules, and aiohttp's server, are imported only then).
"""

from __future__ import annotations

from batchmig.emulator import Emulator, EmulatorSpec, SandboxContext
from batchmig.plugin import EmulatorRegistry, ProviderRegistry, ProviderSpec, hookimpl

from batchmig_tencentcloud.demo import DEMO_SECRET_ID, DEMO_SECRET_KEY
from batchmig_tencentcloud.dts import DtsProvider
from batchmig_tencentcloud.sqlserver import SqlServerProvider

__all__ = ["BATCHMIG_PLUGIN_API", "DEMO_CREDENTIALS", "batchmig_register_emulators", "batchmig_register_providers"]

BATCHMIG_PLUGIN_API = (1,)
"""The batchmig plugin-API versions this distribution is written for."""

DEMO_CREDENTIALS = {"secret_id": DEMO_SECRET_ID, "secret_key": DEMO_SECRET_KEY}
"""Accepted by both sandbox emulators; they grant nothing anywhere else."""

DTS_DEMO_CREDENTIALS = {
    **DEMO_CREDENTIALS,
    "source_password": "sandbox-source-pw",
    "target_password": "sandbox-target-pw",
}
"""With ``run --sandbox``, database passwords named ``password_credential: source_password``
or ``target_password`` resolve to these (the DTS emulator checks no database password)."""


def _sqlserver_emulator(ctx: SandboxContext) -> Emulator:
    from batchmig_tencentcloud.emulator import SqlServerEmulator

    return SqlServerEmulator(ctx)


def _dts_emulator(ctx: SandboxContext) -> Emulator:
    from batchmig_tencentcloud.emulator import DtsEmulator

    return DtsEmulator(ctx)


@hookimpl
def batchmig_register_providers(registry: ProviderRegistry) -> None:
    registry.add(
        ProviderSpec(
            name="tencent-sqlserver",
            provider=SqlServerProvider(),
            description="TencentDB for SQL Server: backups and cold-backup import (API 2018-03-28)",
            emulator="tencent-sqlserver",
        )
    )
    registry.add(
        ProviderSpec(
            name="tencent-dts",
            provider=DtsProvider(),
            description="Tencent Cloud DTS: SQL Server migration jobs (API 2018-03-30)",
            emulator="tencent-dts",
        )
    )


@hookimpl
def batchmig_register_emulators(registry: EmulatorRegistry) -> None:
    registry.add(
        EmulatorSpec(
            name="tencent-sqlserver",
            factory=_sqlserver_emulator,
            demo_credentials=DEMO_CREDENTIALS,
            description="Tencent Cloud SQL Server API 2018-03-28 (sqlserver.tencentcloudapi.com)",
        )
    )
    registry.add(
        EmulatorSpec(
            name="tencent-dts",
            factory=_dts_emulator,
            demo_credentials=DTS_DEMO_CREDENTIALS,
            description="Tencent Cloud DTS API 2018-03-30 (dts.tencentcloudapi.com)",
        )
    )
