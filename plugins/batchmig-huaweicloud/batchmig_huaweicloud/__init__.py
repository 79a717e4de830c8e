"""batchmig-huaweicloud: the ``huawei-drs`` provider and its sandbox emulator.

Restores SQL Server backups into RDS for SQL Server with Huawei Cloud DRS v5 backup
migration jobs (from OBS: full, or full+incremental as a chain of jobs; or from an
RDS full backup). Registered with batchmig through the ``batchmig`` entry-point group
(``batchmig_huaweicloud.plugin``).
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
