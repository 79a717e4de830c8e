"""Every example in README.md, docs/*.md and the plugin READMEs is checked, so none can rot.

The code blocks are extracted from the Markdown:

* ``yaml`` blocks are plans (top-level ``version``), *excerpts* of a plan, a sandbox
  configuration or a credentials file; each says which in a first-line comment when
  it is not a whole plan. A plan must pass ``batchmig validate`` (the loader) and a
  real JSON Schema validator run on ``batchmig schema``. An excerpt starts with
  ``# excerpt (PROVIDER)``: it is completed into a plan (a configuration of PROVIDER
  for every name the excerpt uses, a sample instance if it has none) and checked the
  same way. A block of comments only has nothing to check.
* ``sh`` blocks: every ``batchmig ...`` command must parse against the real CLI and
  every repository file it names must exist; the read-only ones on repository plans
  (``validate``, ``run --dry-run``, ``schema``, ``plugins``) are run for real; every
  ``python SCRIPT`` of the repository must start (``--help``).
* the SDK snippets' ports must be the ones ``sandbox serve`` gives.

Placeholders in commands (``RUN``, ``ID``, ``...``) parse as the arguments they stand for.
"""

from __future__ import annotations

import copy
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from batchmig.cli import main
from batchmig.plan.loader import load_plan
from batchmig.plan.schema import plan_schema
from batchmig.registry import Registry, load_registry
from batchmig.sandbox.config import SandboxConfig

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parent.parent
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted(ROOT.glob("plugins/*/README.md"))]
PROVIDERS = ("tencent-sqlserver", "tencent-dts", "huawei-drs", "alibaba-rds-sqlserver")
EXCERPT = re.compile(r"^# excerpt \((?P<provider>[a-z0-9-]+)\)")
SAMPLE_SETTINGS: dict[str, dict[str, Any]] = {
    "tencent-sqlserver": {"instance_id": "mssql-njj2mtpl", "scenario": "backup"},
    "tencent-dts": {"job_id": "dts-1kl0iy0v", "migrate_type": "full"},
    "huawei-drs": {"target_instance_id": "0a3182607bc549bcb46cc9a8755761a6in04", "bucket_name": "sample-bucket",
                   "files": [{"name": "sample_full.bak", "obs_path": "full/"}]},
    "alibaba-rds-sqlserver": {"instance_id": "rm-bp1sample01", "database": "sample",
                              "full": {"oss_object": "oss-cn-hangzhou.aliyuncs.com:sample-bucket:sample_full.bak"}},
}
READ_ONLY = {"validate", "schema", "plugins"}


@dataclass(frozen=True)
class Block:
    document: Path
    line: int
    language: str
    text: str

    def __str__(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def blocks(*languages: str) -> list[Block]:
    found = []
    for document in DOCUMENTS:
        lines = document.read_text(encoding="utf-8").splitlines()
        start, language = None, ""
        for number, line in enumerate(lines, 1):
            if line.startswith("```") and start is None:
                start, language = number, line[3:].strip()
            elif line.startswith("```"):
                assert start is not None
                if language in languages:
                    found.append(Block(document, start, language, "\n".join(lines[start:number - 1]) + "\n"))
                start = None
    return found


@pytest.fixture(scope="module")
def registry() -> Registry:
    registry = load_registry()
    missing = [name for name in PROVIDERS if name not in registry.providers]
    if missing:
        pytest.skip(f"the docs' examples need the provider plugins: {missing} not installed")
    return registry


@pytest.fixture(scope="module")
def validator(registry: Registry) -> Any:
    schema = plan_schema(registry)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def check_plan(document: dict[str, Any], where: str, tmp_path: Path, registry: Registry, validator: Any) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    load_plan(str(path), registry)  # raises PlanError with every problem
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message[:200]}" for e in validator.iter_errors(document)]
    assert not errors, f"{where}: the JSON Schema refuses it: {errors}"


def complete(excerpt: dict[str, Any], provider: str) -> dict[str, Any]:
    """A whole plan around ``excerpt``: the instance keys of one instance, or plan sections."""
    if not {"providers", "defaults", "instances", "waves", "run", "notify"} & set(excerpt):
        excerpt = {"instances": [{"id": "excerpt", **excerpt}]}
    plan = copy.deepcopy(excerpt)
    plan["version"] = 1
    providers = plan.setdefault("providers", {})
    instances = plan.setdefault("instances", [])
    if not instances:
        config = next(iter(providers), "excerpt")
        instances.append({"id": "sample", "provider": config, "settings": SAMPLE_SETTINGS[provider]})
    for instance in instances:
        instance.setdefault("provider", plan.get("defaults", {}).get("provider", "excerpt"))
        providers.setdefault(instance["provider"], {"type": provider, "region": "ap-guangzhou"})
    return plan


YAML_BLOCKS = blocks("yaml")


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=str)
def test_yaml_example(block: Block, tmp_path: Path, registry: Registry, validator: Any) -> None:
    data = yaml.safe_load(block.text)
    first = block.text.lstrip().splitlines()[0]
    if data is None:
        assert all(line.strip().startswith("#") or not line.strip() for line in block.text.splitlines())
        return
    if isinstance(data, dict) and "version" in data:
        check_plan(data, str(block), tmp_path, registry, validator)
    elif match := EXCERPT.match(first):
        assert match["provider"] in PROVIDERS, f"{block}: unknown provider in {first!r}"
        check_plan(complete(data, match["provider"]), str(block), tmp_path, registry, validator)
    elif first.startswith("# sandbox configuration"):
        SandboxConfig.from_mapping(data)
    elif first.startswith("# credentials file"):
        assert all(isinstance(v, dict) and all(isinstance(x, str) for x in v.values())
                   for v in data["profiles"].values())
    else:
        pytest.fail(f"{block}: a YAML example must be a plan, or start with '# excerpt (PROVIDER)', "
                    f"'# sandbox configuration' or '# credentials file'; it starts with {first!r}")


