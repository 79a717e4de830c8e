"""The sandbox in a process of its own, for tests, campaigns and benchmarks.

Running the emulators apart from the runner lets a test kill the runner (SIGKILL)
while the emulated cloud lives on, and lets a benchmark measure the runner's own CPU
and memory. ``SandboxProcess(directory, config)`` starts
``python -m batchmig.testing.sandbox_process DIRECTORY CONFIG.json`` (every installed
emulator plus the core's ``testcloud``, or exactly the emulators of ``plugins`` when
given: see ``batchmig.testing.cli_process``) and waits until ``endpoints.json`` is
written; point a run at it with ``RunOptions(sandbox_at=directory)`` or
``batchmig run --sandbox-at DIRECTORY``.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import anyio

from batchmig.private_files import make_private_dir, write_private_file
from batchmig.sandbox.machinery import read_audit
from batchmig.testing.cli_process import plugin_specs, registry_from_specs


class SandboxProcess:
    """``with SandboxProcess(directory, {"time_scale": 600}) as sandbox: ...``"""

    def __init__(self, directory: Path, config: dict[str, Any] | None = None, plugins: Iterable[object] = ()) -> None:
        self.directory = directory
        self.config = config or {}
        self.plugins = tuple(plugins)

    def __enter__(self) -> SandboxProcess:
        make_private_dir(self.directory)
        (self.directory / "endpoints.json").unlink(missing_ok=True)
        config_path = self.directory / "config.json"
        write_private_file(config_path, json.dumps(self.config))
        self.proc = subprocess.Popen([sys.executable, "-m", "batchmig.testing.sandbox_process",
                                      str(self.directory), str(config_path), *plugin_specs(self.plugins)])
        deadline = time.monotonic() + 60
        while not (self.directory / "endpoints.json").exists():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                self.proc.kill()
                raise RuntimeError("the sandbox process did not start")
            time.sleep(0.05)
        self.endpoints: dict[str, str] = json.loads((self.directory / "endpoints.json").read_text())
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()

    @property
    def audit_path(self) -> Path:
        return self.directory / "audit.jsonl"

    def audit(self) -> list[dict[str, Any]]:
        return list(read_audit(self.audit_path)) if self.audit_path.exists() else []

    def configure(self, **changes: Any) -> None:
        """Change faults and/or rate limits of the running sandbox (``/_sandbox/config``)."""
        import urllib.request

        url = next(iter(self.endpoints.values())) + "/_sandbox/config"
        request = urllib.request.Request(url, data=json.dumps(changes).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:  # loopback only
            answer.read()


async def _serve(directory: Path, config: Any, specs: Sequence[str]) -> None:
    from batchmig.sandbox.host import Sandbox
    from batchmig.testing.testcloud import TestcloudPlugin

    registry = registry_from_specs(specs, default=[TestcloudPlugin()])
    async with Sandbox(registry.emulators, directory, config):
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            async for _ in signals:
                return


def main() -> None:
    from batchmig import eventloop, logs
    from batchmig.sandbox.config import SandboxConfig

    logs.configure(json_output=True, console_level=40)
    directory = Path(sys.argv[1])
    settings = json.loads(Path(sys.argv[2]).read_text()) if len(sys.argv) > 2 else {}
    eventloop.run(_serve, directory, SandboxConfig.from_mapping(settings), sys.argv[3:])


if __name__ == "__main__":
    main()
