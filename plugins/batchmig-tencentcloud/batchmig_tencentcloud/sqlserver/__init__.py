"""The ``tencent-sqlserver`` provider: backups and cold-backup imports."""

from __future__ import annotations

from batchmig_tencentcloud.sqlserver.provider import SqlServerProvider
from batchmig_tencentcloud.sqlserver.settings import SqlServerSettings

__all__ = ["SqlServerProvider", "SqlServerSettings"]
