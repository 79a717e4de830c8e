"""Load and validate a plan: every problem, located, with did-you-mean hints.

Validation runs in layers and collects rather than stops, so an operator fixes a
plan in one pass: YAML (syntax, duplicate keys) → the plan document's own model →
references between sections (providers, waves, duplicate ids, secrets) → each
provider's settings model and ``check`` → plugins' whole-plan checks.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import typing
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from batchmig.errors import PlanError, PlanProblem
from batchmig.plan.model import (
    DEFAULT_WAVE,
    DefaultsDoc,
    FailureBudget,
    InstanceDoc,
    Plan,
    PlanDocument,
    PlannedInstance,
    ProviderConfigDoc,
    RunDoc,
    Wave,
    WaveDoc,
    is_glob,
)
from batchmig.plan.source import Locator, read_plan_source
from batchmig.plugin import Instance, Provider
from batchmig.registry import Registry

SECRET_REFERENCE = re.compile(r"^\$\{(env|file):([^}]+)\}$")


class _Problems:
    def __init__(self, file: str, locator: Locator) -> None:
        self.file = file
        self.locator = locator
        self.items: list[PlanProblem] = []

    def add(self, path: str, message: str) -> None:
        line, column = self.locator.position(path)
        self.items.append(PlanProblem(self.file, line, column, path, message))

    def extend_from_validation(self, error: ValidationError, prefix: str, model: type[BaseModel]) -> None:
        for item in error.errors(include_url=False, include_input=False):
            loc = [str(part) for part in item["loc"] if not _is_union_tag(part)]
            path = ".".join(filter(None, [prefix, *loc]))
            message = _message(item)
            if item["type"] == "extra_forbidden" and loc:
                allowed = _allowed_keys(model, loc[:-1])
                hint = _did_you_mean(loc[-1], allowed)
                message = f"unknown key{hint}" if hint else f"unknown key; allowed here: {', '.join(sorted(allowed))}"
            self.add(path, message)


def _is_union_tag(part: object) -> bool:
    return isinstance(part, str) and ("[" in part or part.startswith("function-"))


def _message(item: Mapping[str, Any]) -> str:
    if item["type"] == "missing":
        return "required key is missing"
    message = str(item["msg"])
    return message.removeprefix("Value error, ")


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {matches[0]!r}?" if matches else ""


def _allowed_keys(model: type[BaseModel], loc: list[str]) -> set[str]:
    """The keys a model accepts at ``loc`` (a path of field names, keys and indexes)."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = annotation.model_fields.get(part)
            if field is None:
                return set()
            annotation = field.annotation
            continue
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin in (list, tuple) and args:
            annotation = args[0]
        elif origin is dict and len(args) == 2:
            annotation = args[1]
        else:
            return set()
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return set(annotation.model_fields)
    return set()


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
            options = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(options) != 1:
                return annotation
            annotation = options[0]
        else:
            return annotation


