"""The JSON Schema of ``report.json``, generated from the model.

Published as ``docs/report-schema.json`` (a test keeps that file equal to what this
module generates) and printed by ``batchmig schema --report``, so tools that consume
reports can validate them without importing batchmig.
"""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from batchmig.report.model import SCHEMA_VERSION, RunReport

SCHEMA_ID = f"https://batchmig.invalid/schemas/run-report-v{SCHEMA_VERSION}.json"


def report_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a run report document."""
    schema = TypeAdapter(RunReport).json_schema(mode="serialization")
    schema["properties"]["schema_version"] = {
        "const": SCHEMA_VERSION, "title": "Schema Version",
        "description": schema["properties"]["schema_version"].get("description", ""),
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **schema,
        "title": "batchmig run report",
        "description": "report.json of a batchmig run: every instance, step, call count, invocation and "
        "operator request of the whole run. Readers must ignore properties they do not know.",
    }
