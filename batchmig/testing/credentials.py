"""Credentials, provider configurations and instances for tests that skip the plan.

In a run, the core resolves a plan's ``credentials:`` into a ``Credentials`` object,
builds a ``ProviderConfig`` and an ``Instance`` per plan entry; a unit test of a
connection or of a provider's steps wants the same objects from literal values —
with the same promise that ``repr`` shows no secret, and the settings validated by
the provider's own model.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel

from batchmig.plugin import Instance, Provider, ProviderConfig


class StaticCredentials:
    """``Credentials`` from literal values (None: not set); its repr shows no value."""

    def __init__(self, values: Mapping[str, str | None] | None = None, **more: str | None) -> None:
        self._values = {**dict(values or {}), **more}

    def secret(self, name: str) -> str | None:
        return self._values.get(name)

    def __repr__(self) -> str:
        return f"StaticCredentials({', '.join(sorted(self._values))}: <redacted>)"


def provider_config(
    provider: str,
    endpoint: str | None,
    credentials: Mapping[str, str | None],
    *,
    region: str = "sandbox-1",
    options: BaseModel | None = None,
    account: str | None = None,
    name: str | None = None,
) -> ProviderConfig:
    """A ``ProviderConfig`` as the core builds it for a plan's provider entry.

    ``endpoint`` is a base URL (an ``EmulatorHost``'s ``url``) or None for the
    cloud's public endpoint; ``credentials`` maps credential fields to values.
    """
    return ProviderConfig(
        name=name or provider,
        provider=provider,
        region=region,
        endpoint=endpoint,
        credentials=StaticCredentials(credentials),
        account=account,
        options=options,
    )


def make_instance(
    provider: Provider,
    name: str,
    settings: Mapping[str, Any],
    *,
    id: str = "db01",
    token: str = "a1b2c3d4",
    connection: str = "p",
    cutover: Literal["auto", "manual"] = "auto",
) -> Instance:
    """An ``Instance`` of provider ``name`` with ``settings`` validated by its model.

    ``token`` stands for the run: deterministic names and client tokens derive from
    it, so two tokens are two runs.
    """
    model = provider.settings_model.model_validate(dict(settings))
    return Instance(id, name, connection, model, cutover, token)
