"""What a changed plan means for a run in progress (``resume --accept-changed-plan``).

A run's journal remembers every instance it was given and a fingerprint of what
each was planned as: provider, the connection's type/region/account/endpoint, its
settings and cutover policy (not its wave, timeouts or tags, which may change
freely). When the plan changed since:

* an instance **added** to the plan joins the run as pending;
* an instance **removed** from the plan that had not finished becomes ``abandoned``:
  batchmig stops driving it and says what it leaves in the cloud (its step and
  remote ids). One that had finished keeps its status;
* an instance whose **definition changed** is restarted from its first step if
  nothing it sent can have taken effect (no call done, reconciled or unresolved)
  and it had not succeeded; otherwise the resume is refused — batchmig cannot move
  a migration already under way to another provider, target or setting, and must
  never call the half-done one finished. Revert the change, or remove the instance
  (it is then abandoned) and add the new definition under a new id.

Nothing is written until every change has been checked, and only under the run lock.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from batchmig.errors import UsageError
from batchmig.journal import ABANDONED, FINAL_STATUSES, SUCCEEDED, InstanceRecord, Journal, PlannedRow
from batchmig.plan.model import Plan, PlannedInstance

EFFECTLESS_CALL_STATES = frozenset({"failed", "throttled", "unsent", "absent"})
"""Call states that prove the call did not take effect."""


class Fingerprints:
    """What each instance of ``plan`` is planned as, hashed: the SHA-256 of
    ``json.dumps(definition, sort_keys=True, default=str)`` with the definition
    ``{"provider", "connection": {type, region, account, endpoint}, "settings", "cutover"}``,
    the text every journal keeps, whichever version of batchmig wrote it.

    Its keys sort as connection, cutover, provider, settings: the text before the settings
    is the same for every instance of one connection, provider and cutover policy, so it is
    made once for them and only the settings are encoded per instance (a nested value's JSON
    text is the same as its own)."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.heads: dict[tuple[str, str, str], str] = {}

    def __call__(self, instance: PlannedInstance) -> str:
        head = self.heads.get((instance.connection, instance.provider, instance.cutover)) or self._head(instance)
        settings = instance.settings.model_dump(mode="json") if hasattr(instance.settings, "model_dump") else None
        return hashlib.sha256((head + _DEFINITION_JSON.encode(settings) + "}").encode()).hexdigest()

    def _head(self, instance: PlannedInstance) -> str:
        connection = self.plan.document.providers[instance.connection]
        text = _DEFINITION_JSON.encode({
            "provider": instance.provider,
            "connection": {"type": connection.type or instance.connection, "region": connection.region,
                           "account": connection.account, "endpoint": connection.endpoint},
            "settings": None,
            "cutover": instance.cutover,
        })
        if not text.endswith(_NO_SETTINGS):  # pragma: no cover - "settings" sorts last
            raise AssertionError(f"a definition's text ends otherwise: {text}")
        head = self.heads[(instance.connection, instance.provider, instance.cutover)] = text[: -len("null}")]
        return head


_NO_SETTINGS = '"settings": null}'
_DEFINITION_JSON = json.JSONEncoder(sort_keys=True, default=str)
"""``json.dumps(definition, sort_keys=True, default=str)``'s encoder, made once: ``dumps``
makes one per call when given options (a third of a fingerprint's cost). The text, and so
every fingerprint a journal keeps, is the same."""


def fingerprints(plan: Plan) -> dict[str, str]:
    fingerprint = Fingerprints(plan)
    return {inst.id: fingerprint(inst) for inst in plan.instances}


def record_plan(plan: Plan, journal: Journal) -> None:
    """Journal what the run keeps of ``plan`` (synchronous, under the run lock): each
    instance's place, provider, wave, tags and cutover policy, its fingerprint, and the
    waves' order — what ``status`` and the report show without loading the plan again."""
    journal.add_instances([PlannedRow(i.id, i.index, i.provider, i.wave, i.tags, i.cutover) for i in plan.instances])
    journal.set_definitions(fingerprints(plan))
    journal.write_meta({"waves": json.dumps([wave.name for wave in plan.waves])})


@dataclass
class PlanChanges:
    added: list[str] = field(default_factory=list)
    abandoned: list[str] = field(default_factory=list)
    restarted: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{len(ids)} {what}: {', '.join(ids[:10])}{' ...' if len(ids) > 10 else ''}"
                 for what, ids in (("added", self.added), ("abandoned (removed from the plan)", self.abandoned),
                                   ("restarted (changed before anything took effect)", self.restarted)) if ids]
        return "; ".join(parts) or "no instance added, removed or changed"


def plan_changes(plan: Plan, journal: Journal) -> PlanChanges:
    """Check the changed plan against the run; raises UsageError for a change that cannot be taken."""
    records = journal.instances()
    known = journal.definitions()
    effective = _calls_that_may_have_acted(journal)
    fingerprint = Fingerprints(plan)
    changes = PlanChanges()
    refused = []
    for inst in plan.instances:
        record = records.get(inst.id)
        if record is None:
            changes.added.append(inst.id)
            continue
        old = known.get(inst.id)
        changed = (old != fingerprint(inst)) if old else record.provider != inst.provider
        if not changed:
            continue
        if record.status == SUCCEEDED or effective.get(inst.id):
            what = "it succeeded" if record.status == SUCCEEDED else f"{effective[inst.id]} call(s) may have acted"
            refused.append(f"{inst.id} ({what})")
        else:
            changes.restarted.append(inst.id)
    if refused:
        raise UsageError(
            f"the plan changes instances already under way: {', '.join(refused)}",
            "revert their provider, connection or settings; or remove them from the plan (they are then "
            "abandoned, their cloud resources left as they are) and add the new definition under a new id",
        )
    changes.abandoned = [iid for iid, record in records.items()
                         if not plan.has_instance(iid) and record.status not in FINAL_STATUSES]
    return changes


def apply_changes(plan: Plan, journal: Journal, changes: PlanChanges) -> None:
    """Write the accepted changes (synchronous; under the run lock, before the writer starts)."""
    records = journal.instances()
    for iid in changes.abandoned:
        journal.set_final(iid, ABANDONED, _abandoned_error(records[iid]))
    journal.restart_instances(changes.restarted)
    record_plan(plan, journal)


def _abandoned_error(record: InstanceRecord) -> dict[str, Any]:
    where = f"at step {record.step_name}" if record.step_name else f"at step {record.step}"
    left = ", ".join(f"{key}={value}" for key, value in record.outputs.items()) or "nothing recorded"
    return {
        "kind": ABANDONED, "code": "RemovedFromPlan", "step": record.step_name,
        "message": f"removed from the plan while {record.status} {where}; left in the cloud as it is: {left}",
    }


def _calls_that_may_have_acted(journal: Journal) -> dict[str, int]:
    counts: dict[str, int] = {}
    for instance, _step, _action, _resource, state, *_ in journal.calls():
        if state not in EFFECTLESS_CALL_STATES:
            counts[instance] = counts.get(instance, 0) + 1
    return counts
