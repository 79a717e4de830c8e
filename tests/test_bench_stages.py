"""benchmarks/stages.py charges only the run's own samples to its stages.

Its shares are multiplied by the run's CPU per call, so a sample from outside the
run (the scenario's imports, the timed ``status`` commands) or of a thread that only
waits would inflate the stage it lands in.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

STAGES = Path(__file__).resolve().parent.parent / "benchmarks" / "stages.py"


def load_stages() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_stages", STAGES)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RUN = ("<module> (scenarios.py:666);overhead (scenarios.py:253);run_against (scenarios.py:57);"
       "start_run (batchmig/operations.py:249)")
RAW = "\n".join([
    f"{RUN};send (batchmig/engine/transport.py:138) 30",
    f"{RUN};_commit (batchmig/journal.py:627) 10",
    "Thread._bootstrap (threading.py:1002);run (threading.py:982);checkpoint (batchmig/journal.py:700) 10",
    # outside the run: the scenario's imports of aiohttp, and the wait for a timed `status`
    "<module> (scenarios.py:28);_find_and_load (<frozen importlib._bootstrap>:1176);<module> (aiohttp/client.py:1) 50",
    "<module> (scenarios.py:666);overhead (scenarios.py:263);Popen._try_wait (subprocess.py:1959) 40",
    # inside the run but idle: a worker thread waiting for a job
    "Thread._bootstrap (threading.py:1002);Condition.wait (threading.py:327) 25",
])


def test_only_the_runs_busy_samples_are_shared_out() -> None:
    assert load_stages().breakdown(RAW) == {"HTTP": 0.6, "journal": 0.4}
