"""``batchmig plugin new``: a generated provider installs and passes its own suite, lint and types.

The distribution is installed into a throw-away virtual environment that sees this
one's packages (``--system-site-packages``) but gets its own, non-editable copy of
batchmig and of the generated plugin — as a plugin author's machine would have them —
so nothing is installed into the environment running this test.
"""

from __future__ import annotations

import json
import os
import shutil
import site
import subprocess
import sys
import time
import venv
from pathlib import Path

import pytest
from click.testing import CliRunner

from batchmig.cli import CliContext, main
from batchmig.errors import UsageError
from batchmig.scaffold import new_plugin, template_values

ROOT = Path(__file__).resolve().parent.parent


def test_names_follow_the_conventions() -> None:
    values = template_values("acme-sql")
    assert (values["dist"], values["package"], values["entry_point"], values["Class"], values["ENV"]) == (
        "batchmig-acme-sql", "batchmig_acme_sql", "acme-sql", "AcmeSql", "ACME_SQL")
    with pytest.raises(UsageError, match="kebab-case"):
        template_values("Acme_SQL")


def test_a_cloud_distribution_may_name_its_provider_after_the_service() -> None:
    values = template_values("alibabacloud", provider="alibaba-rds-sqlserver")
    assert (values["dist"], values["package"], values["entry_point"], values["name"]) == (
        "batchmig-alibabacloud", "batchmig_alibabacloud", "alibabacloud", "alibaba-rds-sqlserver")
    with pytest.raises(UsageError, match="kebab-case"):
        template_values("alibabacloud", provider="Alibaba_RDS")


def test_an_existing_directory_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "batchmig-acme").mkdir()
    (tmp_path / "batchmig-acme" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="not empty"):
        new_plugin("acme", tmp_path / "batchmig-acme")


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.mark.slow  # a fresh venv, an install and a pytest run: about 50 s
def test_a_generated_plugin_installs_and_passes_its_suite(tmp_path: Path) -> None:
    started = time.monotonic()
    target = tmp_path / "batchmig-acme-sql"
    result = CliRunner().invoke(main, ["plugin", "new", "acme-sql", "--directory", str(target)], obj=CliContext())
    assert result.exit_code == 0, result.output
    assert {p.name for p in target.iterdir()} >= {"pyproject.toml", "README.md", "CHANGELOG.md", "batchmig_acme_sql",
                                                 "tests"}
    environment = tmp_path / "venv"
    venv.create(environment, with_pip=False)
    python = str(environment / "bin" / "python")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", str(ROOT),
          str(target)], tmp_path, env)
    _see_outer_packages(environment)
    listed = json.loads(_run([python, "-m", "batchmig", "plugins", "--format", "json"], tmp_path, env).stdout)
    [entry] = [e for e in listed["plugins"] if e["distribution"] == "batchmig-acme-sql"]
    assert entry["api_versions"] == [1] and [p["name"] for p in entry["providers"]] == ["acme-sql"]
    suite = _run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider"], target, env)
    assert " passed" in suite.stdout and "failed" not in suite.stdout and "skipped" not in suite.stdout, suite.stdout
    if shutil.which("ruff") or _importable("ruff"):
        _run([sys.executable, "-m", "ruff", "check", "."], target, env)
    if _importable("mypy"):
        _run([python, "-m", "mypy", "batchmig_acme_sql", "tests"], target, env)
    print(f"scaffold: generated, installed and checked in {time.monotonic() - started:.1f}s")


def _see_outer_packages(environment: Path) -> None:
    """Let ``environment`` import this one's packages (aiohttp, pydantic, pytest...), below
    its own. Only after the installs: pip's isolated builds must not see them."""
    [own] = environment.glob("lib/python*/site-packages")
    outer = "; ".join(f"site.addsitedir({path!r})" for path in site.getsitepackages())
    (own / "zz_outer.pth").write_text(f"import site; {outer}\n", encoding="utf-8")


def _importable(module: str) -> bool:
    return subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True).returncode == 0
