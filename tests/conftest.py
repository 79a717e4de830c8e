"""Core test fixtures: the core is tested with its own ``testcloud`` provider only."""

from __future__ import annotations

import pytest

from batchmig.registry import Registry
from batchmig.testing import make_registry
from batchmig.testing.testcloud import TestcloudPlugin


@pytest.fixture
def registry() -> Registry:
    return make_registry(TestcloudPlugin())
