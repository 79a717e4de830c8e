"""Alibaba Cloud ApsaraDB RDS for SQL Server provider for batchmig (``alibaba-rds-sqlserver``), with its emulator."""

from __future__ import annotations

__version__ = "0.1.0"
