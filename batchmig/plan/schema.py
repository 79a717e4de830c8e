"""The plan's JSON Schema, including every installed provider's settings.

Editors (VS Code's YAML extension, JetBrains) autocomplete and check plans from
it: ``batchmig schema > plan.schema.json`` and point ``# yaml-language-server:
$schema=plan.schema.json`` at it. CI can check plans with any JSON Schema validator.

An instance's ``settings`` (and each ``defaults.settings`` entry) is only a part of
what the provider validates: the loader merges the defaults into every instance's
settings, key by key and into nested mappings, before the provider's model sees
them. So those places get a *partial* form of each provider's settings schema: the
same keys and types, with no key required in a mapping the merge reaches (lists
are replaced, not merged, so their items keep their required keys). A plan that
``batchmig validate`` accepts therefore always passes the schema; the provider's
required keys and cross-field rules are checked by ``validate`` on the merged result.

Each provider's models live under its own names (``settings:<provider>``,
``options:<provider>`` and ``<provider>.<Model>`` for the models they nest), so two
plugins that both call a model ``Tag`` cannot overwrite each other's definition.
"""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from batchmig.plan.model import PlanDocument
from batchmig.registry import Registry

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
"""Provider configuration names: the rule of ``model.is_name``."""


def plan_schema(registry: Registry) -> dict[str, Any]:
    schema = PlanDocument.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "batchmig plan (version 1)"
    schema["properties"]["providers"]["propertyNames"] = {"pattern": NAME_PATTERN}
    defs = schema.setdefault("$defs", {})
    partial_refs: dict[str, dict[str, str]] = {}
    option_refs = []
    for name, spec in sorted(registry.providers.items()):
        provider = spec.provider
        model_schema = _provider_schema(provider.settings_model, name, defs)
        defs[f"settings:{name}"] = {**model_schema, "title": f"{name} settings"}
        defs[f"partial-settings:{name}"] = _partial(model_schema, defs) | {
            "title": f"{name} settings (defaults merged in by the loader)"}
        partial_refs[name] = {"$ref": f"#/$defs/partial-settings:{name}"}
        if provider.options_model is not None:
            options_schema = _provider_schema(provider.options_model, name, defs)
            defs[f"options:{name}"] = {**options_schema, "title": f"{name} options"}
            option_refs.append({"$ref": f"#/$defs/options:{name}"})
    any_settings = {"anyOf": list(partial_refs.values())} if partial_refs else {"type": "object"}
    instance = defs["InstanceDoc"]["properties"]
    instance["settings"] = {"description": instance["settings"].get("description", ""), **any_settings}
    defaults = defs["DefaultsDoc"]["properties"]
    defaults["settings"] = {
        "description": defaults["settings"].get("description", ""),
        "type": "object",
        "properties": partial_refs,  # by provider name; other keys are configuration names
        "additionalProperties": any_settings,
    }
    config = defs["ProviderConfigDoc"]["properties"]
    config["type"] = {"anyOf": [{"enum": sorted(registry.providers)}, {"type": "null"}],
                      "description": config["type"].get("description", "")}
    if option_refs:
        config["options"] = {"description": config["options"].get("description", ""), "anyOf": option_refs}
    return schema


def _provider_schema(model: type[BaseModel], provider: str, defs: dict[str, Any]) -> dict[str, Any]:
    """``model``'s schema; the models it nests go into ``defs`` as ``<provider>.<Model>``."""
    schema = model.model_json_schema(ref_template=f"#/$defs/{provider}." + "{model}")
    for nested, definition in schema.pop("$defs", {}).items():
        defs[f"{provider}.{nested}"] = definition
    return schema


def _partial(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``schema`` without ``required`` wherever the loader's deep merge reaches.

    Referenced definitions get a partial copy of their own (``<name>:partial``),
    since the same model may also appear inside a list, where it stays complete.
    """
    result = copy.deepcopy(schema)
    result.pop("required", None)
    if "$ref" in result:
        name = result["$ref"].rsplit("/", 1)[-1]
        partial_name = f"{name}:partial"
        if partial_name not in defs:
            defs[partial_name] = {}  # a placeholder first: models may refer to themselves
            defs[partial_name] = _partial(defs[name], defs)
        result["$ref"] = f"#/$defs/{partial_name}"
    for key in ("anyOf", "oneOf", "allOf"):
        if key in result:
            result[key] = [_partial(option, defs) for option in result[key]]
    if isinstance(result.get("properties"), dict):
        result["properties"] = {k: _partial(v, defs) for k, v in result["properties"].items()}
    if isinstance(result.get("additionalProperties"), dict):
        result["additionalProperties"] = _partial(result["additionalProperties"], defs)
    return result
