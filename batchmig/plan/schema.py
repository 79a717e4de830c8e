"""The plan's JSON Schema, including every installed provider's settings.

Editors (VS Code's YAML extension, JetBrains) autocomplete and check plans from
it: ``batchmig schema > plan.schema.json`` and point ``# yaml-language-server:
$schema=plan.schema.json`` at it.
"""

from __future__ import annotations

from typing import Any

from batchmig.plan.model import PlanDocument
from batchmig.registry import Registry


def plan_schema(registry: Registry) -> dict[str, Any]:
    schema = PlanDocument.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "batchmig plan (version 1)"
    defs = schema.setdefault("$defs", {})
    settings_refs = []
    option_refs = []
    for name, spec in sorted(registry.providers.items()):
        provider = spec.provider
        model_schema = provider.settings_model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(model_schema.pop("$defs", {}))
        key = f"settings:{name}"
        defs[key] = {**model_schema, "title": f"{name} settings"}
        settings_refs.append({"$ref": f"#/$defs/{key}"})
        if provider.options_model is not None:
            options_schema = provider.options_model.model_json_schema(ref_template="#/$defs/{model}")
            defs.update(options_schema.pop("$defs", {}))
            defs[f"options:{name}"] = {**options_schema, "title": f"{name} options"}
            option_refs.append({"$ref": f"#/$defs/options:{name}"})
    instance = defs["InstanceDoc"]["properties"]
    if settings_refs:
        instance["settings"] = {"description": instance["settings"].get("description", ""), "anyOf": settings_refs}
    config = defs["ProviderConfigDoc"]["properties"]
    config["type"] = {"anyOf": [{"enum": sorted(registry.providers)}, {"type": "null"}],
                      "description": config["type"].get("description", "")}
    if option_refs:
        config["options"] = {"description": config["options"].get("description", ""), "anyOf": option_refs}
    return schema
