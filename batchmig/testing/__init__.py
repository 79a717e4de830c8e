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

Every test also gets SIGINT/SIGTERM back as they were before it (a ``batchmig run``
invoked in-process ignores both once its report is written).

And these helpers:

``make_registry(*plugins, entry_points=False)``
    a fresh registry holding only ``plugins`` (plus the installed ones if asked).
``run_plan(path, registry, workdir, sandbox_config=SandboxConfig(...)) -> SandboxRun``
    run a plan against the in-process sandbox (time scale, faults, caps as
    configured) and return the outcome with the sandbox's audit log.
``batchmig.testing.conformance.ProviderConformance``
    the provider conformance suite: subclass it in your plugin's tests.
"""

from __future__ import annotations

from batchmig.sandbox.host import SandboxConfig
from batchmig.testing.helpers import FakeClock, SandboxRun, make_registry, run_plan, write_plan

__all__ = ["FakeClock", "SandboxConfig", "SandboxRun", "make_registry", "run_plan", "write_plan"]
