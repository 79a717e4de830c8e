"""Campaign 9 — hostile run references: every one exits 2 with a message.

``RUN`` in ``status``, ``resume`` and ``cutover`` is a run directory or a run id (a
unique prefix is enough) in the runs root. Tried here: paths outside the runs root
(``/etc``, a file, ``../x``, ``~``, ``/``), glob patterns (``*``, ``?``, ``[a-``,
``**/x``, absolute patterns), empty and blank strings, an embedded NUL, very long
names, control characters and terminal escapes, a runs root that is a file or does
not exist, an ambiguous prefix — a fixed list through the real CLI in subprocesses,
and hypothesis-generated text through the CLI in-process.

The property: exit 2 (or 5 for a path to a directory whose journal is damaged), an
``error:`` line and a ``hint:`` line, no traceback, no
"internal error", nothing resolved outside the runs root unless it was written as a
path — and the real runs in the root are still found by id, prefix and path.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchmig.cli import CliContext, main
from batchmig.testing import make_registry
from batchmig.testing.testcloud import TestcloudPlugin

from .conftest import SOAK

TESTCLOUD_CLI = Path(__file__).parent.parent / "testcloud_cli.py"
RUN_IDS = ("refs-20240101-000000-aaaa", "refs-20240101-000000-bbbb")
EXAMPLES = 1500 if SOAK else 300

HOSTILE = [
    "/etc", "/etc/passwd", "/", "//", "/nonexistent/run", "../x", "..", ".", "~", "~root", "~no-such-user-4711",
    "*", "**", "?", "[a-", "[!a]*", "**/x", "/*", "/etc/*", "/tmp/**", "{a,b}", "refs-*", "refs-2024????-*",
    "", " ", "\t", "a\0b", "\0", "x" * 5000, "/" + "y" * 300, "\x1b[31mred\x1b[0m", "line\nbreak", "\r",
    "refs", "refs-20240101-000000-", "C:\\runs\\x", "%s%n", "$(id)", "`id`", "-", "runs/../../etc",
    "\udcff\udcfe", "ünïcödé", "😀", "refs-20240101-000000-aaaa/..", "refs-20240101-000000-aaaa/journal.sqlite",
]


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A runs root with two real runs whose ids share a prefix, and a stray file and directory."""
    home = tmp_path_factory.mktemp("refs")
    plan = home / "plan.yaml"
    plan.write_text(yaml.safe_dump({"version": 1, "name": "refs", "providers": {"tc": {"type": "testcloud",
                                    "region": "r"}}, "instances": [{"id": "a", "provider": "tc"}]}))
    root = home / "runs"
    for run_id in RUN_IDS:
        done = subprocess.run([sys.executable, str(TESTCLOUD_CLI), "run", str(plan), "--sandbox", "--time-scale",
                               "6000", "--run-dir", str(root / run_id), "--no-progress"],
                              capture_output=True, text=True, cwd=home, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
    (root / "refs-stray-file").write_text("not a run")
    (root / "refs-empty-dir").mkdir()
    return root


CLI = CliContext()
"""What the CLI receives through click's obj in these tests (no module global in batchmig)."""


@pytest.fixture(autouse=True)
def testcloud_registry() -> Iterator[None]:
    CLI.registry = make_registry(TestcloudPlugin())
    yield
    CLI.registry = None


def names_a_journal(reference: str) -> bool:
    """Whether ``reference``, as a path, holds a journal.sqlite (on this machine: a stray
    /journal.sqlite makes "/" a run directory, whose empty journal is then refused with exit 5)."""
    try:
        return "\0" not in reference and (Path(reference).expanduser() / "journal.sqlite").exists()
    except (OSError, RuntimeError):
        return False


def assert_refused(code: int, output: str, reference: str) -> None:
    expected = {2, 5} if names_a_journal(reference) else {2}
    assert code in expected, f"{reference!r}: exit {code}\n{output[-2000:]}"
    assert "Traceback" not in output and "internal error" not in output, f"{reference!r}: {output[-2000:]}"
    lines = output.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("error: ") and lines[1].startswith("hint: "), \
        f"{reference!r}: {output!r}"
    assert "\x1b" not in output and "\0" not in output, f"{reference!r}: raw control characters echoed"


def test_the_real_runs_are_found_by_id_prefix_and_path(runs_root: Path) -> None:
    for reference in (RUN_IDS[0], "refs-20240101-000000-a", str(runs_root / RUN_IDS[1])):
        result = CliRunner().invoke(main, ["status", reference, "--runs-root", str(runs_root), "--format", "json"],
                                    obj=CLI)
        assert result.exit_code == 0, result.output
    ambiguous = CliRunner().invoke(main, ["status", "refs-2024", "--runs-root", str(runs_root)], obj=CLI)
    assert_refused(ambiguous.exit_code, ambiguous.output, "refs-2024")
    assert "matches several runs" in ambiguous.output


COMMANDS = [["status"], ["status", "--format", "json"], ["resume", "--no-progress"],
            ["cutover", "--all", "--no-resume"]]
THROUGH_SUBPROCESS = ["/etc", "/etc/passwd", "../x", "*", "/etc/*", "", "\x1b[31mred\x1b[0m", "\udcff\udcfe",
                      "x" * 5000, "~no-such-user-4711"]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c))