def test_the_examples_were_found() -> None:
    assert len(YAML_BLOCKS) >= 10 and len(SHELL_COMMANDS) >= 15


# ------------------------------------------------------------------ shell commands


def commands(block: Block) -> list[tuple[Block, list[str]]]:
    """The commands of a shell block: continuations joined, comments dropped, split at && and ;."""
    text = block.text.replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        try:
            words = shlex.split(line, comments=True)
        except ValueError:  # an unbalanced quote is a mistake in the docs
            pytest.fail(f"{block}: cannot split {line!r}")
        command: list[str] = []
        for word in [*words, "&&"]:
            if word in ("&&", ";", "||"):
                if command:
                    found.append((block, command))
                command = []
            else:
                command.append(word)
    return found


SHELL_COMMANDS = [command for block in blocks("sh", "bash", "shell") for command in commands(block)]
BATCHMIG = [(block, words[words.index(w) + 1:]) for block, words in SHELL_COMMANDS
            for w in words if w == "batchmig" or w.endswith("/batchmig")]
SCRIPTS = [(block, words) for block, words in SHELL_COMMANDS
           if words[0].endswith(("python", "python3")) and len(words) > 1 and words[1].endswith(".py")]


def repository_paths(words: list[str]) -> list[str]:
    """Arguments naming files of this repository (plans/..., docs/..., benchmarks/...)."""
    tops = {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")}
    return [w for w in words if "/" in w and w.split("/", 1)[0] in tops and not w.endswith("/")]


@pytest.mark.parametrize(("block", "args"), BATCHMIG, ids=lambda v: str(v) if isinstance(v, Block) else " ".join(v))
def test_batchmig_command_parses_and_its_files_exist(block: Block, args: list[str], registry: Registry) -> None:
    args = args[: next((i for i, a in enumerate(args) if a.startswith(">")), len(args))]  # drop a redirection
    try:
        command: click.Command = main
        context = click.Context(main, info_name="batchmig")
        rest = list(args)
        while isinstance(command, click.Group):
            assert rest, f"{block}: `batchmig {' '.join(args)}` names no command"
            name = rest.pop(0)
            found = command.get_command(context, name)
            assert found is not None, f"{block}: `batchmig {' '.join(args)}`: no command {name!r}"
            command, context = found, click.Context(found, info_name=name, parent=context)
        command.make_context(context.info_name, rest, parent=context.parent)
    except click.exceptions.Exit:
        pass
    except click.UsageError as exc:
        pytest.fail(f"{block}: `batchmig {' '.join(args)}` does not parse: {exc}")
    for path in repository_paths(args):
        assert (ROOT / path).exists(), f"{block}: `batchmig {' '.join(args)}` names {path}, which does not exist"
    if (args and args[0] in READ_ONLY) or (args[:1] == ["run"] and "--dry-run" in args):
        plans = [a for a in args if a.endswith(".yaml")]
        if args[0] in ("schema", "plugins") or (plans and all((ROOT / p).exists() for p in plans)):
            result = subprocess.run([sys.executable, "-m", "batchmig", *args], cwd=ROOT, capture_output=True,
                                    text=True, timeout=120)
            assert result.returncode == 0, f"{block}: `batchmig {' '.join(args)}` exits {result.returncode}:\n" \
                                           f"{result.stderr[-2000:]}"


@pytest.mark.parametrize(("block", "words"), SCRIPTS, ids=lambda v: str(v) if isinstance(v, Block) else " ".join(v))
def test_python_scripts_of_the_docs_start(block: Block, words: list[str]) -> None:
    script = ROOT / words[1]
    assert script.exists(), f"{block}: {words[1]} does not exist"
    result = subprocess.run([sys.executable, str(script), "--help"], cwd=ROOT, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, f"{block}: `{' '.join(words)}` does not start:\n{result.stderr[-2000:]}"


def test_other_commands_name_files_that_exist() -> None:
    for block, words in SHELL_COMMANDS:
        for path in repository_paths(words):
            if not any(ch in path for ch in "*$<>"):
                assert (ROOT / path).exists() or (ROOT / path).parent.exists(), f"{block}: {path} does not exist"


# ----------------------------------------------------------------- SDK snippets


def test_sdk_snippets_use_the_ports_sandbox_serve_gives(registry: Registry) -> None:
    """`sandbox serve` numbers the emulators in name order from --port (8600)."""
    ports = {name: 8600 + index for index, name in enumerate(sorted(registry.emulators))}
    for block in blocks("python"):
        for port in re.findall(r"127\.0\.0\.1:(\d{4})", block.text):
            assert "tencentcloud" not in block.text or int(port) == ports["tencent-sqlserver"], \
                f"{block}: port {port}, but tencent-sqlserver is served on {ports['tencent-sqlserver']}"
    text = (ROOT / "plugins/batchmig-tencentcloud/README.md").read_text(encoding="utf-8")
    assert f"127.0.0.1:{ports['tencent-sqlserver']}" in text
