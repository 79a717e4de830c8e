"""The conformance suite run against the core's own testcloud provider (proves the suite)."""

from __future__ import annotations

import pytest

from batchmig.testing.conformance import ProviderConformance
from batchmig.testing.testcloud import TestcloudPlugin

pytestmark = pytest.mark.slow  # about 45 s of sandbox runs and a SIGKILL: the e2e suite, not latest/oldest


class TestTestcloudConformance(ProviderConformance):
    provider = "testcloud"
    region = "eu-1"
    plugins = (TestcloudPlugin(),)
    samples = [{"duration": 20}, {"duration": 40, "incremental": True}, {"duration": 30, "client_token": True}]
