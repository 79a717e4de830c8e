"""An instance's fingerprint is the text every journal keeps, whichever batchmig wrote it.

A run resumed by another version compares the plan's fingerprints with the journal's
(``resume --accept-changed-plan``), so they must stay the SHA-256 of
``json.dumps(definition, sort_keys=True, default=str)``, byte for byte, however they are made.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from batchmig.changes import Fingerprints, fingerprints
from batchmig.plan.loader import load_plan
from batchmig.plan.model import Plan, PlannedInstance
from batchmig.registry import Registry

PLAN = """\
version: 1
providers:
  tc: {type: testcloud, region: eu-1}
  tc2: {type: testcloud, region: eu-2, account: prod, endpoint: "https://api.example.test:8443/v2"}
  testcloud: {region: "é-1"}
defaults: {provider: tc}
instances:
  - {id: a}
  - {id: b, cutover: manual, settings: {duration: 0.00001, incremental: true}}
  - {id: c, provider: tc2, settings: {duration: 86400}}
  - {id: d, provider: tc2, cutover: manual, settings: {duration: 1000.5, client_token: true}}
  - {id: e, provider: testcloud, settings: {duration: 12.5}}
  - {id: f, provider: tc2}
"""


def definition_text_hash(plan: Plan, instance: PlannedInstance) -> str:
    """How every batchmig so far has fingerprinted an instance."""
    connection = plan.document.providers[instance.connection]
    definition = {
        "provider": instance.provider,
        "connection": {"type": connection.type or instance.connection, "region": connection.region,
                       "account": connection.account, "endpoint": connection.endpoint},
        "settings": instance.settings.model_dump(mode="json"),
        "cutover": instance.cutover,
    }
    return hashlib.sha256(json.dumps(definition, sort_keys=True, default=str).encode()).hexdigest()


def test_fingerprints_are_the_definitions_json_hashed(plan_file, registry: Registry) -> None:
    plan = load_plan(str(plan_file(PLAN)), registry)
    found = fingerprints(plan)
    assert found == {inst.id: definition_text_hash(plan, inst) for inst in plan.instances}
    assert len(set(found.values())) == len(found)
    # what a journal written by batchmig 1ec6b4b (one encoding of the whole definition) holds
    assert found["a"] == "9bfe6d52759ec116518a87955b29fe65363edfc0ebe343dfee3896b252104412"
    assert found["d"] == "c5d975fadb0b1345579783866d2c6c2439ddb3b35b0ad7160eb2dfc041a21945"


class AnySettings(BaseModel):
    """Settings of any shape, as a provider's model may dump them."""

    data: Any = None


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


def test_any_settings_fingerprint_as_their_whole_definition_would(plan_file, registry: Registry) -> None:
    plan = load_plan(str(plan_file(PLAN)), registry)
    fingerprint = Fingerprints(plan)

    @settings(max_examples=50, deadline=None)
    @given(data=json_values, cutover=st.sampled_from(["auto", "manual"]))
    def check(data: Any, cutover: str) -> None:
        for planned in plan.instances[:3]:
            instance = dataclasses.replace(planned, settings=AnySettings(data=data), cutover=cutover)
            assert fingerprint(instance) == definition_text_hash(plan, instance)

    check()
