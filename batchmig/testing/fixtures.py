"""The pytest plugin of ``batchmig.testing`` (registered through the ``pytest11`` entry point)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from batchmig.registry import Registry, load_registry
from batchmig.testing.helpers import FakeClock, write_plan


@pytest.fixture
def anyio_backend() -> str:
    """batchmig runs on asyncio; pin anyio's pytest plugin to it."""
    return "asyncio"


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
