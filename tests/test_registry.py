"""Plugin loading: entry points, clashes named by distribution, broken plugins reported."""

from __future__ import annotations

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
