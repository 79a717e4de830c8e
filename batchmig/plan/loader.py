"""Load and validate a plan: every problem, located, with did-you-mean hints.

Validation runs in layers and collects rather than stops, so an operator fixes a
plan in one pass: YAML (syntax, duplicate keys) → the plan document's own model →
references between sections (providers, waves, duplicate ids, secrets) → each
provider's settings model and ``check`` → plugins' whole-plan checks.
"""

from __future__ import annotations

import contextlib
import difflib
import fnmatch
import gc
import re
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    is_name,
)
from batchmig.plan.source import Locator, read_plan_source
from batchmig.plugin import Instance, Provider
from batchmig.registry import Registry

SECRET_REFERENCE = re.compile(r"^\$\{(env|file):([^}]+)\}$")


class _Problems:
    """Problems found so far; each reported once, located in one pass at the end."""

    def __init__(self, file: str, locator: Locator) -> None:
        self.file = file
        self.locator = locator
        self.located: list[PlanProblem] = []
        self.pending: dict[tuple[str, str], None] = {}  # (path, message), in the order found

    def __bool__(self) -> bool:
        return bool(self.located or self.pending)

    def add(self, path: str, message: str) -> None:
        self.pending.setdefault((path, message), None)

    def extend_from_validation(
        self, error: ValidationError, prefix: str, model: type[BaseModel],
        origin: Callable[[list[str]], str] | None = None, skip_missing: bool = False,
    ) -> None:
        """Report pydantic's errors at their key paths under ``prefix``.

        ``origin`` maps the path of an error inside merged settings to where the
        offending value was written (the instance, or a ``defaults.settings`` entry),
        so a mistake inherited by a thousand instances is reported once, where it is.
        """
        for item in error.errors(include_url=False):
            loc = [str(part) for part in item["loc"] if not _is_union_tag(part)]
            if skip_missing and item["type"] == "missing":
                continue
            where = origin(loc) if origin is not None and item["type"] != "missing" else prefix
            path = ".".join(filter(None, [where, *loc]))
            message = _message(item)
            if item["type"] == "extra_forbidden" and loc:
                allowed = _allowed_keys(model, loc[:-1])
                hint = _did_you_mean(loc[-1], allowed)
                message = f"unknown key{hint}" if hint else f"unknown key; allowed here: {', '.join(sorted(allowed))}"
            self.add(path, message)

    def all(self) -> list[PlanProblem]:
        positions = self.locator.positions({path for path, _ in self.pending})
        return self.located + [
            PlanProblem(self.file, *positions[path], path, message) for path, message in self.pending
        ]


_PYDANTIC_TAG = re.compile(r"^(\[key\]|[a-z][a-z-]*\[.*\])$")


def _is_union_tag(part: object) -> bool:
    """pydantic's own parts of an error location (``[key]``, ``function-after[...]``), not plan keys."""
    return isinstance(part, str) and _PYDANTIC_TAG.match(part) is not None


def _message(item: Mapping[str, Any]) -> str:
    """pydantic's message in the plan's words; never the offending value (it may be a secret)."""
    kind, value = item["type"], item.get("input")
    if kind == "missing":
        return "required key is missing"
    if kind in ("int_type", "float_type") and isinstance(value, bool):
        return "a number is expected here, not yes/no/true/false"
    if kind == "string_type" and isinstance(value, int | float) and not isinstance(value, bool):
        return "text is expected here; put the value in quotes"
    if kind == "int_type" and isinstance(value, str | float):
        return "a whole number is expected here" + ("; write it without quotes" if isinstance(value, str) else "")
    if kind == "float_type" and isinstance(value, str):
        return "a number is expected here; write it without quotes"
    return str(item["msg"]).removeprefix("Value error, ")


def _did_you_mean(word: str, options: Iterable[str]) -> str:
    matches = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"; did you mean {matches[0]!r}?" if matches else ""


def _plan_keys(model: type[BaseModel]) -> dict[str, Any]:
    """A model's fields by the key a plan writes: the alias where there is one (``import``, not ``import_``)."""
    keys = {}
    for name, field in model.model_fields.items():
        alias = field.validation_alias if isinstance(field.validation_alias, str) else field.alias
        keys[alias or name] = field
    return keys


