"""Serve every installed emulator plus the core's ``testcloud`` in a process of its own.

The benchmarks and reliability campaigns run the sandbox here, apart from the runner,
so the runner's own CPU and memory can be measured and the runner can be killed
without killing the cloud. ``python benchmarks/sandbox_server.py DIR [CONFIG.json]``;
it writes ``DIR/endpoints.json`` once listening and serves until SIGTERM.
"""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

import anyio

from batchmig import logs
from batchmig.registry import load_registry
from batchmig.sandbox.host import Sandbox, SandboxConfig
from batchmig.testing.testcloud import TestcloudPlugin


async def serve(directory: Path, config: SandboxConfig) -> None:
    registry = load_registry([TestcloudPlugin()])
    async with Sandbox(registry.emulators, directory, config):
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                return


if __name__ == "__main__":
    logs.configure(json_output=True, console_level=40)
    target = Path(sys.argv[1])
    settings = json.loads(Path(sys.argv[2]).read_text()) if len(sys.argv) > 2 else {}
    anyio.run(serve, target, SandboxConfig.from_mapping(settings))
