"""Plan loading: every problem reported, located, with hints; hostile input handled."""

from __future__ import annotations

import gc
import json
import os
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from batchmig.errors import PlanError
from batchmig.plan import loader, source
from batchmig.plan.loader import load_plan
from batchmig.registry import Registry

HERE = Path(__file__).parent

GOOD = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1, credentials: {key_id: "${env:K}", secret: "${env:S}"}}
defaults:
  provider: tc
  settings:
    testcloud: {duration: 30}
  timeouts: {wait-job: 10m}
waves:
  - {name: first, canary: 1, failure_budget: 0}
  - {name: rest, max_concurrency: 5, failure_budget: 10%, cutover: manual}
instances:
  - {id: a, wave: first}
  - {id: b, wave: rest, settings: {incremental: true}}
  - {id: c, wave: rest, cutover: auto, timeouts: {default: 1h}}
"""


def problems_of(path: Path, registry: Registry) -> list[str]:
    with pytest.raises(PlanError) as info:
        load_plan(str(path), registry)
    return [str(p) for p in info.value.problems]


def test_a_valid_plan_resolves_defaults_waves_and_cutover(plan_file, registry: Registry) -> None:
    plan = load_plan(str(plan_file(GOOD)), registry)
    assert [w.name for w in plan.waves] == ["first", "rest"]
    assert plan.waves[1].instances == ("b", "c")
    b, c = plan.instance("b"), plan.instance("c")
    assert b.settings.duration == 30 and b.settings.incremental
    assert b.cutover == "manual" and c.cutover == "auto"
    assert b.timeout("wait-job") == 600 and c.timeout("wait-job") == 600 and c.timeout("start-job") == 3600
    assert plan.waves[1].failure_budget.allows(0, 2) and not plan.waves[1].failure_budget.allows(1, 2)


def test_instances_without_settings_of_their_own_share_one_model(plan_file, registry: Registry) -> None:
    """Their settings are the same frozen model (not one copy per instance); an instance with
    settings of its own has its own; the plan keeps no document of its instances."""
    plan = load_plan(str(plan_file(GOOD.replace("  - {id: c,", "  - {id: d, wave: first}\n  - {id: c,"))), registry)
    a, b, c, d = (plan.instance(name) for name in "abcd")
    assert a.settings is c.settings is d.settings and a.settings.duration == 30
    assert b.settings is not a.settings and b.settings.incremental
    assert plan.document.instances == [] and [i.id for i in plan.instances] == ["a", "b", "d", "c"]


def test_only_a_large_load_is_left_out_of_the_cycle_collector(plan_file, registry: Registry,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    path = plan_file(GOOD)
    frozen = gc.get_freeze_count()
    load_plan(str(path), registry)
    assert gc.get_freeze_count() == frozen and gc.isenabled(), "a small plan is collected as usual"
    monkeypatch.setattr(loader, "FREEZE_AFTER_ALLOCATIONS", 0)
    try:
        plan = load_plan(str(path), registry)
        assert gc.get_freeze_count() > frozen and gc.isenabled()
        assert [inst.id for inst in plan.instances] == ["a", "b", "c"]
    finally:
        gc.unfreeze()


def test_a_dozen_mistakes_are_all_reported_with_lines(registry: Registry) -> None:
    found = problems_of(HERE / "bad_plan.yaml", registry)
    expected = [
        ":5:5 providers.tc.type: unknown provider 'testclod'; did you mean 'testcloud'?",
        ":11:7 providers.tc2.credentials.key_id: a literal credential is not allowed",
        ":13:5 providers.tc2.rate_limts: unknown key; did you mean 'rate_limits'?",
        ":16:3 defaults.wave: unknown wave 'mian'; did you mean 'main'?",
        ":17:29 defaults.timeouts.default: 'forever' is not a duration",
        ":20:5 waves.0.max_concurency: unknown key; did you mean 'max_concurrency'?",
        ":21:5 waves.0.failure_budget: '150%' is not a count or a percentage",
        ":26:16 instances.0.settings.duration:",
        ":26:48 instances.0.settings.colour: unknown key",
        ":27:5 instances.1.id: duplicate instance id 'db-1'",
        ":29:5 instances.2.id: an id starts with a letter or digit",
        ":30:5 instances.2.provider: unknown provider configuration 'nowhere'",
        ":33:5 instances.3.provider: duplicate key (first defined on line 32)",
        ":34:5 instances.3.cutover:",
    ]
    assert len(found) == len(expected)
    for line, fragment in zip(found, expected, strict=True):
        assert fragment in line, line
        assert line.startswith(str(HERE / "bad_plan.yaml") + ":")


def test_a_literal_secret_is_never_echoed(registry: Registry) -> None:
    found = "\n".join(problems_of(HERE / "bad_plan.yaml", registry))
    assert "AKIDREALSECRETVALUE123" not in found


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "the plan file is empty"),
        ("- just\n- a list\n", "a plan is a mapping"),
        ("version: 1\nproviders: {\n", "not valid YAML"),
        ("version: 2\nproviders: {tc: {type: testcloud, region: r}}\ninstances: [{id: a, provider: tc}]\n",
         "version: the format version is the number 1"),
        ("version: 1\nproviders: {tc: {type: testcloud, region: r}}\ninstances: []\n", "instances:"),
        ("version: 1\nprovider: {}\n", "provider: unknown key; did you mean 'providers'?"),
        ("version: 1\nproviders: {tc: {type: testcloud, region: r}}\ninstances: [{id: a}]\n", "no provider"),
        ("version: 1\nproviders: {tc: {type: testcloud, region: r, credentials: {profile: p, secret: '${env:X}'}}}\n"
         "instances: [{id: a, provider: tc}]\n", "either profile"),
        ("version: 1\nproviders: {tc: {type: testcloud, region: r}}\n"
         "instances: [{id: a, provider: tc, timeouts: {wait-jbo: 5m}}]\n", "did you mean 'wait-job'"),
        ("version: 1\nproviders: {tc: {type: testcloud, region: r}}\n"
         "instances: [{id: a, provider: tc, settings: {fail: true, reject: true}}]\n", "settings.reject: a rejected"),
    ],
)
def test_mistakes_are_reported(plan_file, registry: Registry, text: str, fragment: str) -> None:
    found = "\n".join(problems_of(plan_file(text), registry))
    assert fragment in found


def test_missing_file_directory_and_binary(tmp_path: Path, registry: Registry) -> None:
    assert "no such file" in problems_of(tmp_path / "nope.yaml", registry)[0]
    assert "directory" in problems_of(tmp_path, registry)[0]
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"version: 1\nname: \xff\xfe\n")
    assert ":2:7" in problems_of(binary, registry)[0] and "UTF-8" in problems_of(binary, registry)[0]


def test_alias_bomb_is_refused_quickly(tmp_path: Path, registry: Registry) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\nversion: 1\n")
    assert "expands to more than" in problems_of(path, registry)[0]


def test_deep_nesting_is_refused(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "deep.yaml"
    path.write_text("version: 1\nname: " + "[" * 300 + "]" * 300 + "\n")
    assert problems_of(path, registry)


def test_anchors_and_merge_keys_work(plan_file, registry: Registry) -> None:
    path = plan_file("""\
        version: 1
        providers: {tc: {type: testcloud, region: eu-1}}
        defaults: {provider: tc}
        instances:
          - {id: a, settings: &s {duration: 5}}
          - {id: b, settings: {<<: *s, fail: true}}
        """)
    plan = load_plan(str(path), registry)
    assert plan.instance("a").settings.duration == 5
    assert plan.instance("b").settings.duration == 5 and plan.instance("b").settings.fail


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_arbitrary_bytes_never_crash(tmp_path: Path, registry: Registry, data: bytes) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_bytes(data)
    with pytest.raises(PlanError) as info:
        load_plan(str(path), registry)
    for problem in info.value.problems:
        assert problem.line >= 1 and problem.column >= 1


scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**12, 10**12), st.floats(allow_nan=False),
                    st.text(max_size=20))


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    st.fixed_dictionaries(
        {"version": scalars, "providers": st.dictionaries(st.text(max_size=8), scalars | st.dictionaries(
            st.sampled_from(["type", "region", "endpoint", "rate_limits", "credentials", "x"]), scalars), max_size=3),
         "instances": st.lists(st.dictionaries(st.sampled_from(["id", "provider", "wave", "settings", "cutover"]),
                                               scalars), max_size=4)}
    )
)
def test_wrong_types_give_located_problems(tmp_path: Path, registry: Registry, document: dict) -> None:
    path = tmp_path / "typed.yaml"
    path.write_text(json.dumps(document))
    with pytest.raises(PlanError) as info:
        load_plan(str(path), registry)
    assert info.value.problems
    assert all(p.file == str(path) for p in info.value.problems)


# Plain (unquoted) words that PyYAML resolves to every kind of value, and text that only looks close
PLAIN_WORDS = ["true", "True", "yes", "no", "On", "off", "n", "y", "null", "Null", "~", "0", "012", "0x1f", "0o17",
               "1_000", "1e3", "-1.5", "+7", ".inf", "-.inf", "2024-01-31", "full/", "0000in04", "1.2.3",
               "tencent-sqlserver", "name", "files", "obs_path", "often", "nothing", "db1_full.bak", "x"]
plain_values = st.recursive(
    st.sampled_from(PLAIN_WORDS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(PLAIN_WORDS), inner, max_size=3),
    max_leaves=12,
)


def _flow(value: object) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key}: {_flow(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(item) for item in value) + "]"
    return str(value)


def _as_plan_keys(data: object) -> object:
    """PyYAML's data with its mapping keys spelled as a plan's key paths spell them (``True`` -> ``true``)."""
    if isinstance(data, dict):
        return {source._key_text(key): _as_plan_keys(item) for key, item in data.items()}
    if isinstance(data, list):
        return [_as_plan_keys(item) for item in data]
    return data


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(PLAIN_WORDS), plain_values, min_size=1, max_size=5))
def test_plain_words_read_as_pyyaml_reads_them(tmp_path: Path, document: dict[str, object]) -> None:
    """The reader's own handling of plain scalars, keys and nested values (its fast paths
    included) gives what PyYAML's safe loader gives, for a block and a flow document."""
    assume(not any(_keys_collide(list(item)) for item in _walk(document) if isinstance(item, dict)))
    path = tmp_path / "plain.yaml"
    for text in ("".join(f"{key}: {_flow(item)}\n" for key, item in document.items()), _flow(document) + "\n"):
        path.write_text(text)
        _raw, data, _locator, problems = source.read_plan_source(str(path))
        assert problems == []
        assert data == _as_plan_keys(yaml.safe_load(text))


def _keys_collide(words: list[str]) -> bool:
    """Whether two plain words are one key to the plan ("yes" and "On") or to PyYAML's dict (0 and "no")."""
    keys = [yaml.safe_load(word) for word in words]
    return len(set(keys)) < len(words) or len({source._key_text(key) for key in keys}) < len(words)


def _walk(data: object) -> list[object]:
    """``data`` and every value nested in it."""
    items = [data]
    for item in data.values() if isinstance(data, dict) else data if isinstance(data, list) else ():
        items += _walk(item)
    return items


def test_ten_thousand_instances_validate(tmp_path: Path, registry: Registry) -> None:
    path = tmp_path / "big.yaml"
    lines = ["version: 1", "providers: {tc: {type: testcloud, region: eu-1}}", "defaults: {provider: tc}",
             "instances:"]
    lines += [f"  - {{id: db-{i:05d}, settings: {{duration: {i % 50 + 1}}}}}" for i in range(10_000)]
    path.write_text("\n".join(lines) + "\n")
    plan = load_plan(str(path), registry)
    assert len(plan.instances) == 10_000
    assert os.path.getsize(path) > 300_000
