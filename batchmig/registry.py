"""Build the plugin manager and collect what plugins register.

There is no global plugin manager: ``load_registry()`` builds one, loads the
``batchmig`` entry-point group (built-in providers are found the same way as third
party ones) and returns a ``Registry`` the engine and CLI receive. Loading is strict
and eager, so a broken plugin is reported once, at start, naming its distribution:

* a plugin that fails to import, declares plugin-API versions this core does not
  speak, implements a hook with ``async def``, implements a ``batchmig_*`` hook that
  does not exist (a misspelling) or forgot ``@hookimpl`` on one is refused;
* names must be kebab-case and unique across all plugins (a clash names both);
* hooks are called through pluggy, one plugin at a time (``subset_hook_caller``),
  so pluggy's tracing and monitoring see every call and every registration is
  attributed to the distribution that made it.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import pluggy

from batchmig import __version__, hookspecs
from batchmig.emulator import EmulatorSpec
from batchmig.errors import PlanProblem, PluginError
from batchmig.plugin import API_VERSION, Provider, ProviderSpec

ENTRY_POINT_GROUP = "batchmig"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$")
"""Provider and emulator names: lowercase kebab-case (``tencent-sqlserver``)."""
REGISTRATION_HOOKS = ("batchmig_register_providers", "batchmig_register_emulators")
HOOK_NAMES = tuple(sorted(name for name in vars(hookspecs) if name.startswith("batchmig_")))


@dataclass(frozen=True)
class Origin:
    """Where a plugin came from: distribution name and version (and its entry point)."""

    distribution: str
    version: str
    entry_point: str = ""

    def __str__(self) -> str:
        return f"{self.distribution} {self.version}"


@dataclass(frozen=True)
class PluginInfo:
    """One loaded plugin, as ``batchmig plugins`` lists it.

    ``api_versions`` is what the plugin declares in ``BATCHMIG_PLUGIN_API`` (empty:
    undeclared); ``requires_batchmig`` is the core-version requirement from its
    distribution's metadata, if it states one.
    """

    origin: Origin
    hooks: tuple[str, ...]
    api_versions: tuple[int, ...]
    requires_batchmig: str | None

    def as_dict(self, registry: Registry) -> dict[str, Any]:
        mine = [name for name, origin in registry.origins.items() if origin == self.origin]
        return {
            "distribution": self.origin.distribution,
            "version": self.origin.version,
            "entry_point": self.origin.entry_point,
            "hooks": list(self.hooks),
            "api_versions": list(self.api_versions),
            "requires_batchmig": self.requires_batchmig,
            "providers": [
                {"name": name, "description": registry.providers[name].description,
                 "emulator": registry.providers[name].emulator}
                for kind, name in (key.split(":", 1) for key in sorted(mine)) if kind == "provider"
            ],
            "emulators": [key.split(":", 1)[1] for key in sorted(mine) if key.startswith("emulator:")],
        }


@dataclass
class _Collector:
    """The registry handed to one registration hook of one plugin."""

    kind: str
    spec_type: type
    items: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, Origin] = field(default_factory=dict)
    current: Origin = field(default_factory=lambda: Origin("unknown", "?"))

    def add(self, spec: Any) -> None:
        if not isinstance(spec, self.spec_type):
            expected = self.spec_type.__name__
            raise PluginError(f"{self.current} registered {spec!r} as a {self.kind}; expected a {expected}")
        name = getattr(spec, "name", None)
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise PluginError(f"{self.current} registered the {self.kind} name {name!r}; names are lowercase "
                              "kebab-case, such as 'acme-sql'")
        if isinstance(spec, ProviderSpec) and not isinstance(spec.provider, Provider):
            raise PluginError(f"{self.current}: provider {name!r} is not a batchmig.plugin.Provider")
        if name in self.items:
            raise PluginError(f"{self.kind} {name!r} is registered by both {self.origins[name]} and {self.current}")
        self.items[name] = spec
        self.origins[name] = self.current


@dataclass
class Registry:
    """The providers and emulators of one plugin manager, and who supplied them."""

    manager: pluggy.PluginManager
    providers: dict[str, ProviderSpec]
    emulators: dict[str, EmulatorSpec]
    origins: dict[str, Origin]
    plugins: list[PluginInfo] = field(default_factory=list)

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
    loaded: list[tuple[object, PluginInfo]] = []
    if entry_points:
        for ep in sorted(importlib.metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
            dist = ep.dist
            origin = Origin(dist.name if dist else ep.value, dist.version if dist else "?", ep.name)
            try:
                plugin = ep.load()
            except Exception as exc:  # any import failure of third-party code
                raise PluginError(
                    f"plugin {ep.name!r} from {origin} failed to load: {type(exc).__name__}: {exc}"
                ) from exc
            if manager.is_registered(plugin):
                continue
            loaded.append((plugin, _register(manager, plugin, origin, _requirement(dist))))
    for plugin in extra_plugins:
        origin = Origin(getattr(plugin, "__name__", type(plugin).__name__), "(registered in code)")
        loaded.append((plugin, _register(manager, plugin, origin, None)))
    _check_pending(manager, {id(plugin): info.origin for plugin, info in loaded})

    providers = _Collector("provider", ProviderSpec)
    emulators = _Collector("emulator", EmulatorSpec)
    for hook_name, collector in zip(REGISTRATION_HOOKS, (providers, emulators), strict=True):
        for plugin, info in loaded:
            if hook_name not in info.hooks:
                continue
            others = [p for p, _ in loaded if p is not plugin]
            collector.current = info.origin
            try:
                manager.subset_hook_caller(hook_name, remove_plugins=others)(registry=collector)
            except PluginError:
                raise
            except Exception as exc:
                raise PluginError(f"{hook_name} of {info.origin} failed: {type(exc).__name__}: {exc}") from exc
    merged = {f"provider:{k}": v for k, v in providers.origins.items()}
    merged.update({f"emulator:{k}": v for k, v in emulators.origins.items()})
    return Registry(manager, providers.items, emulators.items, merged, [info for _, info in loaded])


def _register(manager: pluggy.PluginManager, plugin: object, origin: Origin, requires: str | None) -> PluginInfo:
    """Register ``plugin`` after checking what pluggy would let pass silently."""
    declared = getattr(plugin, "BATCHMIG_PLUGIN_API", None)
    versions = _api_versions(declared, origin)
    if versions and API_VERSION not in versions:
        raise PluginError(
            f"{origin} supports batchmig plugin API {', '.join(map(str, versions))}, but batchmig {__version__} "
            f"speaks plugin API {API_VERSION}: install a version of {origin.distribution} made for it "
            f"(or a batchmig that speaks API {max(versions)})"
        )
    for attribute in dir(plugin):
        value = getattr(plugin, attribute, None)
        if not attribute.startswith("batchmig_") or not callable(value):
            continue
        if getattr(value, "batchmig_impl", None) is None:
            raise PluginError(f"{origin}: {attribute} is not marked @hookimpl (from batchmig.plugin), "
                              "so batchmig would silently ignore it")
        if inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value):
            raise PluginError(f"{origin}: hook {attribute} is async; batchmig hooks are synchronous "
                              "(do I/O in the provider's async methods)")
    try:
        manager.register(plugin, name=f"{origin.distribution}:{origin.entry_point or id(plugin)}")
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"{origin}: {exc}") from exc
    hooks = tuple(sorted(caller.name for caller in manager.get_hookcallers(plugin) or ()))
    return PluginInfo(origin, hooks, versions, requires)


def _api_versions(declared: object, origin: Origin) -> tuple[int, ...]:
    if declared is None:
        return ()
    values = (declared,) if isinstance(declared, int) else declared
    if not isinstance(values, tuple | list) or not values or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in values
    ):
        raise PluginError(f"{origin}: BATCHMIG_PLUGIN_API must be a tuple of ints such as (1,), not {declared!r}")
    return tuple(sorted(values))


def _check_pending(manager: pluggy.PluginManager, origins: Mapping[int, Origin]) -> None:
    """A hook implementation without a spec is a misspelt hook: refuse it, with a suggestion."""
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        origin = origins.get(id(exc.plugin), Origin(str(manager.get_name(exc.plugin)), "?"))
        unknown = [
            name for name, caller in vars(manager.hook).items()
            if isinstance(caller, pluggy.HookCaller) and not caller.has_spec()
            and any(impl.plugin is exc.plugin for impl in caller.get_hookimpls())
        ]
        name = unknown[0] if unknown else "a hook"
        close = difflib.get_close_matches(name, HOOK_NAMES, n=1)
        hint = f"; did you mean {close[0]}?" if close else f"; the hooks are {', '.join(HOOK_NAMES)}"
        raise PluginError(f"{origin} implements {name}, which is not a batchmig hook{hint}") from exc


def _requirement(dist: importlib.metadata.Distribution | None) -> str | None:
    """The version requirement on batchmig in ``dist``'s metadata (``>=0.1,<0.2``), if any."""
    for line in (dist.requires or []) if dist else []:
        match = re.match(r"^batchmig\s*(\([^)]*\)|[<>=!~][^;]*)?\s*(;.*)?$", line)
        if match and not (match.group(2) or "").strip("; ").startswith("extra"):
            return (match.group(1) or "").strip("() ") or "any"
    return None
