"""Hypothesis strategies for plans that must be refused (campaign 3).

Every strategy here builds an input that is invalid *by construction* — a valid
plan with at least one guaranteed mistake, or bytes no plan can be — so the
property under test can be strict: exit code 2, a located message, nothing else.
The starting point is a real mixed fleet (one instance of every kind in
``fleet.KINDS``), so mistakes land inside real provider settings too.
"""

from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass
from typing import Any

import yaml
from hypothesis import strategies as st

from .fleet import KINDS, fleet_plan

BASE: dict[str, Any] = yaml.safe_load(fleet_plan(len(KINDS), name="hostile"))
PROVIDER_NAMES = list(BASE["providers"])

# Text with the awkward parts of Unicode: control characters, surrogate-free astral
# characters, right-to-left marks, NUL. Keys made of it are never valid keys.
nasty_text = st.text(
    alphabet=st.characters(blacklist_categories=["Cs"], min_codepoint=0, max_codepoint=0x10FFFF),
    min_size=1, max_size=40,
)
huge_numbers = st.sampled_from([10**30, -(10**30), 2**63, -(2**63) - 1, 10**18, -1, 0, float("inf"),
                                float("-inf"), float("nan"), 1e308, -1e-308])


def nested(depth: int, leaf: Any) -> Any:
    value = leaf
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


not_a_string = st.one_of(st.integers(), st.floats(allow_nan=False), st.lists(st.integers(), max_size=3),
                         st.dictionaries(st.text(max_size=5), st.integers(), min_size=1, max_size=3),
                         st.none(), st.booleans(), huge_numbers)
not_a_positive_int = st.one_of(huge_numbers.filter(lambda v: not (isinstance(v, int) and 0 < v <= 1000)),
                               st.integers(max_value=0), st.integers(min_value=10**6),
                               nasty_text, st.lists(st.integers(), min_size=1, max_size=3),
                               st.builds(nested, st.integers(2, 60), st.just(1)))
not_a_duration = st.one_of(st.sampled_from(["2 hours", "-5s", "0s", "forever", "1y", "99999999999999999999h",
                                            "", "5", "\x07"]),
                           st.lists(st.text(max_size=3), max_size=2), st.integers(max_value=0), huge_numbers)


def _instance_index(kind_prefix: str) -> int:
    return next(i for i, inst in enumerate(BASE["instances"]) if inst["id"].startswith(kind_prefix))


