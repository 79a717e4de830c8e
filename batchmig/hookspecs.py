"""Every hook a batchmig plugin can implement.

All hooks are *registration* hooks: a plugin hands typed records to a registry and
the core dispatches by name afterwards. They are synchronous (pluggy has no async
hooks; I/O lives on the registered provider and emulator objects) and are called
once, when the plugin manager is built, for every plugin found in the ``batchmig``
entry-point group — built-in providers included.

A plugin module looks like::

    from batchmig.plugin import hookimpl, ProviderSpec

    @hookimpl
    def batchmig_register_providers(registry):
        registry.add(ProviderSpec(name="acme-sql", provider=AcmeProvider(), emulator="acme"))

and is declared in its ``pyproject.toml``::

    [project.entry-points.batchmig]
    acme = "batchmig_acme.plugin"
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from batchmig.plugin import EmulatorRegistry, Plan, PlanProblem, ProviderRegistry

hookspec = pluggy.HookspecMarker("batchmig")


@hookspec
def batchmig_register_providers(registry: ProviderRegistry) -> None:
    """Register the providers this plugin implements.

    Called once per plugin manager, before any plan is loaded.

    :param registry: call ``registry.add(ProviderSpec(...))`` for each provider.
        Provider names are kebab-case and unique across all installed plugins; a
        clash names both distributions and stops batchmig.

    The return value is ignored.
    """


@hookspec
def batchmig_register_emulators(registry: EmulatorRegistry) -> None:
    """Register the sandbox emulators this plugin ships.

    Called once per plugin manager; the sandbox host builds an emulator only when it
    starts, so registering one costs nothing for live runs.

    :param registry: call ``registry.add(EmulatorSpec(...))`` for each emulator.

    The return value is ignored.
    """


@hookspec
def batchmig_check_plan(plan: Plan) -> Sequence[PlanProblem] | None:
    """Check a whole plan after it passed the core's and providers' own validation.

    For rules that span instances (e.g. "no two instances restore into the same
    target database"). Called by ``batchmig validate`` and before every run.

    :param plan: the loaded plan (``batchmig.plugin.Plan``): ``plan.instances`` are
        ``PlannedInstance`` records (id, provider, connection, wave, settings...);
        ``plan.locate(path, message)`` turns a key path such as
        ``instances.3.settings.bucket`` into a located ``PlanProblem``.

    All results are collected; return None or an empty sequence when all is well.
    """
