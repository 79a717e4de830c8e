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

A third source, ``targeted_cases``: the fleet with mistakes of named categories
(booleans for numbers and versions, non-ASCII digits, a password in an endpoint URL,
``!!binary`` and other tags, terminal escapes in keys and values, rate limits for
actions the provider does not have, typos in defaults) and two or three mistakes on
one instance; each goes through ``validate`` *and* ``run --dry-run``, and every
mistake must be reported, once, at the line where it is written, with nothing
unsafe echoed (no literal secret, no control character).
"""

from __future__ import annotations

import re
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings

from batchmig.cli import main
from batchmig.errors import printable

from .conftest import SOAK
from .fleet import fleet_plan
from .hostile_plans import LITERAL_SECRET, UNSAFE_CHARACTERS, HostileCase, hostile_file, targeted_cases

pytest.importorskip("batchmig_tencentcloud")
pytest.importorskip("batchmig_huaweicloud")

CORPUS = Path(__file__).parent / "corpus"
EXAMPLES = 2000 if SOAK else 160
SUBPROCESS_SAMPLE = 120 if SOAK else 16
CPU_SECONDS_PER_CASE = 10.0  # CPU, not wall-clock: a loaded machine must not fail a case that did not spin
MEMORY_LIMIT = 1024 * 1024 * 1024  # address space of one `validate` process
LOCATED = re.compile(r"^(?P<file>[^\n]+?):(?P<line>\d+):(?P<column>\d+)[: ]", re.MULTILINE)


def assert_refused(path: Path, code: int, output: str, cpu_seconds: float) -> list[re.Match[str]]:
    assert code == 2, f"{path.name}: exit {code}\n{output[-2000:]}"
    assert "Traceback" not in output and "internal error" not in output, output[-2000:]
    located = [m for m in LOCATED.finditer(output) if m["file"] == str(path)]
    assert located, f"{path.name}: no file:line:column problem in\n{output[-2000:]}"
    assert cpu_seconds < CPU_SECONDS_PER_CASE, f"{path.name} took {cpu_seconds:.1f}s of CPU"
    return located


def validate_in_process(path: Path) -> tuple[int, str, float]:
    """Exit code, output and CPU seconds of ``batchmig validate PATH`` in this process."""
    began = time.process_time()
    result = CliRunner().invoke(main, ["validate", str(path)])
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes is not None else ""), \
        time.process_time() - began


def validate_in_subprocess(path: Path, timeout: float = 60) -> tuple[int, str, float, int]:
    """Exit code, output, CPU seconds and peak RSS (KiB) of ``python -m batchmig validate PATH``."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen([sys.executable, "-m", "batchmig", "validate", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, preexec_fn=limit)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode  # killed by a signal: 128+N
    cpu = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    return code, out.decode("utf-8", "replace"), cpu, usage.ru_maxrss


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
        code, output, cpu_seconds = validate_in_process(path)
        assert_refused(path, code, output, cpu_seconds)
        if len(seen) % 5 == 0 and len(kept) < SUBPROCESS_SAMPLE:
            kept.append(path)

    check()
    peak = 0
    for path in kept:
        code, output, cpu_seconds, peak_kib = validate_in_subprocess(path)
        assert_refused(path, code, output, cpu_seconds)
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
    code, output, cpu_seconds = validate_in_process(path)
    located = assert_refused(path, code, output, cpu_seconds)
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
        code, output, cpu_seconds, _ = validate_in_subprocess(path)
        assert_refused(path, code, output, cpu_seconds)


TARGETED = 2000 if SOAK else 200  # 200 still hold every one of the 24 kinds of mistake (seed 2026)


def key_line(text: str, path: str) -> int | None:
    """The line (1-based) where ``path`` is written, found with PyYAML's own composer."""
    node = yaml.compose(text, Loader=yaml.SafeLoader)
    line = None
    for part in path.split("."):
        if isinstance(node, yaml.MappingNode):
            match = [(k, v) for k, v in node.value if isinstance(k, yaml.ScalarNode) and k.value == part]
            if not match:
                return line
            key, node = match[0]
            line = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode) and part.isdigit():
            node = node.value[int(part)]
            line = node.start_mark.line + 1
        else:
            return line
    return line


