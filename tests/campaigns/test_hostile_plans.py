"""Campaign 3 — hostile plans at the CLI: every one exits 2 with a located message.

Two sources of input:

* generated (hypothesis, ``hostile_plans.py``): a real mixed fleet broken by
  construction — wrong types, missing and unknown keys, huge and negative numbers,
  Unicode and control characters, deep nesting, alias bombs, non-UTF-8 bytes, a BOM
  — written to a file and validated through the real ``validate`` command in-process
  (click's CliRunner: cheap enough for hundreds of cases); a bounded sample of the
  same files also goes through ``python -m batchmig validate`` subprocesses under a
  memory limit (RLIMIT_AS) and a time limit, which is where a crash of the C YAML
  parser or an unbounded expansion would show;
* ``corpus/``: realistic mistakes written by hand, each carrying the fragment its
  message must contain and marking the line it must point at with ``# <- here``.

The property: exit code 2, at least one ``file:line:column`` problem, no traceback,
no "internal error", within the bounds.
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

from batchmig.cli import main

from .conftest import SOAK
from .hostile_plans import hostile_file

pytest.importorskip("batchmig_tencentcloud")
pytest.importorskip("batchmig_huaweicloud")

CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = 2000 if SOAK else 160
SUBPROCESS_SAMPLE = 120 if SOAK else 16
SECONDS_PER_CASE = 10.0
MEMORY_LIMIT = 1024 * 1024 * 1024  # address space of one `validate` process
LOCATED = re.compile(r"^(?P<file>[^\n]+?):(?P<line>\d+):(?P<column>\d+)[: ]", re.MULTILINE)


def assert_refused(path: Path, code: int, output: str, seconds: float) -> list[re.Match[str]]:
    assert code == 2, f"{path.name}: exit {code}\n{output[-2000:]}"
    assert "Traceback" not in output and "internal error" not in output, output[-2000:]
    located = [m for m in LOCATED.finditer(output) if m["file"] == str(path)]
    assert located, f"{path.name}: no file:line:column problem in\n{output[-2000:]}"
    assert seconds < SECONDS_PER_CASE, f"{path.name} took {seconds:.1f}s"
    return located


def validate_in_process(path: Path) -> tuple[int, str, float]:
    began = time.monotonic()
    result = CliRunner().invoke(main, ["validate", str(path)])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else ""), \
        time.monotonic() - began


def validate_in_subprocess(path: Path) -> tuple[int, str, float, int]:
    """Exit code, output, seconds and peak RSS (KiB) of ``python -m batchmig validate PATH``."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    began = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "batchmig", "validate", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=limit)
    try:
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode  # killed by a signal: 128+N
    return code, out.decode("utf-8", "replace"), time.monotonic() - began, usage.ru_maxrss


def test_generated_hostile_plans_are_refused_with_a_location(tmp_path: Path, figures) -> None:
    cases = tmp_path / "cases"
    cases.mkdir()
    kept: list[Path] = []
    seen: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=not SOAK,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(hostile_file())
    def check(case: tuple[bytes, list[str]]) -> None:
        data, done = case
        path = cases / f"case-{len(seen):05d}.yaml"
        path.write_bytes(data)
        seen[path.name] = len(data)
        for what in done:
            family = what.split(" ")[0]
            figures.setdefault("mistakes", {})[family] = figures.get("mistakes", {}).get(family, 0) + 1
        code, output, seconds = validate_in_process(path)
        assert_refused(path, code, output, seconds)
        if len(seen) % 5 == 0 and len(kept) < SUBPROCESS_SAMPLE:
            kept.append(path)

    check()
    peak = 0
    for path in kept:
        code, output, seconds, peak_kib = validate_in_subprocess(path)
        assert_refused(path, code, output, seconds)
        peak = max(peak, peak_kib)
    figures.update({"generated_inputs": len(seen), "through_subprocess": len(kept),
                    "largest_input_bytes": max(seen.values()), "peak_rss_mib": round(peak / 1024, 1),
                    "accepted": 0, "crashed": 0})


def corpus_cases() -> list[Path]:
    return sorted(p for p in CORPUS.iterdir() if p.name != "README.md")


@pytest.mark.parametrize("path", corpus_cases(), ids=lambda p: p.name)
def test_realistic_mistakes_are_refused_with_their_line(path: Path) -> None:
    text = path.read_bytes().decode("utf-8", "replace")
    expected = re.search(r"# expect: (.+)", text)
    assert expected, f"{path.name} lacks its '# expect: fragment' line"
    code, output, seconds = validate_in_process(path)
    located = assert_refused(path, code, output, seconds)
    assert expected[1].strip() in output, output
    marked = [number for number, line in enumerate(text.splitlines(), 1) if "# <- here" in line]
    if marked:
        assert {int(m["line"]) for m in located} & set(marked), f"points at {[m['line'] for m in located]}, " \
                                                                 f"expected line {marked}:\n{output}"


def test_odd_paths_through_the_real_cli(tmp_path: Path) -> None:
    """Paths and files that are no plan at all, through ``python -m batchmig validate``."""
    (tmp_path / "a-directory.yaml").mkdir()
    (tmp_path / "empty.yaml").write_bytes(b"")
    (tmp_path / "whitespace.yaml").write_bytes(b" \n\t\n")
    (tmp_path / "null.yaml").write_bytes(b"---\n~\n")
    (tmp_path / "deep.yaml").write_bytes(b"version: 1\nname: " + b"{a: " * 50_000 + b"1" + b"}" * 50_000 + b"\n")
    (tmp_path / "long-number.yaml").write_bytes(b"version: 1\nrun: {max_concurrency: " + b"9" * 6000 + b"}\n")
    for name in ("a-directory.yaml", "empty.yaml", "whitespace.yaml", "null.yaml", "missing.yaml", "deep.yaml",
                 "long-number.yaml"):
        path = tmp_path / name
        code, output, seconds, _ = validate_in_subprocess(path)
        assert_refused(path, code, output, seconds)
