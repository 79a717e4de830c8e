"""Known credential values never appear in output, logs, journal, report or errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from batchmig.credentials import ResolvedCredentials, resolve_credentials
from batchmig.redaction import REDACTOR

HERE = Path(__file__).parent
SECRET = "SuperSecretValue-4711-do-not-leak"


def test_resolved_credentials_hide_values_and_feed_the_redactor(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BM_TEST_SECRET", SECRET)
    creds = resolve_credentials({"secret": "${env:BM_TEST_SECRET}"}, {}, "providers.x.credentials")
    assert creds.secret("secret") == SECRET
    assert SECRET not in repr(creds)
    assert REDACTOR(f"error: {SECRET} rejected") == "error: *** rejected"


def test_profiles_must_be_private(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile = tmp_path / "credentials.yaml"
    profile.write_text(f"profiles:\n  prod: {{key_id: K, secret: {SECRET}}}\n")
    monkeypatch.setenv("BATCHMIG_CREDENTIALS", str(profile))
    os.chmod(profile, 0o644)
    from batchmig.errors import UsageError

    with pytest.raises(UsageError, match="chmod 600"):
        resolve_credentials({"profile": "prod"}, {}, "p")
    os.chmod(profile, 0o600)
    assert resolve_credentials({"profile": "prod"}, {}, "p").secret("secret") == SECRET
    assert isinstance(resolve_credentials(None, {"secret": "NOPE_UNSET"}, "p"), ResolvedCredentials)


@pytest.mark.parametrize("verbose", [False, True])
def test_a_failing_live_run_leaks_nothing(tmp_path: Path, verbose: bool) -> None:
    """A live run (no sandbox) whose endpoint refuses connections, with -v and without."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "version: 1\nproviders:\n  tc:\n    type: testcloud\n    region: r\n    endpoint: http://127.0.0.1:9\n"
        "    credentials: {key_id: '${env:BM_KEY}', secret: '${env:BM_SECRET}'}\n"
        "run: {retry: {max_attempts: 2, base_delay: 0.01, max_delay: 0.02}}\n"
        "instances: [{id: a, provider: tc}]\n"
    )
    env = {**os.environ, "BM_KEY": "KEYID-7777", "BM_SECRET": SECRET}
    args = [sys.executable, str(HERE / "testcloud_cli.py"), *(["-v"] if verbose else []), "run", str(plan),
            "--runs-root", str(tmp_path / "runs"), "--no-progress"]
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stderr[-2000:]
    assert "ConnectionFailed" in proc.stdout + proc.stderr
    texts = [proc.stdout, proc.stderr]
    for path in (tmp_path / "runs").rglob("*"):
        if path.is_file():
            texts.append(path.read_bytes().decode("utf-8", "replace"))
    assert all(SECRET not in text for text in texts)
