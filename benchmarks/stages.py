"""Where the runner's CPU goes: a py-spy profile of the overhead scenario, by stage.

``python benchmarks/stages.py [--instances N]`` samples the runner process (not the
sandbox, which runs in a child of its own) with py-spy, leaving idle threads out, and
charges every sample to the stage that *owns* it, looking from the outermost frame
in: a JSON dump made for a log line is logging, one made for the journal is the
journal, one made for a request or answer (also a poll's) is JSON. Prints one JSON object:
{stage: share of the samples}, and the CPU per call of the same run, so the shares
can be read as microseconds per call.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent

# (stage, markers): a frame containing a marker belongs to the stage; the first stage
# (in this order) with a frame anywhere in the stack owns the sample.
STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("logging", ("structlog/", "batchmig/logs.py", "logging/__init__.py")),
    ("journal", ("batchmig/journal.py", "sqlite3/")),
    ("limiter", ("batchmig/ratelimit.py",)),
    ("signing", ("signing.py", "signer.py", "hmac.py", "hashlib")),
    ("JSON", ("json/", "orjson", "_envelope (", "responses.py")),
    ("HTTP", ("batchmig/engine/transport.py", "httptools", "aiohttp/", "yarl/", "multidict/", "http/", "ssl.py",
              "socket.py", "zlib")),
    ("polling", ("batchmig/engine/polling.py",)),
    ("engine", ("batchmig/engine/", "batchmig_tencentcloud/", "batchmig_huaweicloud/", "batchmig_alibabacloud/")),
    ("plan and report", ("batchmig/plan/", "batchmig/report/", "yaml/", "pydantic")),
    ("event loop", ("asyncio/", "uvloop", "anyio/", "selectors.py")),
)


def stage_of(stack: str) -> str:
    for stage, markers in STAGES:
        if any(marker in stack for marker in markers):
            return stage
    return "other"


IDLE_LEAVES = ("Journal._write_loop (", "Popen._try_wait (", "Condition.wait (")
"""Innermost frames that mean "waiting": the journal's writer blocked on its queue
(py-spy counts a thread waking for the GIL as active), the scenario waiting for the
`status` commands it times (a fifth of the samples at load 20), and any thread blocked
on a condition — anyio's worker threads (``to_thread``) idle on their queue between
jobs for up to ten seconds, which py-spy counts as active and charged to the event
loop (about 7% of the samples, no CPU)."""


def in_run(stack: str) -> bool:
    """Whether a sample belongs to the run: the main thread inside ``start_run``, or one
    of the runner's own threads (the journal's checkpointer or writer, anyio's workers).
    The scenario's imports, the sandbox's start and the timed ``status`` commands are
    outside the CPU per call the shares are multiplied by (a 5,000-instance profile
    charged 16.5% of its samples to the scenario's imports, 7 points of them to HTTP)."""
    frames = stack.split(";")
    return frames[0].startswith("Thread._bootstrap (") or any(frame.startswith("start_run (") for frame in frames)


def breakdown(raw: str) -> dict[str, float]:
    """Shares of the run's samples per stage from py-spy's ``--format raw`` (collapsed stacks)."""
    samples: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not in_run(stack) or any(stack.rsplit(";", 1)[-1].startswith(leaf) for leaf in IDLE_LEAVES):
            continue
        if stack and count.isdigit():
            samples[stage_of(stack)] += int(count)
    total = sum(samples.values()) or 1
    return {stage: round(n / total, 3) for stage, n in samples.most_common()}


def profile(instances: int) -> dict[str, object]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {"error": "py-spy is not installed: pip install py-spy (tox -e bench installs it)"}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "profile.txt"
        proc = subprocess.run(
            [spy, "record", "--format", "raw", "--rate", "250", "--output", str(out), "--",
             sys.executable, str(HERE / "scenarios.py"), "overhead", "--instances", str(instances)],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode != 0 or not out.exists():
            return {"error": f"py-spy failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1:]}"}
        figures = json.loads(next(line for line in reversed(proc.stdout.splitlines()) if line.startswith("{")))
        shares = breakdown(out.read_text())
    per_call_us = figures["cpu_ms_per_call"] * 1000
    return {"instances": instances, "cpu_ms_per_call_under_profiler": figures["cpu_ms_per_call"],
            "shares": shares, "us_per_call": {stage: round(share * per_call_us) for stage, share in shares.items()}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--instances", type=int, default=3000)
    print(json.dumps(profile(parser.parse_args().instances)))
