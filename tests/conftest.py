"""Core test fixtures: the core is tested with its own ``testcloud`` provider only.

Hypothesis profiles, chosen with ``HYPOTHESIS_PROFILE`` (Hypothesis itself does not read
that variable: it is loaded here, before any test module is imported, so every test's
settings start from it). ``ci`` is what tox sets: the suites run side by side with
others on a shared machine, where how long an example takes measures the machine, not
the code; so no deadline and no "too slow" health check, and no example database (a
clean clone has none to replay). The examples, their number and their sizes are the same
as in the default profile, and a test's own ``@settings`` still apply.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, settings

from batchmig.cli import CliContext, main
from batchmig.plugin import (
    Call,
    Connection,
    HttpFetch,
    HttpRequest,
    Instance,
    PermanentError,
    ProviderConfig,
    ProviderSpec,
    hookimpl,
)
from batchmig.registry import Registry
from batchmig.testing import make_registry
from batchmig.testing.testcloud import TestcloudConnection, TestcloudPlugin, TestcloudProvider

settings.register_profile("ci", deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None,
                          print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

SECRET_VARIABLE = "TC_DB_PASSWORD"


@pytest.fixture
def registry() -> Registry:
    return make_registry(TestcloudPlugin())


class SecretConnection(TestcloudConnection):
    """Like DTS with ``password_env``: a create carries a database password read from the environment."""

    async def prepare(self, call: Call) -> HttpRequest:
        if call.action == "CreateJob" and not os.environ.get(SECRET_VARIABLE):
            raise PermanentError("MissingSecret", f"the environment variable {SECRET_VARIABLE} is not set")
        return await super().prepare(call)


class SecretProvider(TestcloudProvider):
    """testcloud whose instances also need a database password (``pwcloud``)."""

    def connect(self, config: ProviderConfig, fetch: HttpFetch) -> Connection:
        return SecretConnection(config)

    def required_secrets(self, instance: Instance) -> Sequence[str]:
        return [f"env:{SECRET_VARIABLE}", "credential:db_token"]


class SecretPlugin:
    @hookimpl
    def batchmig_register_providers(self, registry: Any) -> None:
        registry.add(ProviderSpec("pwcloud", SecretProvider(), "testcloud with a database password",
                                  emulator="testcloud"))


@pytest.fixture
def secret_registry() -> Registry:
    """testcloud and ``pwcloud`` (testcloud needing ``$TC_DB_PASSWORD`` and a ``db_token`` credential)."""
    return make_registry(TestcloudPlugin(), SecretPlugin())


class Cli:
    """The real ``batchmig`` command line, in-process: ``cli("status", "latest") -> (exit, stdout, stderr)``.

    Its registry reaches the commands as click's ``obj`` (``CliContext``), as an embedding program would pass it.
    """

    def __init__(self, registry: Registry) -> None:
        self.context = CliContext(registry=registry)

    def __call__(self, *args: str) -> tuple[int, str, str]:
        result = CliRunner().invoke(main, list(args), obj=self.context)
        return result.exit_code, result.stdout, result.stderr


@pytest.fixture
def cli(secret_registry: Registry) -> Cli:
    """The CLI with testcloud and pwcloud registered."""
    return Cli(secret_registry)
