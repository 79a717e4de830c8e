"""Is every secret a plan needs available here? All of them, checked at once.

``batchmig validate PLAN --env`` and ``batchmig run PLAN --check`` resolve every
credential reference of every provider configuration the plan uses — ``${env:NAME}``,
``${file:PATH}``, a profile, or the provider's usual environment variables — and every
secret an instance needs on its own (``Provider.required_secrets``, e.g. a DTS job's
database passwords), and name each missing *environment variable, file or profile*
with the plan keys and the number of instances that need it. Nothing is sent.

With ``--sandbox`` the emulators' demo keys stand in for the signing credentials, so
only the other secrets (database passwords...) must be set.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from batchmig.credentials import profiles_path, resolve_credentials
from batchmig.engine.runner import instance_view
from batchmig.errors import UsageError
from batchmig.listing import Column
from batchmig.plan.model import Plan
from batchmig.registry import Registry

_ENV = re.compile(r"^\$\{env:([^}]+)\}$")
MISSING_COLUMNS = (
    Column("source", "missing"), Column("needed_by", "needed by"), Column("instances", "instances", "right"),
)


@dataclass
class MissingSecret:
    """One thing to provide: an environment variable, a file, a profile or a credentials field."""

    source: str
    """e.g. ``environment variable DTS_SOURCE_PASSWORD``, ``profile prod in ~/.config/...``."""
    needed_by: list[str] = field(default_factory=list)
    """Plan keys that refer to it (``providers.tencent-dts.credentials.source_password``)."""
    instance_ids: set[str] = field(default_factory=set)

    @property
    def instances(self) -> int:
        """How many instances cannot run without it."""
        return len(self.instance_ids)

    def row(self) -> dict[str, Any]:
        return {"source": self.source, "needed_by": ", ".join(self.needed_by), "instances": self.instances}


@dataclass(frozen=True)
class EnvironmentCheck:
    missing: list[MissingSecret]
    incomplete: frozenset[str]
    """Provider configurations whose own credentials do not all resolve (no connection
    can be made for them)."""


def check_environment(plan: Plan, registry: Registry, *, sandbox: bool = False) -> EnvironmentCheck:
    """Every secret the plan needs that cannot be resolved here, each named once."""
    found: dict[str, MissingSecret] = {}
    users: dict[str, set[str]] = {}
    for inst in plan.instances:
        users.setdefault(inst.connection, set()).add(inst.id)
    available: dict[str, set[str]] = {}
    failing: dict[str, dict[str, str]] = {}

    def note(source: str, key: str, instance_ids: set[str]) -> None:
        entry = found.setdefault(source, MissingSecret(source))
        if key not in entry.needed_by:
            entry.needed_by.append(key)
        entry.instance_ids |= instance_ids

    incomplete = set()
    for name in sorted(users):
        fields, problems = _provider_secrets(plan, registry, name, sandbox)
        available[name] = fields
        failing[name] = {key.rsplit(".", 1)[-1]: source for source, key in problems}
        if problems:
            incomplete.add(name)
        for source, key in problems:
            note(source, key, users[name])
    for inst in plan.instances:
        provider = registry.provider(inst.provider)
        for need in provider.required_secrets(instance_view(inst, "env-check")):
            kind, _, target = need.partition(":")
            if kind == "env" and not os.environ.get(target):
                note(f"environment variable {target}", f"instances.{inst.index} ({inst.id})", {inst.id})
            elif kind == "credential" and target not in available[inst.connection]:
                # a field the plan refers to but that does not resolve is already named by its source
                source = failing[inst.connection].get(target) or (
                    f"credentials field {target} of providers.{inst.connection} (the plan does not set it)")
                note(source, f"instances.{inst.index} ({inst.id})", {inst.id})
    for entry in found.values():  # many instances name the same secret: say how many, not each
        if len(entry.needed_by) > 3:
            entry.needed_by[3:] = [f"and {len(entry.needed_by) - 3} more"]
    return EnvironmentCheck(sorted(found.values(), key=lambda m: m.source), frozenset(incomplete))


def _provider_secrets(
    plan: Plan, registry: Registry, name: str, sandbox: bool
) -> tuple[set[str], list[tuple[str, str]]]:
    """(credential fields that resolve, [(missing source, plan key)]) of one provider configuration."""
    doc = plan.document.providers[name]
    spec = registry.providers[doc.type or name]
    provider = spec.provider
    where = f"providers.{name}.credentials"
    stand_in: Mapping[str, str] = {}
    if sandbox and spec.emulator is not None and spec.emulator in registry.emulators:
        stand_in = registry.emulators[spec.emulator].demo_credentials
    references = dict(doc.credentials or {})
    problems: list[tuple[str, str]] = []
    resolved: set[str] = set(stand_in)
    if "profile" in references:
        try:
            resolved |= set(resolve_credentials(references, {}, where).fields())
        except UsageError as exc:
            problems.append((f"profile {references['profile']} in {profiles_path()} ({exc})", where))
    elif references:
        for key, reference in references.items():
            if key in stand_in:
                continue
            try:
                if resolve_credentials({key: reference}, {}, where).secret(key) is not None:
                    resolved.add(key)
                    continue
            except UsageError as exc:
                problems.append((str(exc).removeprefix(f"{where}.{key}: "), f"{where}.{key}"))
                continue
            match = _ENV.match(reference.strip())
            problems.append((f"environment variable {match.group(1)}" if match else reference, f"{where}.{key}"))
    else:
        for key, variable in provider.credential_env.items():
            if os.environ.get(variable):
                resolved.add(key)
    for key in provider.required_credential_fields(plan.provider_options.get(name)):
        if key in resolved or any(key == p[1].rsplit(".", 1)[-1] for p in problems):
            continue
        default = provider.credential_env.get(key)
        if references and "profile" in references:
            problems.append((f"field {key} of profile {references['profile']} in {profiles_path()}", where))
        elif references:
            problems.append((f"credentials field {key} (no reference in the plan)", where))
        elif default:
            problems.append((f"environment variable {default}", f"{where}.{key} (the provider's default)"))
        else:
            problems.append((f"credentials field {key}", where))
    return resolved, problems


def describe(missing: list[MissingSecret]) -> Iterator[str]:
    """One line per missing secret, for the terminal."""
    for entry in missing:
        yield f"missing: {entry.source} — needed by {', '.join(entry.needed_by)} ({entry.instances} instances)"
