"""batchmig's entry point into this distribution: the registration hooks.

Declared in pyproject.toml (``[project.entry-points.batchmig] alibabacloud =
"batchmig_alibabacloud.plugin"``). Registering costs nothing: the provider opens no connection
until ``connect``, and the sandbox builds the emulator only when it starts.
"""

from __future__ import annotations

from batchmig.emulator import EmulatorSpec
from batchmig.plugin import EmulatorRegistry, ProviderRegistry, ProviderSpec, hookimpl

from batchmig_alibabacloud.emulator import DEMO_CREDENTIALS, AlibabacloudEmulator
from batchmig_alibabacloud.provider import AlibabacloudProvider

__all__ = ["BATCHMIG_PLUGIN_API", "batchmig_register_emulators", "batchmig_register_providers"]

BATCHMIG_PLUGIN_API = (1,)
"""The batchmig plugin-API versions this distribution is written for."""


@hookimpl
def batchmig_register_providers(registry: ProviderRegistry) -> None:
    registry.add(ProviderSpec("alibabacloud", AlibabacloudProvider(), "Alibabacloud SQL Server imports", emulator="alibabacloud"))


@hookimpl
def batchmig_register_emulators(registry: EmulatorRegistry) -> None:
    registry.add(EmulatorSpec("alibabacloud", AlibabacloudEmulator, DEMO_CREDENTIALS, "Alibabacloud import API"))
