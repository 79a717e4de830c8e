"""benchmarks/floor.py, the client floor target 3 is judged against, in a few calls.

The benchmark suite runs only with ``tox -e bench``; this keeps its floor from rotting
in between: both clients must really complete the exchange (floor.py stops on any
answer but the server's 232 bytes) and every round must yield a figure.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

FLOOR = Path(__file__).resolve().parent.parent / "benchmarks" / "floor.py"


def test_the_floor_measures_both_clients_over_a_real_exchange() -> None:
    proc = subprocess.run([sys.executable, str(FLOOR), "--calls", "30", "--rounds", "2"],
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    assert figures["calls"] == 30 and figures["answer_bytes"] == 232 and figures["headers"] == 8
    rounds = figures["rounds_us_per_call"]
    assert sorted(rounds) == ["aiohttp", "batchmig"]
    assert all(len(per_round) == 2 and all(us > 0 for us in per_round) for per_round in rounds.values())
    assert figures["aiohttp_us_per_call"] == min(rounds["aiohttp"])
    assert figures["transport_us_per_call"] == min(rounds["batchmig"])