def test_hostile_references_are_refused_by_every_command(command: list[str], runs_root: Path, figures) -> None:
    codes = set()
    for reference in HOSTILE:
        result = CliRunner().invoke(main, [*command, "--runs-root", str(runs_root), "--", reference], obj=CLI)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise AssertionError(f"{reference!r}: {type(result.exception).__name__}: {result.exception}")
        assert_refused(result.exit_code, result.output, reference)
        codes.add(result.exit_code)
    figures.update({"command": " ".join(command), "references": len(HOSTILE), "exit_codes": sorted(codes)})


def test_hostile_references_through_the_real_command_line(runs_root: Path) -> None:
    """Real argv: what a shell can pass (no NUL), undecodable bytes included."""
    for reference in THROUGH_SUBPROCESS:
        args = [sys.executable, str(TESTCLOUD_CLI), "status", reference, "--runs-root", str(runs_root)]
        done = subprocess.run(args, capture_output=True, cwd=runs_root.parent, timeout=60)
        assert_refused(done.returncode, (done.stdout + done.stderr).decode("utf-8", "replace"), reference)


@pytest.mark.parametrize("runs_root_kind", ["missing", "a file"])
def test_a_broken_runs_root_is_a_usage_error(runs_root_kind: str, tmp_path: Path) -> None:
    root = tmp_path / "runs"
    if runs_root_kind == "a file":
        root.write_text("x")
    for reference in ("some-run", "*", "/etc"):
        result = CliRunner().invoke(main, ["status", reference, "--runs-root", str(root)], obj=CLI)
        assert_refused(result.exit_code, result.output, reference)


@settings(max_examples=EXAMPLES, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
          deadline=None)
@given(reference=st.one_of(
    st.text(max_size=80),
    st.sampled_from(HOSTILE),
    st.builds("".join, st.lists(st.sampled_from(["*", "?", "[", "]", "/", "..", "~", "**", "{", ",", "}", "!",
                                                 "\\", "refs", "-", "\0", "\x1b", " "]), max_size=12)),
))
def test_generated_references_are_refused_or_found(reference: str, runs_root: Path) -> None:
    result = CliRunner().invoke(main, ["status", "--runs-root", str(runs_root), "--format", "json", "--", reference],
                                obj=CLI)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"{reference!r}: {type(result.exception).__name__}: {result.exception}")
    if result.exit_code == 0:  # only a reference that names one of the real runs may succeed
        assert any(run_id.startswith(reference) for run_id in RUN_IDS) or (
            Path(reference) / "journal.sqlite").exists(), reference
    else:
        assert_refused(result.exit_code, result.output, reference)


def test_nothing_outside_the_root_is_reached_by_an_id(runs_root: Path, tmp_path: Path) -> None:
    """A run beside the runs root is found by its path only, never by an id or a pattern."""
    outside = tmp_path / "outside-run"
    shutil.copytree(runs_root / RUN_IDS[0], outside)
    for reference in ("outside-run", "../outside-run", "*outside*", "../*"):
        result = CliRunner().invoke(main, ["status", reference, "--runs-root", str(runs_root)], obj=CLI)
        assert_refused(result.exit_code, result.output, reference)
    found = CliRunner().invoke(main, ["status", str(outside), "--runs-root", str(runs_root)], obj=CLI)
    assert found.exit_code == 0, found.output