def _deep_merge(base: Mapping[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def load_plan(path: str, registry: Registry) -> Plan:
    """Read, parse and validate the plan at ``path``; raise ``PlanError`` with every problem."""
    raw, data, locator, source_problems = read_plan_source(path)
    problems = _Problems(path, locator)
    problems.items.extend(source_problems)
    if data is None:
        if not problems.items:  # a document that is only `~` or `null`: valid YAML, no plan
            problems.add("", "the plan file has no content (the YAML document is null)")
        raise PlanError(problems.items)
    if not isinstance(data, dict):
        problems.add("", "a plan is a mapping with version, providers and instances")
        raise PlanError(problems.items)
    document, instance_positions, wave_positions = _validate_document(data, problems)
    plan = _resolve(path, raw, document, registry, problems, locator, instance_positions, wave_positions)
    if problems.items:
        raise PlanError(problems.items)
    problems.items.extend(registry.check_plan(plan))
    if problems.items:
        raise PlanError(problems.items)
    return plan


def _validate_document(data: dict[str, Any], problems: _Problems) -> tuple[PlanDocument, list[int], list[int]]:
    """Validate the document; on errors, report them all and keep the valid entries.

    A mistake in one instance must not hide the checks that need the others
    (references, duplicate ids, provider settings), so after reporting, each entry is
    validated on its own and the valid ones go on, with their positions in the file.
    """
    instances = data.get("instances")
    waves = data.get("waves")
    try:
        document = PlanDocument.model_validate(data)
        return document, list(range(len(document.instances))), list(range(len(document.waves)))
    except ValidationError as exc:
        problems.extend_from_validation(exc, "", PlanDocument)
    providers = data.get("providers")
    if not isinstance(providers, dict):
        providers = {}
    kept_instances = _valid_entries(InstanceDoc, instances)
    kept_waves = _valid_entries(WaveDoc, waves)
    document = PlanDocument.model_construct(
        version=1,
        providers={name: v for name, entry in providers.items() if (v := _valid(ProviderConfigDoc, entry))},
        defaults=_valid(DefaultsDoc, data.get("defaults", {})) or DefaultsDoc(),
        run=_valid(RunDoc, data.get("run", {})) or RunDoc(),
        waves=[wave for _, wave in kept_waves],
        instances=[inst for _, inst in kept_instances],
    )
    return document, [i for i, _ in kept_instances], [i for i, _ in kept_waves]


def _valid(model: type[BaseModel], value: Any) -> Any:
    """``value`` validated, without the keys that have errors (already reported), or None."""
    for _ in range(2):
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            if not isinstance(value, dict):
                return None
            bad = {str(e["loc"][0]) for e in exc.errors() if e["loc"]}
            value = {k: v for k, v in value.items() if k not in bad}
    return None


def _valid_entries(model: type[BaseModel], entries: Any) -> list[tuple[int, Any]]:
    if not isinstance(entries, list):
        return []
    return [(i, v) for i, entry in enumerate(entries) if (v := _valid(model, entry)) is not None]


def _resolve(
    path: str,
    raw: bytes,
    doc: PlanDocument,
    registry: Registry,
    problems: _Problems,
    locator: Locator,
    instance_positions: list[int],
    wave_positions: list[int],
) -> Plan:
    provider_types: dict[str, str] = {}
    options: dict[str, Any] = {}
    for name, config in doc.providers.items():
        where = f"providers.{name}"
        kind = config.type or name
        if kind not in registry.providers:
            hint = _did_you_mean(kind, registry.providers)
            installed = ", ".join(sorted(registry.providers)) or "none"
            problems.add(
                f"{where}.type" if config.type else where,
                f"unknown provider {kind!r}{hint}" + ("" if hint else f" (installed: {installed})"),
            )
            continue
        provider_types[name] = kind
        provider = registry.provider(kind)
        _check_credentials(config.credentials, f"{where}.credentials", problems)
        options[name] = _validate_options(provider, config.options, f"{where}.options", problems)

    wave_names = [wave.name for wave in doc.waves]
    for index, name in enumerate(wave_names):
        if name in wave_names[:index]:
            problems.add(f"waves.{wave_positions[index]}.name", f"duplicate wave name {name!r}")
    if doc.defaults.provider is not None and doc.defaults.provider not in doc.providers:
        problems.add("defaults.provider", _unknown("provider configuration", doc.defaults.provider, doc.providers))
    if doc.defaults.wave is not None and doc.defaults.wave not in wave_names:
        problems.add("defaults.wave", _unknown("wave", doc.defaults.wave, wave_names))
    for key in doc.defaults.settings:
        if key not in doc.providers and key not in registry.providers:
            problems.add(f"defaults.settings.{key}", _unknown("provider or provider configuration", key,
                                                              [*doc.providers, *registry.providers]))

    wave_by_name = {wave.name: wave for wave in doc.waves}
    members: dict[str, list[str]] = {name: [] for name in wave_names} or {DEFAULT_WAVE: []}
    first_seen: dict[str, int] = {}
    instances: list[PlannedInstance] = []
    step_names: dict[str, set[str]] = {}
    for position, inst in zip(instance_positions, doc.instances, strict=True):
        where = f"instances.{position}"
        if inst.id in first_seen:
            problems.add(f"{where}.id", f"duplicate instance id {inst.id!r} (first at instances.{first_seen[inst.id]})")
            continue
        first_seen[inst.id] = position
        config_name = inst.provider or doc.defaults.provider
        if config_name is None:
            problems.add(where, "no provider: set provider: here or defaults.provider")
            continue
        if config_name not in doc.providers:
            problems.add(f"{where}.provider", _unknown("provider configuration", config_name, doc.providers))
            continue
        if config_name not in provider_types:
            continue  # its provider is unknown; reported above
        kind = provider_types[config_name]
        wave_name: str | None = inst.wave or doc.defaults.wave
        if doc.waves:
            if wave_name is None:
                problems.add(where, "no wave: set wave: here or defaults.wave")
                continue
            if wave_name not in wave_by_name:
                problems.add(f"{where}.wave", _unknown("wave", wave_name, wave_names))
                continue
        elif wave_name is not None:
            problems.add(f"{where}.wave", "the plan has no waves: section")
            continue
        wave_name = wave_name or DEFAULT_WAVE
        wave_doc = wave_by_name.get(wave_name)
        cutover = inst.cutover or (wave_doc.cutover if wave_doc else None) or doc.defaults.cutover or "auto"
        provider = registry.provider(kind)
        merged = _deep_merge(
            _deep_merge(doc.defaults.settings.get(kind, {}), doc.defaults.settings.get(config_name, {})),
            inst.settings,
        )
        settings = _validate_settings(provider, merged, f"{where}.settings", problems)
        if settings is None:
            continue
        planned = PlannedInstance(
            index=len(instances),
            id=inst.id,
            provider=kind,
            connection=config_name,
            wave=wave_name,
            cutover=cutover,
            timeouts={**doc.defaults.timeouts, **inst.timeouts},
            tags=inst.tags,
            settings=settings,
        )
        view = Instance(inst.id, kind, config_name, settings, cutover)
        for rel_path, message in provider.check(view):
            problems.add(f"{where}.settings.{rel_path}".rstrip("."), message)
        if inst.timeouts or doc.defaults.timeouts:
            names = {step.name for step in provider.steps(view)}
            step_names.setdefault(kind, set()).update(names)
            for step in inst.timeouts:
                if not _names_steps(step, names):
                    problems.add(f"{where}.timeouts.{step}", _unknown(f"step of {kind}", step, names))
        members[wave_name].append(inst.id)
        instances.append(planned)
    if doc.defaults.timeouts:
        known = set().union(*step_names.values()) if step_names else set()
        for step in doc.defaults.timeouts:
            if not _names_steps(step, known):
                problems.add(f"defaults.timeouts.{step}", _unknown("step name", step, known))

    waves = tuple(
        Wave(
            name=name,
            instances=tuple(members[name]),
            max_concurrency=wave_by_name[name].max_concurrency if name in wave_by_name else None,
            canary=wave_by_name[name].canary if name in wave_by_name else 0,
            failure_budget=(wave_by_name[name].failure_budget if name in wave_by_name else None)
            or FailureBudget(),
        )
        for name in members
    )
    return Plan(path, raw, doc, tuple(instances), waves, options, locator)


def _names_steps(key: str, names: set[str]) -> bool:
    if key == "default" or key in names:
        return True
    return is_glob(key) and any(fnmatch.fnmatchcase(name, key) for name in names)


def _unknown(what: str, name: str, known: Iterable[str]) -> str:
    known = list(known)
    hint = _did_you_mean(name, known)
    if hint:
        return f"unknown {what} {name!r}{hint}"
    return f"unknown {what} {name!r}" + (f" (known: {', '.join(sorted(known)[:10])})" if known else "")


def _check_credentials(credentials: Mapping[str, str] | None, where: str, problems: _Problems) -> None:
    if not credentials:
        return
    if "profile" in credentials:
        if len(credentials) > 1:
            problems.add(where, "use either profile: or credential fields, not both")
        return
    for field, value in credentials.items():
        if not SECRET_REFERENCE.match(value.strip()):
            # Never echo the value: it may be a pasted secret.
            problems.add(
                f"{where}.{field}",
                "a literal credential is not allowed in a plan; use '${env:NAME}', '${file:PATH}' "
                "or credentials: {profile: NAME}",
            )


def _validate_options(provider: Provider, raw: Mapping[str, Any], where: str, problems: _Problems) -> Any:
    model = provider.options_model
    if model is None:
        if raw:
            problems.add(where, "this provider takes no options")
        return None
    try:
        return model.model_validate(dict(raw))
    except ValidationError as exc:
        problems.extend_from_validation(exc, where, model)
        return None


def _validate_settings(provider: Provider, raw: Mapping[str, Any], where: str, problems: _Problems) -> Any:
    model = provider.settings_model
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        problems.extend_from_validation(exc, where, model)
        return None
