"""Build the plugin manager and collect what plugins register.

There is no global plugin manager: ``load_registry()`` builds one, loads the
``batchmig`` entry-point group (built-in providers are found the same way as third
party ones) and returns a ``Registry`` the engine and CLI receive. Loading is strict
and eager, so a broken plugin is reported once, at start, naming its distribution.
"""

from __future__ import annotations

import importlib.metadata
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from batchmig import hookspecs
from batchmig.emulator import EmulatorSpec
from batchmig.errors import PlanProblem, PluginError
from batchmig.plugin import Provider, ProviderSpec

ENTRY_POINT_GROUP = "batchmig"


@dataclass(frozen=True)
class Origin:
    """Where a registration came from: distribution name and version."""

    distribution: str
    version: str

    def __str__(self) -> str:
        return f"{self.distribution} {self.version}"


@dataclass
class _Collector:
    kind: str
    items: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, Origin] = field(default_factory=dict)
    current: Origin = field(default_factory=lambda: Origin("unknown", "?"))

    def add(self, spec: Any) -> None:
        if spec.name in self.items:
            raise PluginError(
                f"{self.kind} {spec.name!r} is registered by both {self.origins[spec.name]} and {self.current}"
            )
        self.items[spec.name] = spec
        self.origins[spec.name] = self.current


@dataclass
class Registry:
    """The providers and emulators of one plugin manager."""

    manager: pluggy.PluginManager
    providers: dict[str, ProviderSpec]
    emulators: dict[str, EmulatorSpec]
    origins: dict[str, Origin]

    def provider(self, name: str) -> Provider:
        return self.providers[name].provider

    def check_plan(self, plan: Any) -> list[PlanProblem]:
        problems: list[PlanProblem] = []
        for result in self.manager.hook.batchmig_check_plan(plan=plan):
            problems.extend(result or ())
        return problems


def new_plugin_manager() -> pluggy.PluginManager:
    manager = pluggy.PluginManager("batchmig")
    manager.add_hookspecs(hookspecs)
    return manager


def load_registry(extra_plugins: Iterable[object] = (), *, entry_points: bool = True) -> Registry:
    """Build a plugin manager, load plugins and collect their registrations.

    ``extra_plugins`` are registered as well (tests use them); ``entry_points=False``
    skips the installed distributions so a test sees only what it registers.
    """
    manager = new_plugin_manager()
    origins: dict[int, Origin] = {}
    if entry_points:
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist
            origin = Origin(dist.name if dist else ep.value, dist.version if dist else "?")
            try:
                plugin = ep.load()
            except Exception as exc:  # any import failure of third-party code
                raise PluginError(
                    f"plugin {ep.name!r} from {origin} failed to load: {type(exc).__name__}: {exc}"
                ) from exc
            if manager.is_registered(plugin):
                continue
            manager.register(plugin, name=f"{origin.distribution}:{ep.name}")
            origins[id(plugin)] = origin
    for plugin in extra_plugins:
        manager.register(plugin)
        origins[id(plugin)] = Origin(getattr(plugin, "__name__", type(plugin).__name__), "(registered in code)")

    providers = _Collector("provider")
    emulators = _Collector("emulator")
    for hook_name, collector in (
        ("batchmig_register_providers", providers),
        ("batchmig_register_emulators", emulators),
    ):
        for impl in getattr(manager.hook, hook_name).get_hookimpls():
            collector.current = origins.get(id(impl.plugin), Origin(impl.plugin_name, "?"))
            try:
                impl.function(registry=collector)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(
                    f"{hook_name} of {collector.current} failed: {type(exc).__name__}: {exc}"
                ) from exc
    for name, spec in providers.items.items():
        if not isinstance(spec, ProviderSpec) or not isinstance(spec.provider, Provider):
            raise PluginError(f"provider {name!r} from {providers.origins[name]} is not a ProviderSpec(Provider)")
    merged = {f"provider:{k}": v for k, v in providers.origins.items()}
    merged.update({f"emulator:{k}": v for k, v in emulators.origins.items()})
    return Registry(manager, providers.items, emulators.items, merged)
