"""Sandbox emulators of the Tencent Cloud APIs that the providers use.

``base`` holds what every API 3.0 endpoint shares (TC3 verification, routing,
envelope, parameter checks); ``sqlserver`` and ``dts`` hold each service's state
machines. The sandbox host adds throttling, fault injection and the audit log.
"""

from __future__ import annotations

from batchmig_tencentcloud.emulator.base import DEMO_SECRET_ID, DEMO_SECRET_KEY
from batchmig_tencentcloud.emulator.dts import DtsEmulator
from batchmig_tencentcloud.emulator.sqlserver import SqlServerEmulator

__all__ = ["DEMO_SECRET_ID", "DEMO_SECRET_KEY", "DtsEmulator", "SqlServerEmulator"]
