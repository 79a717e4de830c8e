"""Campaign 6 — local faults: the run directory fills up or stops being writable.

The run directory lives on a small tmpfs mounted for the test (root only; the test
is skipped where mounting is not permitted), the sandbox on the ordinary disk in
its own process. Mid-run the test either fills the tmpfs to the last byte, or
takes write permission away from the run directory (running the CLI as an
unprivileged user, since root ignores permissions). The runner must stop cleanly —
exit 3, a message saying why, no traceback — and ``batchmig resume`` after the
fault is cleared must finish every instance without any create/start taking effect
twice.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from batchmig.sandbox.machinery import duplicate_effects

from .conftest import SOAK, Cli, read_outputs
from .fleet import fleet_plan

pytest.importorskip("batchmig_tencentcloud")
pytest.importorskip("batchmig_huaweicloud")

INSTANCES = 120 if SOAK else 42
VERBOSE = ["-v"] if os.environ.get("CAMPAIGN_VERBOSE") else []


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount_point = tmp_path / "disk"
    mount_point.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m,mode=0777", "tmpfs", str(mount_point)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


def fill(directory: Path) -> Path:
    """Write a file until the file system is full; returns it (delete it to make room again)."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as handle:
        chunk = b"\0" * 65536
        try:
            while True:
                handle.write(chunk)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        small = b"\0" * 512
        try:
            while True:
                handle.write(small)
        except OSError:
            pass
    return filler


def wait_for_requests(sandbox_dir: Path, count: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    path = sandbox_dir / "audit.jsonl"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        if path.exists() and path.read_bytes().count(b"\n") >= count:
            return
        time.sleep(0.02)
    raise AssertionError(f"the run made fewer than {count} requests (exit {proc.poll()})")


def finish_and_check(cli: Cli, run_dir: Path, box, env: dict[str, str] | None = None) -> dict:  # type: ignore[no-untyped-def]
    resumed = cli.run("resume", str(run_dir), "--no-progress", env=env, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads((run_dir / "report.json").read_text())
    assert {entry["status"] for entry in report["instances"]} == {"succeeded"}
    assert len(report["instances"]) == INSTANCES
    assert duplicate_effects(box.audit()) == {}
    return report


def test_a_full_disk_stops_the_run_cleanly_and_resume_repeats_nothing(small_disk: Path, tmp_path: Path, cli: Cli,
                                                                      sandbox_process, figures) -> None:
    box = sandbox_process({"time_scale": 150, "seed": 11})
    plan = tmp_path / "plan.yaml"
    plan.write_text(fleet_plan(INSTANCES, name="campaign-disk-full", max_concurrency=20))
    run_dir = small_disk / "run"
    proc, stem = cli.start(*VERBOSE, "run", str(plan), "--sandbox-at", str(box.directory), "--run-dir", str(run_dir),
                           "--no-progress")
    wait_for_requests(box.directory, 60, proc)
    filler = fill(small_disk)
    before_stop = len(box.audit())
    proc.wait(timeout=120)
    _, err = read_outputs(stem)
    assert proc.returncode == 3, err[-3000:]
    assert "Traceback" not in err and "internal error" not in err, err[-3000:]
    assert "No space left on device" in err or "disk is full" in err, err[-3000:]
    assert "batchmig resume" in err
    filler.unlink()
    report = finish_and_check(cli, run_dir, box)
    figures.update({"instances": INSTANCES, "requests_before_fault": before_stop,
                    "requests_total": len(box.audit()), "duplicates": 0, "lost_instances": 0,
                    "exit_on_fault": proc.returncode, "retries": report["calls"]["retries"]})


#: Root without the capabilities that let it ignore file permissions (util-linux setpriv).
WITHOUT_DAC = ("setpriv", "--bounding-set", "-dac_override,-dac_read_search", "--")


def set_writable(run_dir: Path, writable: bool) -> None:
    for path in run_dir.iterdir():
        os.chmod(path, 0o600 if writable else 0o400)
    os.chmod(run_dir, 0o700 if writable else 0o500)


def test_an_unwritable_run_directory_stops_cleanly_and_resume_repeats_nothing(tmp_path: Path, cli: Cli,
                                                                             sandbox_process, figures) -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to drop CAP_DAC_OVERRIDE")
    box = sandbox_process({"time_scale": 150, "seed": 12})
    plan = tmp_path / "plan.yaml"
    plan.write_text(fleet_plan(INSTANCES, name="campaign-unwritable", max_concurrency=20))
    run_dir = tmp_path / "run"
    proc, stem = cli.start(*VERBOSE, "run", str(plan), "--sandbox-at", str(box.directory), "--run-dir",
                           str(run_dir), "--no-progress", prefix=WITHOUT_DAC)
    wait_for_requests(box.directory, 60, proc)
    set_writable(run_dir, False)
    try:
        proc.wait(timeout=120)
        _, err = read_outputs(stem)
        assert proc.returncode == 3, err[-3000:]
        assert "Traceback" not in err and "internal error" not in err, err[-3000:]
        assert "Permission denied" in err and "batchmig resume" in err, err[-3000:]
        still = cli.run("resume", str(run_dir), "--no-progress", prefix=WITHOUT_DAC)
        assert still.returncode == 3, still.stderr[-3000:]
        assert "Traceback" not in still.stderr and "internal error" not in still.stderr, still.stderr[-3000:]
    finally:
        set_writable(run_dir, True)
    report = finish_and_check(cli, run_dir, box)
    figures.update({"instances": INSTANCES, "requests_total": len(box.audit()), "duplicates": 0,
                    "lost_instances": 0, "exit_on_fault": proc.returncode, "exit_of_resume_while_unwritable": 3,
                    "retries": report["calls"]["retries"]})
