"""The JSON Schema of ``report.json``, generated from the model.

Published as ``docs/report-schema.json`` (a test keeps that file equal to what this
module generates) and printed by ``batchmig schema --report``, so tools that consume
reports can validate them without importing batchmig.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ConfigDict, TypeAdapter

from batchmig.report import model
from batchmig.report.model import RECORD_CONFIG, SCHEMA_VERSION, RunReport

SCHEMA_ID = f"https://batchmig.invalid/schemas/run-report-v{SCHEMA_VERSION}.json"


def report_schema() -> dict[str, Any]:
    """JSON Schema (draft 2020-12) of a run report document."""
    with _field_docstrings_as_descriptions():
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


@contextmanager
def _field_docstrings_as_descriptions() -> Iterator[None]:
    """The records' config with ``use_attribute_docstrings`` while one schema is built.

    pydantic reads a stdlib dataclass's ``__pydantic_config__`` each time it builds its
    schema and keeps nothing on the class, so the serializers built before or after are
    untouched. Only the ``schema`` command and its tests build this, on one thread."""
    records = [kind for kind in vars(model).values()
               if isinstance(kind, type) and kind.__dict__.get("__pydantic_config__") is RECORD_CONFIG]
    described = ConfigDict(RECORD_CONFIG, use_attribute_docstrings=True)  # type: ignore[misc]
    for kind in records:
        kind.__pydantic_config__ = described  # type: ignore[attr-defined]
    try:
        yield
    finally:
        for kind in records:
            kind.__pydantic_config__ = RECORD_CONFIG  # type: ignore[attr-defined]
