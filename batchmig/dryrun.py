"""Dry run: the calls every instance would make, in order, and a makespan estimate.

Structurally side-effect free: it needs only the plan and the providers' step lists.
No connection, transport or journal exists in a dry run, so no call can reach a
network, mutating or not.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchmig.engine.runner import instance_view
from batchmig.plan.model import Plan
from batchmig.plugin import DEFAULT_RATE, CallStep
from batchmig.registry import Registry


class Placeholders(dict[str, Any]):
    """Outputs for dry-run: any remote id a step needs reads as ``<Name>``."""

    def __missing__(self, key: str) -> str:
        return f"<{key}>"


@dataclass
class DryRunCall:
    step: str
    action: str
    mutating: bool
    params: Mapping[str, Any]
    cutover: bool = False
    wait: bool = False


def dry_run(plan: Plan, registry: Registry) -> tuple[dict[str, list[DryRunCall]], dict[str, Any]]:
    """The calls every instance would make, in order, and a makespan estimate.

    Pure: no connection, no transport, no journal exists in a dry run, so no call
    can reach a network. The estimate is the rate-cap bound: per wave, the busiest
    (provider, region, action)'s calls divided by its rate, summed over waves; cloud
    work time (e.g. restoring a backup) comes on top.
    """
    listing: dict[str, list[DryRunCall]] = {}
    per_wave: dict[str, dict[tuple[str, str, str], int]] = {}
    rates: dict[tuple[str, str, str], float] = {}
    for inst in plan.instances:
        provider = registry.provider(inst.provider)
        calls = []
        region = plan.document.providers[inst.connection].region
        overrides = plan.document.providers[inst.connection].rate_limits
        for step in provider.steps(instance_view(inst, "dry-run")):
            if isinstance(step, CallStep):
                call = step.build(Placeholders())
                calls.append(DryRunCall(step.name, call.action, call.mutating, call.params, step.cutover))
                action = call.action
            else:
                example = step.poller.example(Placeholders()) if step.poller.example else None
                calls.append(DryRunCall(step.name, step.poller.action, False,
                                        example.params if example else {}, wait=True))
                action = step.poller.action
            key = (inst.provider, region, action)
            rates[key] = float(overrides.get(action, overrides.get(
                "*", provider.default_rate_limits.get(action, DEFAULT_RATE))))
            counts = per_wave.setdefault(inst.wave, {})
            counts[key] = counts.get(key, 0) + 1
        listing[inst.id] = calls
    bound = 0.0
    busiest: dict[str, Any] = {}
    for wave, counts in per_wave.items():
        key, count = max(counts.items(), key=lambda kv: kv[1] / rates[kv[0]])
        seconds = count / rates[key]
        bound += seconds
        busiest[wave] = {"action": "/".join(key), "calls": count, "rate": rates[key], "seconds": round(seconds, 2)}
    return listing, {"rate_bound_seconds": round(bound, 2), "waves": busiest}