def _set(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target = doc
    for part in path[:-1]:
        target = target[part]
    target[path[-1]] = value


def _delete(doc: dict[str, Any], path: tuple[Any, ...]) -> None:
    target = doc
    for part in path[:-1]:
        target = target[part]
    del target[path[-1]]


# (path, strategy of values that are wrong there)
WRONG_VALUES: list[tuple[tuple[Any, ...], st.SearchStrategy[Any]]] = [
    (("version",), st.one_of(not_a_string, nasty_text).filter(lambda v: v is not True and v != 1)),
    (("providers", "tencent-dts", "region"), not_a_string.filter(lambda v: v is not None)),
    (("run", "max_concurrency"), not_a_positive_int),
    (("run", "call_timeout"), not_a_duration),
    (("waves", 0, "max_concurrency"), not_a_positive_int),
    (("defaults", "timeouts", "default"), not_a_duration),
    (("instances",), st.one_of(nasty_text, huge_numbers, st.dictionaries(nasty_text, st.integers(), min_size=1))),
    (("instances", _instance_index("dts-incremental"), "settings", "migrate_type"),
     st.one_of(nasty_text.filter(lambda v: v not in ("structure", "full", "full-incremental")), not_a_string)),
    (("instances", _instance_index("tc-full-"), "settings", "instance_id"),
     st.one_of(nasty_text.filter(lambda v: not v.startswith("mssql-")), not_a_string.filter(lambda v: v is not None))),
    (("instances", _instance_index("drs-obs"), "settings", "files"),
     st.one_of(nasty_text, huge_numbers, st.builds(nested, st.integers(3, 150), nasty_text))),
    (("instances", 0, "id"), st.one_of(st.lists(st.integers(), max_size=2), st.dictionaries(nasty_text, st.none(),
                                                                                            min_size=1))),
    (("instances", 0, "cutover"), nasty_text.filter(lambda v: v not in ("auto", "manual"))),
]
REQUIRED: list[tuple[Any, ...]] = [
    ("version",), ("instances",), ("providers",), ("instances", 0, "id"),
    ("instances", _instance_index("drs-obs"), "settings", "target_instance_id"),
    ("instances", _instance_index("tc-full-"), "settings", "instance_id"),
    ("providers", "huawei-drs", "region"),
]
KNOWN_PLACES: list[tuple[Any, ...]] = [(), ("run",), ("providers", "tencent-sqlserver"), ("instances", 0),
                                       ("instances", _instance_index("drs-chain"), "settings"),
                                       ("defaults", "settings", "tencent-dts", "job", "source")]


@st.composite
def broken_document(draw: st.DrawFn) -> tuple[dict[str, Any], list[str]]:
    """A deep copy of the base plan with one to three guaranteed mistakes; returns (doc, what was done)."""
    doc = copy.deepcopy(BASE)
    done: list[str] = []
    for _ in range(draw(st.integers(1, 3))):
        family = draw(st.sampled_from(["wrong", "missing", "unknown"]))
        try:
            if family == "wrong":
                path, values = draw(st.sampled_from(WRONG_VALUES))
                _set(doc, path, draw(values))
                done.append(f"wrong {'.'.join(map(str, path))}")
            elif family == "missing":
                path = draw(st.sampled_from(REQUIRED))
                _delete(doc, path)
                done.append(f"missing {'.'.join(map(str, path))}")
            else:
                place = draw(st.sampled_from(KNOWN_PLACES))
                target: Any = doc
                for part in place:
                    target = target[part]
                key = "x-" + draw(nasty_text)  # never a real key
                target[key] = draw(st.one_of(nasty_text, huge_numbers, st.builds(nested, st.integers(0, 30),
                                                                                 st.none())))
                done.append(f"unknown key under {'.'.join(map(str, place)) or 'top'}")
        except (KeyError, IndexError, TypeError):  # an earlier mistake removed the place: still broken
            done.append(f"{family} skipped")
    return doc, done


def dump(doc: Any, style: str) -> str:
    if style == "json":
        return json.dumps(doc, ensure_ascii=False)
    return yaml.safe_dump(doc, allow_unicode=style == "yaml-unicode", sort_keys=False, width=120)


ALIAS_BOMB = "".join(
    [f"bomb{i}: &bomb{i} [{', '.join([f'*bomb{i - 1}'] * 9)}]\n" for i in range(1, 9)]
)

@st.composite
def hostile_file(draw: st.DrawFn) -> tuple[bytes, list[str]]:
    """File content no plan loader may accept, with a description for failure messages."""
    doc, done = draw(broken_document())
    style = draw(st.sampled_from(["yaml", "yaml-unicode", "json"]))
    data = dump(doc, style).encode("utf-8", "surrogatepass")
    raw = draw(st.sampled_from(["none", "none", "non-utf8", "control", "bomb", "deep", "bom"]))
    if raw != "none":
        at = draw(st.integers(0, len(data)))
        if raw == "non-utf8":
            data = data[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x80\x80"])) + data[at:]
        elif raw == "control":
            char = draw(st.sampled_from([0, 1, 7, 8, 0x0B, 0x0C, 0x1B, 0x7F]))
            data = data[:at] + bytes([char]) + data[at:]
        elif raw == "bomb" and style != "json":
            data = b"bomb0: &bomb0 [x, x, x, x, x, x, x, x, x]\n" + ALIAS_BOMB.encode() + data
        elif raw == "deep":
            depth = draw(st.integers(101, 60_000))
            data += b"\nzz-deep: " + b"[" * depth + b"]" * depth + b"\n" if style != "json" else b""
        elif raw == "bom":
            data = b"\xef\xbb\xbf" + data
        done.append(raw)
    return data, done


# ------------------------------------------------------------ targeted mistakes
#
# Each case is the base fleet with plan-level mistakes and, on one instance, two or
# three mistakes at once; every mistake names the key path its problem must be
# reported at, so the campaign can check that *each* is reported, located at the
# line where that key is written. Values the YAML dumper cannot express (tags) are
# put in as raw text in place of a placeholder string.

LITERAL_SECRET = "hunter2-Lit3ral-S3cret"
UNSAFE_CHARACTERS = ("\x1b", "\x07", "\x9b", "\u202e", "\x00", "\u2028")


@dataclass(frozen=True)
class Mistake:
    category: str
    path: tuple[Any, ...]  # where the value goes (instance paths start after "instances", i)
    value: Any
    reported_at: str  # the key path (under the instance, for instance mistakes) the problem must name
    raw: str | None = None  # YAML text that replaces ``value`` (a tag)


def _raw(text: str) -> Any:
    return ("__raw__", text)


PLAN_MISTAKES: list[Mistake] = [
    Mistake("boolean-version", ("version",), True, "version"),
    Mistake("quoted-version", ("version",), "1", "version"),
    Mistake("boolean-number", ("run", "max_concurrency"), True, "run.max_concurrency"),
    Mistake("quoted-number", ("run", "max_concurrency"), "5", "run.max_concurrency"),
    Mistake("boolean-number", ("waves", 0, "max_concurrency"), False, "waves.0.max_concurrency"),
    Mistake("non-ascii-digits", ("run", "call_timeout"), "\u0665m", "run.call_timeout"),
    Mistake("non-ascii-digits", ("run", "retry", "max_delay"), "\uff13\uff10s", "run.retry.max_delay"),
    Mistake("non-ascii-digits", ("waves", 0, "failure_budget"), "\u0661\u0660%", "waves.0.failure_budget"),
    Mistake("endpoint-userinfo", ("providers", "tencent-dts", "endpoint"),
            f"https://admin:{LITERAL_SECRET}@dts.example.com", "providers.tencent-dts.endpoint"),
    Mistake("endpoint-userinfo", ("providers", "huawei-drs", "endpoint"),
            f"http://{LITERAL_SECRET}@127.0.0.1:8600", "providers.huawei-drs.endpoint"),
    Mistake("literal-secret", ("providers", "tencent-sqlserver", "credentials", "secret_key"), LITERAL_SECRET,
            "providers.tencent-sqlserver.credentials.secret_key"),
    Mistake("misspelt-rate-limit", ("providers", "tencent-sqlserver", "rate_limits", "CreateBackupMigratoin"), 5,
            "providers.tencent-sqlserver.rate_limits.CreateBackupMigratoin"),
    Mistake("misspelt-rate-limit", ("providers", "huawei-drs", "rate_limits", "CreateReplicationJobs"), 2,
            "providers.huawei-drs.rate_limits.CreateReplicationJobs"),
    Mistake("misspelt-rate-limit", ("providers", "tencent-dts", "rate_limits", "StartMigrationJob"), 2,
            "providers.tencent-dts.rate_limits.StartMigrationJob"),
    Mistake("terminal-escape", ("name",), "fleet\x1b[2J\x1b]0;pwned\x07", "name"),
    Mistake("terminal-escape", ("providers", "tencent-dts", "x-\x1b[31mred"), 1, "providers.tencent-dts.x-\x1b[31mred"),
    Mistake("binary-tag", ("run", "call_timeout"), _raw("!!binary NjBz"), "run.call_timeout"),
    Mistake("set-tag", ("defaults", "timeouts"), _raw("!!set {default: null}"), "defaults.timeouts"),
    Mistake("application-tag", ("run", "poll_interval"), _raw("!duration 5m"), "run.poll_interval"),
    Mistake("python-tag", ("name",), _raw("!!python/object:os.system echo"), "name"),
    Mistake("defaults-typo", ("defaults", "settings", "huawei-drs", "is_prechek"), True,
            "defaults.settings.huawei-drs.is_prechek"),
    Mistake("defaults-typo", ("defaults", "settings", "tencent-sqlserver", "scenaro"), "import",
            "defaults.settings.tencent-sqlserver.scenaro"),
]

INSTANCE_SLOTS: dict[str, list[Mistake]] = {
    "id": [
        Mistake("invalid-id", ("id",), "bad id!", "id"),
        Mistake("invalid-id", ("id",), "x\x1b[8m", "id"),
        Mistake("duplicate-id", ("id",), "tc-full-0000", "id"),
    ],
    "provider": [Mistake("unknown-provider", ("provider",), "tencent-sqlsrever", "provider")],
    "wave": [Mistake("unknown-wave", ("wave",), "mian", "wave")],
    "cutover": [Mistake("bad-enum", ("cutover",), "sometimes", "cutover"),
                Mistake("boolean-enum", ("cutover",), True, "cutover")],
    "tags": [Mistake("binary-tag", ("tags", "owner"), _raw("!!binary aGk="), "tags.owner"),
             Mistake("terminal-escape", ("tags", "\x1b[41mowner"), "x", "tags.\x1b[41mowner")],
    "settings": [
        Mistake("unknown-setting", ("settings", "colour"), "red", "settings.colour"),
        Mistake("terminal-escape", ("settings", "x\x9b31m\u202e"), 1, "settings.x\x9b31m\u202e"),
        Mistake("binary-tag", ("settings", "blob"), _raw("!!binary AAECAw=="), "settings.blob"),
    ],
    "timeouts": [Mistake("unknown-step", ("timeouts", "wiat-full"), "1h", "timeouts.wiat-full"),
                 Mistake("non-ascii-digits", ("timeouts", "default"), "\u0663h", "timeouts.default")],
}
# Settings that only one kind of instance has: (kind prefix, mistake)
KIND_SETTINGS: list[tuple[str, Mistake]] = [
    ("tc-full-", Mistake("internal-name", ("settings", "import_"), {"backup_file": "x"}, "settings.import_")),
    ("drs-obs", Mistake("wrong-type", ("settings", "is_precheck"), "yes", "settings.is_precheck")),
    ("dts-full", Mistake("boolean-number", ("settings", "job", "source", "port"), True, "settings.job.source.port")),
]
# A provider mistake leaves nothing to check the settings and step names against; the
# step names of an instance whose settings are wrong are those of its provider's
# other instances, so its provider's defaults stay valid when it has timeouts.
NEEDS_PROVIDER = {"settings", "timeouts"}


@dataclass(frozen=True)
class HostileCase:
    text: str
    expected: tuple[str, ...]  # key paths that must each be reported, located
    instance: int  # the instance that has two or more mistakes
    categories: tuple[str, ...]


def _place(doc: dict[str, Any], path: tuple[Any, ...], value: Any) -> None:
    target: Any = doc
    for part in path[:-1]:
        target = target.setdefault(part, {}) if isinstance(target, dict) else target[part]
    target[path[-1]] = value


def targeted_case(rng: random.Random) -> HostileCase:
    doc = copy.deepcopy(BASE)
    raws: dict[str, str] = {}
    expected: list[str] = []
    categories: list[str] = []

    def apply(mistake: Mistake, prefix: tuple[Any, ...] = ()) -> None:
        value = mistake.value
        if isinstance(value, tuple) and value[:1] == ("__raw__",):
            placeholder = f"RAW-{len(raws)}-VALUE"
            raws[placeholder] = value[1]
            value = placeholder
        _place(doc, prefix + mistake.path, value)
        expected.append(".".join(map(str, prefix[:2])) + "." + mistake.reported_at if prefix else mistake.reported_at)
        categories.append(mistake.category)

    index = rng.randrange(1, len(doc["instances"]))
    kind = doc["instances"][index]["id"]
    slots = rng.sample(sorted(INSTANCE_SLOTS), rng.randint(2, 3))
    if "provider" in slots:
        slots = [s for s in slots if s not in NEEDS_PROVIDER] or ["provider", "id"]
        if len(slots) < 2:
            slots.append(rng.choice(["id", "wave", "cutover", "tags"]))
    chosen = [rng.choice(INSTANCE_SLOTS[slot]) for slot in slots]
    if "settings" not in slots and "provider" not in slots and rng.random() < 0.5:
        fitting = [m for prefix, m in KIND_SETTINGS if kind.startswith(prefix)]
        chosen += fitting[:1]
    if any(m.reported_at == "timeouts.default" for m in chosen) and any(m.category == "unknown-step" for m in chosen):
        chosen = [m for m in chosen if m.category != "unknown-step"]
    plan_mistakes = PLAN_MISTAKES
    if "timeouts" in slots:  # step names come from valid settings: keep the provider's defaults valid
        plan_mistakes = [m for m in PLAN_MISTAKES if m.category != "defaults-typo"]
    for mistake in rng.sample(plan_mistakes, rng.randint(0, 2)):
        apply(mistake)
    for mistake in chosen:
        apply(mistake, ("instances", index))
    text = yaml.safe_dump(doc, sort_keys=False, allow_unicode=rng.random() < 0.5, width=120)
    for placeholder, raw in raws.items():
        text = text.replace(placeholder, raw)
    return HostileCase(text, tuple(expected), index, tuple(categories))


def targeted_cases(count: int, seed: int) -> list[HostileCase]:
    rng = random.Random(seed)
    return [targeted_case(rng) for _ in range(count)]