def check_targeted(case: HostileCase, path: Path, command: str, code: int, output: str) -> list[str]:
    """Every misbehaviour of one run, as text (empty: it behaved)."""
    wrong = []
    if code != 2:
        wrong.append(f"exit {code}")
    if "Traceback" in output or "internal error" in output:
        wrong.append("traceback or internal error")
    if LITERAL_SECRET in output:
        wrong.append("echoed a literal secret")
    if any(ch in output for ch in UNSAFE_CHARACTERS):
        wrong.append("echoed a control or formatting character raw")
    located = [(int(m["line"]), line[m.end():]) for line in output.splitlines()
               if (m := LOCATED.match(line)) and m["file"] == str(path)]
    if len({text for _, text in located}) != len(located):
        wrong.append("a problem reported twice")
    for expected in case.expected:
        shown = printable(expected)
        hits = [number for number, text in located if text.lstrip().startswith(shown)]
        if not hits:
            wrong.append(f"{expected!r} not reported")
        elif key_line(case.text, expected) not in hits:
            wrong.append(f"{expected!r} reported at line {hits}, written at {key_line(case.text, expected)}")
    return [f"{command}: {what}" for what in wrong]


def test_targeted_hostile_plans_report_every_mistake_where_it_is(tmp_path: Path, figures) -> None:
    cases = targeted_cases(TARGETED, seed=int(time.time()) if SOAK else 2026)
    misbehaved: list[str] = []
    exits: dict[str, int] = {}
    categories: dict[str, int] = {}
    began = time.monotonic()
    for number, case in enumerate(cases):
        path = tmp_path / f"targeted-{number:04d}.yaml"
        path.write_text(case.text, encoding="utf-8")
        for category in case.categories:
            categories[category] = categories.get(category, 0) + 1
        for command in (["validate", str(path)], ["run", str(path), "--dry-run"]):
            result = CliRunner().invoke(main, command)
            output = result.output  # stdout and stderr, interleaved
            exits[str(result.exit_code)] = exits.get(str(result.exit_code), 0) + 1
            misbehaved += [f"{path.name} {problem}" for problem in
                           check_targeted(case, path, command[0], result.exit_code, output)]
    figures.update({"targeted_plans": len(cases), "runs": 2 * len(cases), "exit_codes": exits,
                    "mistakes": categories, "misbehaviours": len(misbehaved),
                    "seconds": round(time.monotonic() - began, 1)})
    assert not misbehaved, "\n".join(misbehaved[:40])


LARGE = 100_000 if SOAK else 20_000


def test_a_large_hostile_plan_is_refused_with_every_problem(tmp_path: Path, figures) -> None:
    """A fleet of LARGE instances with a typo in defaults and two mistakes on its last instance."""
    text = fleet_plan(LARGE, name="large-hostile")
    text = text.replace("      is_precheck: true\n", "      is_precheck: true\n      is_prechek: true\n", 1)
    last = text.rindex("- id: ")
    first_line_end = text.index("\n", last) + 1
    text = text[:first_line_end] + "  cutover: sometimes\n" + text[first_line_end:]
    text = text[:last] + text[last:].replace("  settings:\n", "  settings:\n    colour: red\n", 1)
    path = tmp_path / "large.yaml"
    path.write_text(text, encoding="utf-8")
    code, output, cpu_seconds, peak_kib = validate_in_subprocess(path, timeout=300)
    figures.update({"instances": LARGE, "validate_cpu_seconds": round(cpu_seconds, 1),
                    "peak_rss_mib": round(peak_kib / 1024), "problems": len(LOCATED.findall(output))})
    assert code == 2 and "Traceback" not in output, output[-2000:]
    index = LARGE - 1
    for expected in ("defaults.settings.huawei-drs.is_prechek", f"instances.{index}.cutover",
                     f"instances.{index}.settings.colour"):
        assert f" {expected}:" in output, f"{expected} not reported:\n{output[-2000:]}"
    assert output.count("is_prechek") == 1, "a typo in defaults must be reported once, at the defaults"
