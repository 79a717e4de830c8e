"""Sandbox demo credentials: fixed, documented values the emulator accepts.

They grant nothing real; ``batchmig run --sandbox`` uses them, and the README lists
them so that Huawei's own SDK can be pointed at ``batchmig sandbox serve``.
"""

from __future__ import annotations

__all__ = ["DEMO_CREDENTIALS", "DEMO_REGION"]

DEMO_CREDENTIALS = {
    "ak": "HPUASANDBOXDEMOKEY01",
    "sk": "sandboxDemoSecretKey0000000000000000000001",
    "project_id": "5a4d0b6e3f2c41d89e7a6b5c4d3e2f10",
    "iam_password": "sandbox-password",
}
DEMO_REGION = "cn-north-4"
"""The region the demo project id belongs to in the emulator."""
