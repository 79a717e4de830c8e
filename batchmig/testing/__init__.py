"""Test helpers for batchmig and its provider plugins (also a pytest plugin).

Installed with batchmig, the pytest plugin gives every test session these fixtures:

``anyio_backend``
    pinned to ``"asyncio"`` (batchmig runs on asyncio).
``plan_file``
    ``plan_file(text, name="plan.yaml") -> Path``: write a plan into ``tmp_path``.
``fake_clock``
    a ``FakeClock`` for exact limiter and scheduler tests.
``installed_registry``
    the registry of the installed plugins (entry points), freshly built.
``http_send``
    the engine's HTTP transport as ``send(HttpRequest) -> HttpResponse`` (also an
    ``HttpFetch`` for ``Provider.connect``); async tests only.

The plugin author's kit, to test an emulator and a provider's steps directly:

``FakeSandboxContext(options=..., time_scale=...)``
    a ``SandboxContext`` with an in-memory store and a clock moved by ``advance``.
``EmulatorHost(factory, context)``
    one emulator on loopback inside the real sandbox host (audit, per-call faults
    with ``inject``); ``async with`` it and use ``host.url``.
``StaticCredentials`` / ``provider_config(provider, url, credentials)``
    the ``Credentials`` and ``ProviderConfig`` a connection is built from.
``make_instance(provider, name, settings, id=..., token=...)``
    an ``Instance`` with settings validated by the provider's model.
``StepDriver(connection, send, clock=context)``
    runs an instance's steps like the engine (``run(instance, steps, lose=...)``),
    reconciling lost answers and checking what reconcile recovers; also the
    read-only ``Caller`` for reconcile, pollers and preflight.

Every test also gets SIGINT/SIGTERM back as they were before it (a ``batchmig run``
invoked in-process ignores both once its report is written).

And these helpers:

``make_registry(*plugins, entry_points=False)``
    a fresh registry holding only ``plugins`` (plus the installed ones if asked).
``run_plan(path, registry, workdir, sandbox_config=SandboxConfig(...)) -> SandboxRun``
    run a plan against the in-process sandbox (time scale, faults, caps as
    configured) and return the outcome with the sandbox's audit log.
``private_imports([package_dir, tests_dir])`` / ``PUBLIC_MODULES``
    the files that import batchmig modules outside its public API (``{}`` when none).
``record_calls(registry)`` / ``unmatched_calls(listing, calls)``
    record the calls an in-process run prepares; compare them with a dry run's
    listing of the same run id (names included).
``batchmig.testing.conformance.ProviderConformance``
    the provider conformance suite: subclass it in your plugin's tests.
"""

from __future__ import annotations

from batchmig.sandbox.config import SandboxConfig
from batchmig.testing.context import FakeSandboxContext, memory_store
from batchmig.testing.credentials import StaticCredentials, make_instance, provider_config
from batchmig.testing.driver import StepDriver, StepRun, assert_same_outputs, call_step, http_client, wait_step
from batchmig.testing.helpers import (
    FakeClock,
    SandboxRun,
    make_registry,
    record_calls,
    run_plan,
    unmatched_calls,
    write_plan,
)
from batchmig.testing.host import EmulatorHost
from batchmig.testing.imports import PUBLIC_MODULES, private_imports

__all__ = [
    "PUBLIC_MODULES",
    "EmulatorHost",
    "FakeClock",
    "FakeSandboxContext",
    "SandboxConfig",
    "SandboxRun",
    "StaticCredentials",
    "StepDriver",
    "StepRun",
    "assert_same_outputs",
    "call_step",
    "http_client",
    "make_instance",
    "make_registry",
    "memory_store",
    "private_imports",
    "provider_config",
    "record_calls",
    "run_plan",
    "unmatched_calls",
    "wait_step",
    "write_plan",
]
