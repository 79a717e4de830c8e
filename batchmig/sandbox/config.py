"""The sandbox's configuration (``--sandbox-config``), apart from the host that serves it:
a runner keeps it in its options and journal without importing the HTTP server (aiohttp's
server code is a fifth of a runner's start-up), which only ``run --sandbox`` needs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SandboxConfig:
    """How the sandbox behaves; every field can come from a YAML/JSON file."""

    time_scale: float = 60.0
    seed: int = 0
    gateway_timeout: float = 30.0
    """Seconds a request may wait, from reaching this machine to being handled, before
    the sandbox gives up on it as a cloud's gateway does on a backend that has not
    taken a request within its timeout: answered 504, not acted on (audit: ``expired``).
    A starved sandbox would otherwise act on a create long after the client's timeout
    and reconcile, which no gateway with a timeout does; keep it at or under the
    plan's ``run.call_timeout``."""
    faults: list[dict[str, Any]] = field(default_factory=list)
    rate_limits: dict[str, dict[str, float]] = field(default_factory=dict)
    options: dict[str, dict[str, Any]] = field(default_factory=dict)
    credentials: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> SandboxConfig:
        """A checked configuration; ``ValueError`` says what is wrong and where."""
        if not isinstance(data, Mapping):
            raise ValueError("expected a mapping of sandbox settings")
        known = set(cls.__dataclass_fields__)
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown sandbox settings: {', '.join(sorted(unknown))}")
        from batchmig.sandbox.machinery import FaultPlan  # the faults' own checks, with the machinery that runs them

        config = cls(**dict(data))
        timeout = config.gateway_timeout
        if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
            raise ValueError(f"gateway_timeout: expected a positive number of seconds, not {timeout!r}")
        FaultPlan.from_config(config.faults)
        _check_rate_limits(config.rate_limits)
        return config


def _check_rate_limits(rate_limits: Any) -> None:
    if not isinstance(rate_limits, Mapping):
        raise ValueError("rate_limits: expected {emulator: {action: requests per second}}")
    for emulator, caps in rate_limits.items():
        if not isinstance(caps, Mapping):
            raise ValueError(f"rate_limits.{emulator}: expected {{action: requests per second}}")
        for action, cap in caps.items():
            if isinstance(cap, bool) or not isinstance(cap, int | float) or not 1 <= cap < math.inf:
                raise ValueError(f"rate_limits.{emulator}.{action}: expected a number of at least 1, not {cap!r}")
