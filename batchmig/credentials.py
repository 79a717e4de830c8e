"""Resolve credential references and keep every resolved value out of all output.

Plans only *reference* secrets: ``${env:NAME}``, ``${file:PATH}`` or a named profile
(``credentials: {profile: prod}`` reads ``~/.config/batchmig/credentials.yaml`` or the
file named by ``BATCHMIG_CREDENTIALS``). With no ``credentials:`` the provider's usual
environment variables apply. Every value resolved here is registered with the
redactor (``batchmig.redaction``), which every output applies, so a secret that slips
into a message — raw or encoded — is still replaced by ``***``.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from pathlib import Path

import yaml

from batchmig.errors import UsageError
from batchmig.redaction import REDACTOR as REDACTOR  # (its home was here once; code may still import it)

_REFERENCE = re.compile(r"^\$\{(env|file):([^}]+)\}$")


class ResolvedCredentials:
    """Implements ``batchmig.plugin.Credentials``; its repr never shows a value."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)
        for value in self._values.values():
            REDACTOR.add(value)

    def secret(self, name: str) -> str | None:
        return self._values.get(name)

    def overlaid(self, values: Mapping[str, str]) -> ResolvedCredentials:
        """These credentials with ``values`` taking precedence."""
        return ResolvedCredentials({**self._values, **values})

    def fields(self) -> list[str]:
        return sorted(self._values)

    def __repr__(self) -> str:
        return f"<credentials {', '.join(self.fields())}>"


def profiles_path() -> Path:
    return Path(os.environ.get("BATCHMIG_CREDENTIALS", "~/.config/batchmig/credentials.yaml")).expanduser()


def _profile(name: str, where: str) -> dict[str, str]:
    path = profiles_path()
    try:
        mode = path.stat().st_mode
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise UsageError(f"{where}: profile {name!r} not found: {path} does not exist") from None
    except (OSError, yaml.YAMLError) as exc:
        raise UsageError(f"{where}: cannot read the credentials file {path}: {type(exc).__name__}") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise UsageError(f"{path} is readable by others; run: chmod 600 {path}")
    profiles = data.get("profiles", data) if isinstance(data, dict) else {}
    profile = profiles.get(name) if isinstance(profiles, dict) else None
    if not isinstance(profile, dict):
        raise UsageError(f"{where}: profile {name!r} not found in {path}")
    return {str(k): str(v) for k, v in profile.items()}


def _dereference(reference: str, where: str) -> str | None:
    match = _REFERENCE.match(reference.strip())
    if match is None:  # the plan validator already rejected literals
        raise UsageError(f"{where}: not a credential reference")
    kind, target = match.groups()
    if kind == "env":
        return os.environ.get(target)
    try:
        return Path(target).expanduser().read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise UsageError(f"{where}: cannot read the credential file {target}: {exc.strerror}") from None


def resolve_credentials(
    references: Mapping[str, str] | None,
    env_defaults: Mapping[str, str],
    where: str,
) -> ResolvedCredentials:
    """Resolve a provider configuration's credentials; unset references are left out."""
    values: dict[str, str] = {}
    if references and "profile" in references:
        values = _profile(references["profile"], where)
    elif references:
        for field, reference in references.items():
            value = _dereference(reference, f"{where}.{field}")
            if value:
                values[field] = value
    else:
        for field, variable in env_defaults.items():
            value = os.environ.get(variable)
            if value:
                values[field] = value
    return ResolvedCredentials(values)


def resolve_secret(reference: str, where: str) -> str:
    """The value of one ``${env:NAME}`` / ``${file:PATH}`` reference, registered with the
    redactor; a reference that resolves to nothing is a precise error."""
    value = _dereference(reference, where)
    if not value:
        raise UsageError(f"{where}: {reference} is not set", "export it (or fill the file) before the run starts")
    REDACTOR.add(value)
    return value


def is_reference(value: str) -> bool:
    return _REFERENCE.match(value.strip()) is not None
