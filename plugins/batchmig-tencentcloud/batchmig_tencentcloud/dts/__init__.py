"""The ``tencent-dts`` provider: DTS migration jobs for SQL Server."""

from __future__ import annotations

from batchmig_tencentcloud.dts.provider import DtsProvider
from batchmig_tencentcloud.dts.settings import DtsSettings

__all__ = ["DtsProvider", "DtsSettings"]
