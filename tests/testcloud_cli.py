"""Run the real ``batchmig`` CLI with the core's ``testcloud`` provider registered.

The core's tests use it for subprocess runs (signals, SIGKILL, exit codes) without
installing a provider distribution: ``python tests/testcloud_cli.py run plan.yaml --sandbox``.
"""

from batchmig.cli import CliContext, main
from batchmig.testing import make_registry
from batchmig.testing.testcloud import TestcloudPlugin

if __name__ == "__main__":
    main(obj=CliContext(registry=make_registry(TestcloudPlugin())))
