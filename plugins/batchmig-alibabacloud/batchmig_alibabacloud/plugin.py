"""batchmig's entry point into this distribution: the registration hooks and a plan-wide rule.

Declared in pyproject.toml (``[project.entry-points.batchmig] alibabacloud =
"batchmig_alibabacloud.plugin"``). Registering costs nothing: the provider opens no
connection until ``connect``, and the sandbox builds the emulator only when it starts (its
module, and aiohttp's server, are imported only then).
"""

from __future__ import annotations

from collections.abc import Sequence

from batchmig.emulator import Emulator, EmulatorSpec, SandboxContext
from batchmig.plugin import EmulatorRegistry, Plan, PlanProblem, ProviderRegistry, ProviderSpec, hookimpl

from batchmig_alibabacloud.demo import DEMO_CREDENTIALS
from batchmig_alibabacloud.provider import AlibabaRdsProvider

__all__ = ["BATCHMIG_PLUGIN_API", "PROVIDER", "batchmig_check_plan", "batchmig_register_emulators",
           "batchmig_register_providers"]

BATCHMIG_PLUGIN_API = (1,)
"""The batchmig plugin-API versions this distribution is written for."""

PROVIDER = "alibaba-rds-sqlserver"


def _build_emulator(ctx: SandboxContext) -> Emulator:
    from batchmig_alibabacloud.emulator import AlibabaRdsEmulator

    return AlibabaRdsEmulator(ctx)


@hookimpl
def batchmig_register_providers(registry: ProviderRegistry) -> None:
    description = "Alibaba Cloud ApsaraDB RDS for SQL Server: backup migration from OSS"
    registry.add(ProviderSpec(PROVIDER, AlibabaRdsProvider(), description, emulator=PROVIDER))


@hookimpl
def batchmig_register_emulators(registry: EmulatorRegistry) -> None:
    registry.add(EmulatorSpec(PROVIDER, _build_emulator, DEMO_CREDENTIALS, "ApsaraDB RDS API 2014-08-15"))


@hookimpl
def batchmig_check_plan(plan: Plan) -> Sequence[PlanProblem]:
    """One database of one RDS instance is migrated by one instance of the plan only:
    a second FULL task for it would be refused, and would break the reconcile's shape."""
    first: dict[tuple[str, str, str], str] = {}
    problems = []
    for inst in plan.instances:
        if inst.provider != PROVIDER:
            continue
        key = (inst.connection, inst.settings.instance_id, inst.settings.database.lower())
        if key in first:
            problems.append(plan.locate(
                f"instances.{inst.index}.settings.database",
                f"{inst.settings.database} on {inst.settings.instance_id} is also migrated by instance "
                f"{first[key]}: one database takes one migration"))
        first.setdefault(key, inst.id)
    return problems
