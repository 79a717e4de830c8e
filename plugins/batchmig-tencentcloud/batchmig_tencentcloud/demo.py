"""Sandbox demo keys: fixed, documented values both emulators accept; they grant nothing real.

Apart from the emulators so that registering the plugin (every command's start-up) does
not load them and aiohttp's server: only the sandbox builds an emulator.
"""

from __future__ import annotations

__all__ = ["DEMO_SECRET_ID", "DEMO_SECRET_KEY"]

DEMO_SECRET_ID = "AKIDsandboxDemo00000000000000000000"
DEMO_SECRET_KEY = "sandboxDemoSecretKey000000000000"
