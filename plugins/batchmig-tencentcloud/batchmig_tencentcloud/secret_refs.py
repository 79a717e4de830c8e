"""Secrets that a call needs but the journal must never see.

DTS's CreateMigrateJob carries database passwords. Settings only *name* them (an
environment variable, or a field of the provider's ``credentials:``); the step puts a
reference string into the call, which is what the journal, dry-run listing and logs
show, and ``Connection.prepare`` swaps in the value just before signing.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from batchmig.errors import PermanentError
from batchmig.plugin import register_secret

__all__ = ["credential_ref", "env_ref", "json_body", "resolve"]

_PREFIX = "batchmig-secret:"
_PREFIX_IN_JSON = _PREFIX.encode()  # as JSON writes it: nothing in it is escaped


def env_ref(variable: str) -> str:
    return f"{_PREFIX}env:{variable}"


def credential_ref(field: str) -> str:
    return f"{_PREFIX}credential:{field}"


def json_body(params: Mapping[str, Any], credential: Callable[[str], str | None]) -> bytes:
    """``params`` as JSON with every secret reference replaced by the secret. Most calls
    carry none: their parameters are encoded once and not walked for references."""
    body = orjson.dumps(params)
    if _PREFIX_IN_JSON in body:
        body = orjson.dumps(resolve(params, credential))
    return body


def resolve(value: Any, credential: Callable[[str], str | None]) -> Any:
    """``value`` with every secret reference replaced by the secret itself."""
    if isinstance(value, str) and value.startswith(_PREFIX):
        source, _, name = value.removeprefix(_PREFIX).partition(":")
        secret = os.environ.get(name) if source == "env" else credential(name)
        if not secret:
            where = f"environment variable {name}" if source == "env" else f"credentials field {name!r}"
            raise PermanentError("MissingSecret", f"the {where} is not set")
        register_secret(secret)  # read here, not through Credentials: the core must learn to redact it
        return secret
    if isinstance(value, str | int | float) or value is None:  # checked before the Mapping ABC's slower check
        return value
    if isinstance(value, Mapping):
        return {key: resolve(item, credential) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(item, credential) for item in value]
    return value
