"""Plugin loading: entry points, clashes named by distribution, broken plugins reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from batchmig.errors import PluginError
from batchmig.plugin import ProviderSpec, hookimpl
from batchmig.registry import load_registry
from batchmig.testing.testcloud import TestcloudPlugin, TestcloudProvider


class Impostor:
    @hookimpl
    def batchmig_register_providers(self, registry) -> None:
        registry.add(ProviderSpec("testcloud", TestcloudProvider()))


def test_a_clash_names_both_sources() -> None:
    with pytest.raises(PluginError, match="registered by both"):
        load_registry([TestcloudPlugin(), Impostor()], entry_points=False)


def make_distribution(root: Path, name: str, module_source: str) -> None:
    package = root / f"{name}_mod.py"
    package.write_text(module_source)
    info = root / f"{name}-9.9.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 9.9\n")
    (info / "entry_points.txt").write_text(f"[batchmig]\n{name} = {name}_mod\n")


def test_a_plugin_that_fails_to_import_names_its_distribution(tmp_path: Path, monkeypatch) -> None:
    make_distribution(tmp_path, "brokenplug", "raise RuntimeError('missing dependency')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"brokenplug 9\.9 failed to load: RuntimeError: missing dependency"):
        load_registry()
    sys.modules.pop("brokenplug_mod", None)


def test_entry_point_plugins_are_registered_with_their_distribution(tmp_path: Path, monkeypatch) -> None:
    make_distribution(tmp_path, "goodplug", (
        "from batchmig.plugin import hookimpl, ProviderSpec\n"
        "from batchmig.testing.testcloud import TestcloudProvider\n"
        "@hookimpl\n"
        "def batchmig_register_providers(registry):\n"
        "    registry.add(ProviderSpec('good-cloud', TestcloudProvider()))\n"
    ))
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load_registry()
    assert "good-cloud" in registry.providers
    assert str(registry.origins["provider:good-cloud"]) == "goodplug 9.9"
    sys.modules.pop("goodplug_mod", None)


def test_plan_checks_from_plugins_are_collected(plan_file) -> None:
    from batchmig.errors import PlanError
    from batchmig.plan.loader import load_plan

    class NoDbNamedProd:
        @hookimpl
        def batchmig_check_plan(self, plan):
            return [plan.locate(f"instances.{i.index}.id", "no instance may be called prod")
                    for i in plan.instances if i.id == "prod"]

    registry = load_registry([TestcloudPlugin(), NoDbNamedProd()], entry_points=False)
    path = plan_file("version: 1\nproviders: {tc: {type: testcloud, region: r}}\n"
                     "instances: [{id: ok, provider: tc}, {id: prod, provider: tc}]\n")
    with pytest.raises(PlanError) as info:
        load_plan(str(path), registry)
    assert [str(p).split(" ", 1)[1] for p in info.value.problems] == ["instances.1.id: no instance may be called prod"]
    assert info.value.problems[0].line == 3


# ------------------------------------------------------------- strict registration


class Misspelt:
    @hookimpl
    def batchmig_register_provider(self, registry) -> None:  # the hook is batchmig_register_providers
        registry.add(ProviderSpec("misspelt", TestcloudProvider()))


def test_a_misspelt_hook_is_an_error_naming_the_plugin_and_the_right_hook() -> None:
    with pytest.raises(PluginError, match=r"Misspelt .*batchmig_register_provider, which is not a batchmig hook; "
                                          r"did you mean batchmig_register_providers\?"):
        load_registry([Misspelt()], entry_points=False)


class Unmarked:
    def batchmig_register_providers(self, registry) -> None:
        registry.add(ProviderSpec("unmarked", TestcloudProvider()))


def test_a_hook_without_the_marker_is_an_error() -> None:
    with pytest.raises(PluginError, match="batchmig_register_providers is not marked @hookimpl"):
        load_registry([Unmarked()], entry_points=False)


@pytest.mark.parametrize("name", ["Acme_SQL Server!", "Acme", "acme--sql", "-acme", "acme-", "", "1acme"])
def test_provider_names_must_be_kebab_case(name: str) -> None:
    class BadName:
        @hookimpl
        def batchmig_register_providers(self, registry) -> None:
            registry.add(ProviderSpec(name, TestcloudProvider()))

    with pytest.raises(PluginError, match="lowercase kebab-case"):
        load_registry([BadName()], entry_points=False)


class AsyncHook:
    @hookimpl
    async def batchmig_register_emulators(self, registry) -> None:
        raise AssertionError("never awaited")


def test_an_async_hook_is_refused() -> None:
    with pytest.raises(PluginError, match="hook batchmig_register_emulators is async"):
        load_registry([AsyncHook()], entry_points=False)


def test_registration_calls_are_visible_to_pluggy_monitoring(monkeypatch) -> None:
    from batchmig import registry as registry_module

    seen: list[str] = []
    original = registry_module.new_plugin_manager

    def monitored():
        manager = original()
        manager.add_hookcall_monitoring(lambda name, impls, kwargs: seen.append(name), lambda *a: None)
        return manager

    monkeypatch.setattr(registry_module, "new_plugin_manager", monitored)
    load_registry([TestcloudPlugin()], entry_points=False)
    assert seen == ["batchmig_register_providers", "batchmig_register_emulators"]


class FromTheFuture:
    BATCHMIG_PLUGIN_API = (7, 8)

    @hookimpl
    def batchmig_register_providers(self, registry) -> None:
        registry.add(ProviderSpec("future-cloud", TestcloudProvider()))


def test_a_plugin_for_another_plugin_api_is_refused_with_a_clear_message() -> None:
    with pytest.raises(PluginError, match=r"FromTheFuture .*supports batchmig plugin API 7, 8, but batchmig "
                                          r"\S+ speaks plugin API 1"):
        load_registry([FromTheFuture()], entry_points=False)


def test_a_malformed_api_declaration_is_refused() -> None:
    class Sloppy:
        BATCHMIG_PLUGIN_API = "1"

    with pytest.raises(PluginError, match="must be a tuple of ints"):
        load_registry([Sloppy()], entry_points=False)


def test_the_registry_is_typed_at_registration() -> None:
    class WrongRecord:
        @hookimpl
        def batchmig_register_providers(self, registry) -> None:
            registry.add({"name": "dicts-are-not-specs"})

    with pytest.raises(PluginError, match="expected a ProviderSpec"):
        load_registry([WrongRecord()], entry_points=False)


def test_a_misspelt_hook_in_an_installed_distribution_names_it(tmp_path: Path, monkeypatch) -> None:
    make_distribution(tmp_path, "typoplug", (
        "from batchmig.plugin import hookimpl\n"
        "@hookimpl\n"
        "def batchmig_register_emulator(registry):\n"
        "    pass\n"
    ))
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(PluginError, match=r"typoplug 9\.9 implements batchmig_register_emulator"):
        load_registry()
    sys.modules.pop("typoplug_mod", None)


def test_a_runner_starts_without_loading_the_sandbox_server() -> None:
    """The CLI, the runner and every installed plugin's registration load no aiohttp (the
    emulators' server, the webhooks' client): only `--sandbox` and `notify:` need it."""
    script = ("import sys, batchmig.cli, batchmig.operations\n"
              "from batchmig.registry import load_registry\n"
              "registry = load_registry()\n"
              "assert {'tencent-sqlserver', 'huawei-drs', 'alibaba-rds-sqlserver'} <= set(registry.emulators)\n"
              "print(sorted(name for name in sys.modules if name.split('.')[0] == 'aiohttp'))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