def _allowed_keys(model: type[BaseModel], loc: list[str]) -> set[str]:
    """The keys a model accepts at ``loc`` (a path of plan keys and indexes)."""
    annotation: Any = model
    for part in loc:
        annotation = _unwrap(annotation)
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            field = _plan_keys(annotation).get(part)
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
        return set(_plan_keys(annotation))
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
        if type(value) is dict and type(merged.get(key)) is dict:  # plan data: plain dicts (and fast to test)
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _has_path(data: Any, loc: Sequence[str]) -> bool:
    for part in loc:
        if isinstance(data, Mapping) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return False
    return True


def load_plan(path: str, registry: Registry) -> Plan:
    """Read, parse and validate the plan at ``path``; raise ``PlanError`` with every problem."""
    with _no_cycle_collection():
        return _load_plan(path, registry)


FREEZE_AFTER_ALLOCATIONS = 1_000_000
"""A load that allocated more objects than this leaves them out of the collector's sight."""


@contextlib.contextmanager
def _no_cycle_collection() -> typing.Iterator[None]:
    """Loading allocates millions of objects that all stay alive; the cyclic garbage
    collector would walk the growing heap again and again for nothing (a third of the
    time of a 100,000-instance plan). Reference counting still frees what is dropped.

    Re-enabled after a large load, the collector would walk it all once more at the
    next allocation (1.4 s of 100,000 instances' 9 s), so a large plan's objects are
    moved to the permanent generation (``gc.freeze``) instead: the plan lives as long
    as the command that loaded it, and a run unfreezes them with its own objects."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if gc.get_count()[0] > FREEZE_AFTER_ALLOCATIONS:
            gc.freeze()
        if enabled:
            gc.enable()


def _load_plan(path: str, registry: Registry) -> Plan:
    raw, data, locator, source_problems = read_plan_source(path)
    problems = _Problems(path, locator)
    problems.located.extend(source_problems)
    if data is None:
        if not problems:  # a document that is only `~` or `null`: valid YAML, no plan
            problems.add("", "the plan file has no content (the YAML document is null)")
        raise PlanError(problems.all())
    if not isinstance(data, dict):
        problems.add("", "a plan is a mapping with version, providers and instances")
        raise PlanError(problems.all())
    document, instance_positions, wave_positions = _validate_document(data, problems)
    plan = _Resolver(path, raw, document, registry, problems, locator).resolve(instance_positions, wave_positions)
    if problems:
        raise PlanError(problems.all())
    plugin_problems = registry.check_plan(plan)
    if plugin_problems:
        raise PlanError(plugin_problems)
    return plan


def _validate_document(data: dict[str, Any], problems: _Problems) -> tuple[PlanDocument, list[int], list[int]]:
    """Validate the document; on errors, report them all and keep what is valid.

    A mistake in one instance must not hide the checks that need the others
    (references, duplicate ids, provider settings), nor the other mistakes of the
    same instance, so after reporting, each entry is validated again without its
    wrong keys and goes on, with its position in the file.
    """
    try:
        document = PlanDocument.model_validate(data, strict=True)
        return document, list(range(len(document.instances))), list(range(len(document.waves)))
    except ValidationError as exc:
        problems.extend_from_validation(exc, "", PlanDocument)
    providers = data.get("providers")
    kept_instances = _valid_entries(InstanceDoc, data.get("instances"), stand_ins={"id": "x"})
    kept_waves = _valid_entries(WaveDoc, data.get("waves"))
    document = PlanDocument.model_construct(
        version=1,
        name=None,
        providers={name: config for name, entry in providers.items()
                   if is_name(name) and (config := _valid(ProviderConfigDoc, entry)) is not None}
        if isinstance(providers, dict) else {},
        defaults=_valid(DefaultsDoc, data.get("defaults", {})) or DefaultsDoc(),
        run=_valid(RunDoc, data.get("run", {})) or RunDoc(),
        waves=[wave for _, wave in kept_waves],
        instances=[inst for _, inst in kept_instances],
    )
    return document, [i for i, _ in kept_instances], [i for i, _ in kept_waves]


def _valid(model: type[BaseModel], value: Any, stand_ins: Mapping[str, Any] | None = None) -> Any:
    """``value`` validated without its wrong keys (already reported), or None.

    A required key named in ``stand_ins`` that is wrong or missing is validated as
    its stand-in and then set to ``""``, so that the rest of the entry is checked too.
    """
    if not isinstance(value, dict):
        try:
            return model.model_validate(value, strict=True)
        except ValidationError:
            return None
    standing: dict[str, Any] = {}
    for _ in range(3):
        try:
            valid = model.model_validate({**value, **standing}, strict=True)
        except ValidationError as exc:
            bad = {str(error["loc"][0]) for error in exc.errors() if error["loc"]}
            if not bad:
                return None
            value = {key: item for key, item in value.items() if key not in bad}
            standing = {key: item for key, item in (stand_ins or {}).items() if key not in value}
            continue
        return valid.model_copy(update=dict.fromkeys(standing, "")) if standing else valid
    return None


def _valid_entries(
    model: type[BaseModel], entries: Any, stand_ins: Mapping[str, Any] | None = None
) -> list[tuple[int, Any]]:
    if not isinstance(entries, list):
        return []
    return [(i, v) for i, entry in enumerate(entries) if (v := _valid(model, entry, stand_ins)) is not None]


class _Resolver:
    """References between sections, provider settings and checks: from documents to a ``Plan``."""

    def __init__(self, path: str, raw: bytes, doc: PlanDocument, registry: Registry, problems: _Problems,
                 locator: Locator) -> None:
        self.path, self.raw, self.doc, self.registry = path, raw, doc, registry
        self.problems, self.locator = problems, locator
        self.kinds: dict[str, str] = {}  # provider configuration -> provider name
        self.options: dict[str, Any] = {}
        self.wave_names = [wave.name for wave in doc.waves]
        self.used_defaults: set[str] = set()
        self.inherited: dict[str, dict[str, Any]] = {}  # provider configuration -> settings from defaults
        self.shared_settings: dict[str, Any] = {}
        """Provider configuration -> the validated settings of its instances without settings of
        their own. The models are frozen, and validating the same data gives the same model: one
        is shared when the provider's model is frozen (a 100,000-instance plan of a quarter DTS
        jobs held 73 MB of copies of it)."""
        self.step_names = _StepNames(
            registry,
            keep=bool(doc.defaults.timeouts or doc.defaults.estimates) or any(inst.timeouts for inst in doc.instances),
        )
        self.unchecked_timeouts: list[tuple[str, str, str]] = []

    def resolve(self, instance_positions: list[int], wave_positions: list[int]) -> Plan:
        doc = self.doc
        self._providers()
        self._waves_and_defaults(wave_positions)
        wave_by_name = {wave.name: wave for wave in doc.waves}
        members: dict[str, list[str]] = {name: [] for name in self.wave_names} or {DEFAULT_WAVE: []}
        first_seen: dict[str, int] = {}
        instances: list[PlannedInstance] = []
        for position, inst in zip(instance_positions, doc.instances, strict=True):
            planned = self._instance(f"instances.{position}", inst, wave_by_name, first_seen, position, len(instances))
            if planned is not None:
                members[planned.wave].append(planned.id)
                instances.append(planned)
        self._default_timeouts()
        self._unused_default_settings()
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
        # the instances' documents are not kept: ``instances`` holds them resolved (100,000 of
        # them held 86 MB for as long as a run)
        sections = doc.model_copy(update={"instances": []})
        return Plan(self.path, self.raw, sections, tuple(instances), waves, self.options, self.locator)

    def _providers(self) -> None:
        for name, config in self.doc.providers.items():
            where = f"providers.{name}"
            kind = config.type or name
            if kind not in self.registry.providers:
                hint = _did_you_mean(kind, self.registry.providers)
                installed = ", ".join(sorted(self.registry.providers)) or "none"
                self.problems.add(
                    f"{where}.type" if config.type else where,
                    f"unknown provider {kind!r}{hint}" + ("" if hint else f" (installed: {installed})"),
                )
                continue
            self.kinds[name] = kind
            provider = self.registry.provider(kind)
            _check_credentials(config.credentials, f"{where}.credentials", self.problems)
            _check_rate_limits(provider, kind, config.rate_limits, f"{where}.rate_limits", self.problems)
            self.options[name] = _validate_options(provider, config.options, f"{where}.options", self.problems)

    def _waves_and_defaults(self, wave_positions: list[int]) -> None:
        doc, names = self.doc, self.wave_names
        for index, name in enumerate(names):
            if name in names[:index]:
                self.problems.add(f"waves.{wave_positions[index]}.name", f"duplicate wave name {name!r}")
        if doc.defaults.provider is not None and doc.defaults.provider not in doc.providers:
            self.problems.add("defaults.provider",
                              _unknown("provider configuration", doc.defaults.provider, doc.providers))
        if doc.defaults.wave is not None and doc.defaults.wave not in names:
            self.problems.add("defaults.wave", _unknown("wave", doc.defaults.wave, names))
        for key in doc.defaults.settings:
            if key not in doc.providers and key not in self.registry.providers:
                self.problems.add(f"defaults.settings.{key}", _unknown(
                    "provider or provider configuration", key, [*doc.providers, *self.registry.providers]))

    def _instance(self, where: str, inst: InstanceDoc, wave_by_name: Mapping[str, WaveDoc],
                  first_seen: dict[str, int], position: int, index: int) -> PlannedInstance | None:
        """Check one instance, reporting every problem it has; its resolved form if it has none."""
        doc, problems = self.doc, self.problems
        ok = bool(inst.id)  # an invalid id is already reported
        if ok and inst.id in first_seen:
            problems.add(f"{where}.id", f"duplicate instance id {inst.id!r} (first at instances.{first_seen[inst.id]})")
            ok = False
        elif ok:
            first_seen[inst.id] = position
        config_name = inst.provider or doc.defaults.provider
        kind = None
        if config_name is None:
            problems.add(where, "no provider: set provider: here or defaults.provider")
        elif config_name not in doc.providers:
            if inst.provider is not None:  # an unknown defaults.provider is reported once, at the defaults
                problems.add(f"{where}.provider", _unknown("provider configuration", config_name, doc.providers))
        else:
            kind = self.kinds.get(config_name)  # None: its provider is unknown, reported at providers:
        wave_name = self._wave_of(where, inst)
        if kind is None or config_name is None:
            return None
        provider = self.registry.provider(kind)
        settings_at = f"{where}.settings"

        def origin(loc: Sequence[str]) -> str:
            sources = (inst.settings, doc.defaults.settings.get(config_name, {}), doc.defaults.settings.get(kind, {}))
            origins = (settings_at, f"defaults.settings.{config_name}", f"defaults.settings.{kind}")
            return next((at for at, source in zip(origins, sources, strict=True) if _has_path(source, loc)),
                        settings_at)

        inherited = self._inherited(config_name, kind)
        if inst.settings:
            merged = _deep_merge(inherited, inst.settings) if inherited else inst.settings
            settings = _validate_settings(provider, merged, settings_at, problems, origin)
        else:  # only what its configuration inherits: the one model of those settings, if they are valid
            settings = self.shared_settings.get(config_name)
            if settings is None:
                settings = _validate_settings(provider, inherited, settings_at, problems, origin)
                if settings is not None and getattr(settings, "model_config", {}).get("frozen"):
                    self.shared_settings[config_name] = settings
        if settings is None:
            # Its steps are unknown; its timeouts are checked against its provider's other instances.
            self.unchecked_timeouts += [(f"{where}.timeouts.{step}", kind, step) for step in inst.timeouts]
            return None
        wave_cutover = wave_by_name[wave_name].cutover if wave_name is not None and wave_name in wave_by_name else None
        cutover = inst.cutover or wave_cutover or doc.defaults.cutover or "auto"
        view = Instance(inst.id, kind, config_name, settings, cutover)
        for rel_path, message in provider.check(view):
            loc = rel_path.split(".") if rel_path else []
            problems.add(".".join([origin(loc), *loc]) if loc else settings_at, message)
        if inst.timeouts:
            names = self.step_names.of(view)
            for step in inst.timeouts:
                if not _names_steps(step, names):
                    problems.add(f"{where}.timeouts.{step}", _unknown(f"step of {kind}", step, names))
        self.step_names.offer(view)
        if not ok or wave_name is None:
            return None
        return PlannedInstance(
            index=index, id=inst.id, provider=kind, connection=config_name, wave=wave_name, cutover=cutover,
            timeouts={**doc.defaults.timeouts, **inst.timeouts} if inst.timeouts else doc.defaults.timeouts,
            tags=inst.tags, settings=settings,
        )

    def _inherited(self, config_name: str, kind: str) -> dict[str, Any]:
        """The settings every instance of a provider configuration inherits: ``defaults.settings``
        of its provider, with those of the configuration merged over them (made once)."""
        inherited = self.inherited.get(config_name)
        if inherited is None:
            self.used_defaults.update((kind, config_name))
            defaults = self.doc.defaults.settings
            inherited = self.inherited[config_name] = _deep_merge(defaults.get(kind, {}), defaults.get(config_name, {}))
        return inherited

    def _wave_of(self, where: str, inst: InstanceDoc) -> str | None:
        wave_name = inst.wave or self.doc.defaults.wave
        if self.doc.waves:
            if wave_name is None:
                self.problems.add(where, "no wave: set wave: here or defaults.wave")
                return None
            if wave_name not in self.wave_names:
                if inst.wave is not None:  # an unknown defaults.wave is reported once, at the defaults
                    self.problems.add(f"{where}.wave", _unknown("wave", wave_name, self.wave_names))
                return None
            return wave_name
        if wave_name is not None:
            if inst.wave is not None:
                self.problems.add(f"{where}.wave", "the plan has no waves: section")
            else:
                self.problems.add("defaults.wave", "the plan has no waves: section")
            return None
        return DEFAULT_WAVE

    def _default_timeouts(self) -> None:
        for key in ("timeouts", "estimates"):
            for step in getattr(self.doc.defaults, key):
                if not self.step_names.any_matches(step):
                    known = self.step_names.all_known()
                    self.problems.add(f"defaults.{key}.{step}", _unknown("step name", step, known))
        for path, kind, step in self.unchecked_timeouts:
            if not self.step_names.any_matches(step, kind) and self.step_names.all_known(kind):
                self.problems.add(path, _unknown(f"step of {kind}", step, self.step_names.all_known(kind)))

    def _unused_default_settings(self) -> None:
        """Defaults no instance inherits are still checked for unknown keys and wrong values."""
        for key, entry in self.doc.defaults.settings.items():
            kind = self.kinds.get(key, key)
            if key in self.used_defaults or kind not in self.registry.providers:
                continue
            model = self.registry.provider(kind).settings_model
            try:
                model.model_validate(entry, strict=True)
            except ValidationError as exc:
                self.problems.extend_from_validation(exc, f"defaults.settings.{key}", model, skip_missing=True)


class _StepNames:
    """The step names instances have, for checking the keys of ``timeouts:``.

    Asking a provider for an instance's steps costs time (deterministic names are
    hashed), and 100,000 instances must validate in seconds, so the steps of an
    instance are only listed when its own ``timeouts`` need them, or while a key of
    ``defaults.timeouts`` (or of an instance whose settings are wrong, checked against
    what its provider's other instances have) has matched no step yet.
    """

    def __init__(self, registry: Registry, keep: bool) -> None:
        self.registry = registry
        self.keep = keep  # whether some timeouts are checked against other instances' steps
        self.known: dict[str, set[str]] = {}  # provider -> step names listed so far
        self.views: list[Instance] = []  # instances whose steps were not listed yet

    def of(self, view: Instance) -> set[str]:
        names = {step.name for step in self.registry.provider(view.provider).steps(view)}
        self.known.setdefault(view.provider, set()).update(names)
        return names

    def offer(self, view: Instance) -> None:
        if self.keep:
            self.views.append(view)

    def all_known(self, provider: str | None = None) -> set[str]:
        if provider is not None:
            return self.known.get(provider, set())
        return set().union(*self.known.values()) if self.known else set()

    def any_matches(self, key: str, provider: str | None = None) -> bool:
        """Whether an instance (of ``provider``) has a step ``key`` names, listing steps until one does."""
        if _names_steps(key, self.all_known(provider)):
            return True
        kept = []
        while self.views:
            view = self.views.pop()
            if provider is not None and view.provider != provider:
                kept.append(view)
                continue
            if _names_steps(key, self.of(view)):
                self.views += kept
                return True
        self.views += kept
        return False


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


def _check_rate_limits(provider: Provider, kind: str, limits: Mapping[str, float], where: str,
                       problems: _Problems) -> None:
    """A cap for an action the provider never calls would silently cap nothing: refuse it."""
    actions = provider.actions
    for action in limits:
        if action != "*" and action not in actions:
            problems.add(f"{where}.{action}", _unknown(f"action of {kind}", action, actions)
                         if actions else f"{kind} does not declare its actions, so only '*' can be capped")


def _validate_options(provider: Provider, raw: Mapping[str, Any], where: str, problems: _Problems) -> Any:
    model = provider.options_model
    if model is None:
        if raw:
            problems.add(where, "this provider takes no options")
        return None
    try:
        return model.model_validate(dict(raw), strict=True)
    except ValidationError as exc:
        problems.extend_from_validation(exc, where, model)
        return None


def _validate_settings(provider: Provider, raw: Mapping[str, Any], where: str, problems: _Problems,
                       origin: Callable[[Sequence[str]], str]) -> Any:
    model = provider.settings_model
    try:
        return model.model_validate(raw, strict=True)
    except ValidationError as exc:
        problems.extend_from_validation(exc, where, model, origin)
        return None
