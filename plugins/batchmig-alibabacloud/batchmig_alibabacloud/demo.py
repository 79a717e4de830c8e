"""Sandbox demo credentials: fixed, documented values the emulator accepts; they grant nothing elsewhere.

Apart from the emulator so that registering the plugin (every command's start-up) does
not load it and aiohttp's server: only the sandbox builds the emulator.
"""

from __future__ import annotations

__all__ = ["DEMO_CREDENTIALS", "DEMO_KEY_ID", "DEMO_SECRET"]

DEMO_KEY_ID = "LTAI5tBatchmigSandbox"
DEMO_SECRET = "alibaba-rds-sandbox-secret-0000"
DEMO_CREDENTIALS = {"access_key_id": DEMO_KEY_ID, "access_key_secret": DEMO_SECRET}
"""Accepted by the emulator (and used by ``batchmig run --sandbox``)."""
