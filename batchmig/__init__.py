"""batchmig: migrate fleets of SQL Server databases through the clouds' own APIs.

The public modules are this package, ``batchmig.plugin`` (for provider plugins),
``batchmig.emulator`` (for sandbox emulators), ``batchmig.errors`` and
``batchmig.testing`` (a pytest plugin). Everything else is private.
"""

from __future__ import annotations

from batchmig.errors import (
    BatchmigError,
    ExitCode,
    Failure,
    JournalError,
    PlanError,
    PlanProblem,
    PluginError,
    ProviderError,
    UsageError,
)

__version__ = "0.1.0"

__all__ = [
    "BatchmigError",
    "ExitCode",
    "Failure",
    "JournalError",
    "PlanError",
    "PlanProblem",
    "PluginError",
    "ProviderError",
    "UsageError",
    "__version__",
]
